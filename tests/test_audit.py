"""The audit's machinery (notebook 09) on a real smoke-profile reproduction: the file it writes, loading and `force`,
resuming after a kill, its errors and its command line; and the committed audits' gradients, measured again.

Slow (`make test-slow`): the fixture trains and attacks a smoke reproduction, then audits it. Nothing here asserts an
accuracy of the smoke models: only what the machinery must do whatever they learned."""
import contextlib, io, json, shutil
from pathlib import Path
import numpy as np
import pytest
import foolbox as fb
from guessfirst_nb.audit import audit, main, CONDITIONED, remeasure_gradients
from guessfirst_nb.run import Run
from guessfirst_nb.models import TARGETS
from guessfirst_nb.reproduce import reproduce

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
quiet = lambda *a: None

@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    "A smoke reproduction of MNIST (seed 0) and its audit, in a temporary folder."
    tmp = tmp_path_factory.mktemp('audit')
    repro = reproduce(Run('mnist', 'smoke', runs=tmp / 'runs', out=tmp / 'results'), progress=False, log=quiet)
    doc = audit(Run('mnist', 'smoke', runs=tmp / 'runs', out=tmp / 'results'), log=quiet)
    return tmp, repro, doc

def per_sample(e): return e['first_broken'] if 'first_broken' in e else e['dist']

def test_audit_writes_its_file(smoke):
    tmp, repro, doc = smoke
    p = Run('mnist', 'smoke', out=tmp / 'results').result('audit')
    saved = json.loads(p.read_text())
    assert set(saved['results']) == set(TARGETS) and set(saved['compression']) == set(CONDITIONED + ['CNN'])
    assert saved['audit_config']['n'] == 50 and len(saved['images']['positions']) == 50
    assert saved['environment']['foolbox'] == fb.__version__ and saved['total_seconds'] > 0
    assert not p.with_name('mnist_audit.partial.json').exists()
    pos = saved['images']['positions']
    for m, r in saved['results'].items():
        assert r['n'] == 50
        for key, w in r['worst_case'].items():   # the worst case is never above any single attack
            assert w['acc'] <= min(v for v in w['single'].values() if v is not None) + 1e-12, (m, key)
        # the reproduction's entries carried into the audit give back its own accuracy on the same images
        e = repro['results'][m]['PGD/white']
        want = np.mean([e['first_broken'][i] == -1 or e['first_broken'][i] > e['eps'].index(0.3) for i in pos])
        assert abs(r['worst_case']['linf 0.3']['single']['repro PGD/linf'] - want) < 1e-12
        assert len(r['attacks']['HSJ/l2']['index']) == 10
        g = r['gradients']   # the input gradients, per image
        assert all(len(g[k]) == 50 for k in ('max_abs', 'zero_frac', 'norm', 'norm_f32'))
        for a in ('APGD-CE', 'APGD-T', 'FAB-T', 'Square'):   # AutoAttack (notebook 17), on what the audit's attacks left
            e = r['attacks'][f'{a}/linf']
            assert (e['cascade'], e['config']['apgd_iter'], len(e['attacked'])) == (True, 5, 2)

def test_audit_loads_and_force_recomputes(smoke):
    tmp, _, doc = smoke
    again = audit(Run('mnist', 'smoke', runs=tmp / 'runs', out=tmp / 'results'), log=quiet)
    assert again['total_seconds'] == json.loads(Run('mnist', 'smoke', out=tmp / 'results').result('audit').read_text())['total_seconds']

class Killed(Exception): pass

def test_audit_resumes_after_a_kill(smoke, tmp_path):
    "Killed right after the second model's attacks, before it is saved: the partial file holds the first model only."
    tmp, _, _ = smoke
    out = tmp_path / 'results'; shutil.copytree(tmp / 'results', out)
    saved = json.loads(Run('mnist', 'smoke', out=out).result('audit').read_text())
    def kill_at_cdv(*a):
        if 'C-DV:' in ' '.join(map(str, a)): raise Killed
    with pytest.raises(Killed): audit(Run('mnist', 'smoke', runs=tmp / 'runs', out=out), force=True, log=kill_at_cdv)
    partial = Run('mnist', 'smoke', out=out).result('audit').with_name('mnist_audit.partial.json')
    assert list(json.loads(partial.read_text())['results']) == ['CNN']
    msgs = []
    doc = audit(Run('mnist', 'smoke', runs=tmp / 'runs', out=out), force=True, log=lambda *a: msgs.append(' '.join(map(str, a))))
    assert any('CNN: resumed' in m for m in msgs) and not partial.exists()
    for m in TARGETS:   # a resumed audit equals an uninterrupted one, sample by sample
        for a, e in saved['results'][m]['attacks'].items():
            assert per_sample(doc['results'][m]['attacks'][a]) == per_sample(e), (m, a)

def test_audit_errors(smoke, tmp_path):
    tmp, _, _ = smoke
    with pytest.raises(FileNotFoundError, match='guessfirst-reproduce'):
        audit(Run('mnist', 'smoke', runs=tmp / 'runs', out=tmp_path / 'nothing'), log=quiet)
    with pytest.raises(ValueError, match='valid profiles: smoke, quick, paper-lite'): audit(Run('mnist', 'nope'))

@pytest.mark.parametrize('argv, says', [(['--dataset', 'svhn'], 'valid datasets: mnist, fashion_mnist'),
                                        (['--profile', 'full'], 'valid profiles: smoke, quick, paper-lite, paper'),
                                        (['--device', 'tpu'], 'valid devices: auto, cpu, cuda, mps')])
def test_cli_refuses_bad_arguments(argv, says):
    err = io.StringIO()
    with contextlib.redirect_stderr(err): assert main(argv) == 2
    assert says in err.getvalue()

def test_cli_writes_the_audit_and_its_tables(smoke, tmp_path):
    tmp, _, _ = smoke
    out = tmp_path / 'results'; shutil.copytree(tmp / 'results', out)
    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        assert main(['--dataset', 'mnist', '--profile', 'smoke', '--runs', str(tmp / 'runs'), '--out', str(out)]) == 0
    p = Run('mnist', 'smoke', out=out).result('audit')
    assert str(p) in o.getvalue() and p.with_suffix('.md').exists()
    assert '## Input gradients of the cross-entropy' in p.with_suffix('.md').read_text()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e := io.StringIO()):   # no reproduction there
        assert main(['--dataset', 'mnist', '--profile', 'smoke', '--out', str(tmp_path / 'none')]) == 1
    assert e.getvalue().startswith('error: no reproduction results at') and e.getvalue().count('\n') == 1

def test_remeasure_gradients_reproduces_the_committed_ones(tmp_path):
    "The committed paper-lite audit's gradients, measured again on the published weights, on a copy."
    src = ROOT / 'results' / 'paper-lite' / 'mnist_audit.json'
    p = tmp_path / 'mnist_audit.json'; shutil.copy(src, p)
    before = json.loads(p.read_text())
    doc = remeasure_gradients(p)
    assert p.with_suffix('.md').exists() and 'gradients_source' in json.loads(p.read_text())
    for m, r in before['results'].items():
        old, new = r['gradients'], doc['results'][m]['gradients']
        # other float kernels move the smallest gradients (a saturated softmax: 1 - p_y is quantized in float32, and
        # cancels against the other classes' terms), so: most images within 10%, and the same zeros
        for k in ('norm', 'max_abs'):
            assert np.mean(np.isclose(new[k], old[k], rtol=0.1)) >= 0.9, (m, k)
        for k in ('norm_f32', 'max_abs'):
            assert (np.array(new[k]) == 0).tolist() == (np.array(old[k]) == 0).tolist(), (m, k)

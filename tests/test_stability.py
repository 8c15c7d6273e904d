"""The stability study's machinery (notebook 10) on real smoke-profile runs: agreement with the reproduction, resuming
after a kill, two processes sharing one study, a checkpoint changed under the same file name, a run still in training,
and the command line.

Slow (`make test-slow`): the fixture trains and attacks two smoke reproductions (seeds 0 and 1). Nothing here asserts
an accuracy of the smoke models, or that one changes: a changed checkpoint is checked through the key its measurements
are stored under (the checkpoints' SHA-256) and through which stages were measured again, not through the numbers."""
import contextlib, io, json, shutil
import pytest
import torch
from guessfirst_nb.io import sha256_file
from guessfirst_nb.run import Run
from guessfirst_nb.models import TARGETS, SUBSTITUTE
from guessfirst_nb.profiles import get_profile
from guessfirst_nb.reproduce import reproduce
from guessfirst_nb.stability import (stability, saved_epochs, main, seed_results, _epoch, _grid,
                                     craft, transfer)
from guessfirst_nb.train import load_model
from guessfirst_nb.data import load

pytestmark = pytest.mark.slow
quiet = lambda *a: None
FIRST = ['C-JS', 'CNN']

@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    "Smoke reproductions of MNIST for seeds 0 and 1, and the stability study of seed 0, in a temporary folder."
    tmp = tmp_path_factory.mktemp('stability')
    repro = {s: reproduce(Run('mnist', 'smoke', s, runs=tmp / 'runs', out=tmp / 'results'), progress=False, log=quiet)
             for s in (0, 1)}
    doc = stability(Run('mnist', 'smoke', runs=tmp / 'runs', out=tmp / 'results'), log=quiet)
    return tmp, repro, doc

def no_time(d): return {m: [{k: v for k, v in r.items() if k != 'seconds'} for r in rows] for m, rows in d['curves'].items()}
def parts_of(out): return Run('mnist', 'smoke', out=out).result('stability').with_name('mnist_stability.partial')

def test_the_study_covers_every_target_epoch_and_substitute(smoke):
    tmp, _, doc = smoke
    assert saved_epochs('mnist', 'smoke', 0, 'CNN', tmp / 'runs') == [1, 2]
    assert list(doc['curves']) == TARGETS and [r['epoch'] for r in doc['curves']['C-JS']] == [1, 2]
    assert sorted(doc['substitute']) == ['1', '2']
    for rows in doc['curves'].values():
        for r in rows:   # the signs of masking of score_stats, every one a fraction
            assert all(0 <= r[k] <= 1 for k in ('grad_all_zero', 'grad_zero_entries', 'grad_norm_f32_zero'))
            assert r['grad_max'] >= 0 and r['grad_norm_f32_zero'] >= r['grad_all_zero']
            for e in (0.15, 0.3):   # the white-box worst case is never above either of its attacks, and cumulative
                w = r['white']; assert w[f'worst {e:g}'] <= min(w[f'ce {e:g}'], w[f'margin {e:g}']) + 1e-12
                assert w[f'worst {e:g}'] <= w['worst 0.15'] + 1e-12

def test_last_epoch_and_substitute_give_the_reproductions_numbers(smoke):
    "FGSM and C&W are deterministic: equal on the same images; PGD starts at random: close."
    _, repro, doc = smoke
    P0 = repro[0]['results']
    for m in TARGETS:
        last = doc['curves'][m][-1]; b = last['black']['2']
        assert abs(last['clean'] - P0[m]['clean']) < 1e-12
        for e in (0.15, 0.3):
            r = P0[m]['FGSM/black']; assert abs(b[f'FGSM {e:g}'] - r['acc'][r['eps'].index(e)]) < 1e-12
            r = P0[m]['PGD/black']; assert abs(b[f'PGD {e:g}'] - r['acc'][r['eps'].index(e)]) <= 0.05
        r = P0[m]['CW/black']; assert abs(b['CW 2'] - r['acc'][r['eps'].index(2.0)]) < 1e-12

def test_transfer_of_the_study_is_transfer(smoke):
    tmp, _, doc = smoke
    te = load('mnist', 'test').subset(get_profile('smoke').attack.n_test, seed=0)
    sub, _ = load_model(Run('mnist', 'smoke', 0, tmp / 'runs'), SUBSTITUTE)
    crafted = craft(sub, te.images(), te.y, get_profile('smoke').stability, get_profile('smoke').attack)
    cnn, _ = load_model(Run('mnist', 'smoke', 0, tmp / 'runs'), 'CNN')
    assert transfer(cnn, te.images(), te.y, crafted, get_profile('smoke').stability) == doc['curves']['CNN'][-1]['black']['2']

class Killed(Exception): pass

def test_a_killed_run_resumes(smoke, tmp_path):
    tmp, _, doc = smoke
    out = tmp_path / 'results'; shutil.copytree(tmp / 'results', out)
    def kill_at_cdv(*a):
        if 'C-DV:' in ' '.join(map(str, a)): raise Killed
    with pytest.raises(Killed): stability(Run('mnist', 'smoke', runs=tmp / 'runs', out=out), force=True, log=kill_at_cdv)
    parts = parts_of(out)
    assert sorted(p.stem for p in parts.glob('*.json')) == ['CNN']
    msgs = []
    doc2 = stability(Run('mnist', 'smoke', runs=tmp / 'runs', out=out), force=True, log=lambda *a: msgs.append(' '.join(map(str, a))))
    assert any('CNN: resumed' in m for m in msgs) and not parts.exists()
    assert sum('examples resumed' in m for m in msgs) == len(doc['substitute']) > 0
    assert no_time(doc2) == no_time(doc)

def test_two_processes_share_one_study(smoke, tmp_path):
    """The second (called when the first has measured C-JS, before it saves it) measures the others, CNN among them,
    ends first and finds C-JS missing; the first takes CNN from it rather than measuring it, and writes the study."""
    tmp, _, doc = smoke
    out = tmp_path / 'results'; shutil.copytree(tmp / 'results', out)
    written = json.loads(Run('mnist', 'smoke', out=out).result('stability').read_text())['total_seconds']
    parts = parts_of(out)
    side, said, others = [], [], [m for m in TARGETS if m != 'C-JS']
    # a temporary file of a third writer, and the file of the version that kept one partial file: the study's end
    # deletes only its own files (and that one), and keeps the folder while another process writes into it
    parts.mkdir(); (parts / '.CNN.json.123.tmp').write_text('')
    legacy = parts.with_name('mnist_stability.partial.json'); legacy.write_text('{}')
    def second_process(*a):
        said.append(' '.join(map(str, a)))
        if ' C-JS: ' in said[-1] and not side:
            side.append(stability(Run('mnist', 'smoke', runs=tmp / 'runs', out=out), force=True, models=others, log=quiet))
            side.append(sorted(p.stem for p in parts.glob('*.json')))
            # the study on disk is untouched until every target is measured
            side.append(json.loads(Run('mnist', 'smoke', out=out).result('stability').read_text())['total_seconds'])
    doc3 = stability(Run('mnist', 'smoke', runs=tmp / 'runs', out=out), force=True, models=FIRST, log=second_process)
    assert side == [None, sorted(others), written]
    assert [m.split()[1].rstrip(':') for m in said if ' C-JS: ' in m or ' CNN: ' in m] == ['C-JS', 'CNN']
    assert 'mnist CNN: resumed' in said[-2], said   # taken, not measured again
    assert list(doc3['curves']) == TARGETS and no_time(doc3) == no_time(doc)
    assert [p.name for p in parts.iterdir()] == ['.CNN.json.123.tmp'] and not legacy.exists()
    # models=[]: nothing measured, None; an unknown model is refused
    shutil.rmtree(parts)
    assert stability(Run('mnist', 'smoke', runs=tmp / 'runs', out=out), force=True, models=[], log=quiet) is None
    with pytest.raises(ValueError, match=r"unknown models \['VGG'\]"):
        stability(Run('mnist', 'smoke', runs=tmp / 'runs', out=out), force=True, models=['VGG'])

def negate(runs, model, epoch):
    "Change a checkpoint under the same file name: its linear weights negated."
    f = Run('mnist', 'smoke', 0, runs).checkpoint(model, epoch); ck = torch.load(f, weights_only=True)
    ck['model'] = {k: -v if v.ndim == 2 else v for k, v in ck['model'].items()}; torch.save(ck, f)

@pytest.mark.parametrize('changed, kept', [('C-JS', ['CNN']), (SUBSTITUTE, [])])
def test_a_changed_checkpoint_is_measured_again(smoke, tmp_path, changed, kept):
    """A checkpoint changed under the same file name is read again: a target's only that target, the substitute's its
    examples and every target. Checked through the key: the stored checkpoint SHA-256 is the new file's, and only the
    stages whose inputs did not change were resumed."""
    tmp, _, doc = smoke
    runs, out = tmp_path / 'runs', tmp_path / 'results'; shutil.copytree(tmp / 'runs', runs)
    stability(Run('mnist', 'smoke', runs=runs, out=out), models=FIRST, log=quiet)
    parts = parts_of(out)
    key = lambda m: json.loads((parts / f'{m}.json').read_text())['key']
    before = {m: key(m) for m in FIRST}
    e = saved_epochs('mnist', 'smoke', 0, changed, runs)[0]   # a substitute's first of two
    old_sha = sha256_file(Run('mnist', 'smoke', 0, runs).checkpoint(changed, e))
    negate(runs, changed, e)
    new_sha = sha256_file(Run('mnist', 'smoke', 0, runs).checkpoint(changed, e))
    assert new_sha != old_sha
    msgs = []
    stability(Run('mnist', 'smoke', runs=runs, out=out), models=FIRST, log=lambda *a: msgs.append(' '.join(map(str, a))))
    assert [m.split()[1].rstrip(':') for m in msgs if 'resumed' in m] == \
        ['substitute'] * (len(doc['substitute']) - (changed == SUBSTITUTE)) + kept
    after = {m: key(m) for m in FIRST}
    if changed == SUBSTITUTE:   # every target's key names the new substitute checkpoint
        for m in FIRST:
            assert before[m]['substitutes'][str(e)] == old_sha and after[m]['substitutes'][str(e)] == new_sha
        cache = torch.load(parts / f'{SUBSTITUTE}-epoch{e:03d}.pt', weights_only=True)
        assert cache['key']['checkpoint'] == new_sha
    else:                       # only the changed target's key changed, at that epoch
        assert before[changed]['checkpoints'][str(e)] == old_sha and after[changed]['checkpoints'][str(e)] == new_sha
        assert after['CNN'] == before['CNN']

def test_a_run_still_in_training_is_refused(smoke, tmp_path):
    tmp, _, _ = smoke
    runs = tmp_path / 'runs'; shutil.copytree(tmp / 'runs', runs)
    early = Run('mnist', 'smoke', 0, runs).model_dir('C-DV-IE'); shutil.copy(early / 'epoch001.pt', early / 'last.pt')
    with pytest.raises(Exception, match='C-DV-IE is trained to epoch 1 of 2: wait for its training to end'):
        stability(Run('mnist', 'smoke', runs=runs, out=tmp_path / 'early'), models=['C-DV-IE'])
    with pytest.raises(Exception, match='C-DV-IE is trained to epoch 1'):
        stability(Run('mnist', 'smoke', runs=runs, out=tmp_path / 'early'))
    assert not (tmp_path / 'early').exists()   # refused before crafting anything
    o, e = io.StringIO(), io.StringIO()
    for extra in (['--models', 'C-DV-IE'], ['--curves']):
        with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e := io.StringIO()):
            assert main(['--dataset', 'mnist', '--profile', 'smoke', '--seeds', '0', '--runs', str(runs), '--out',
                         str(tmp_path / 'early'), *extra]) == 1
        assert e.getvalue().startswith('error: C-DV-IE is trained to epoch 1 of 2') and e.getvalue().count('\n') == 1

def test_errors_name_the_fix(smoke):
    tmp, _, _ = smoke
    with pytest.raises(Exception, match='LeNet5 has no checkpoint in'):
        stability(Run('mnist', 'smoke', 7, runs=tmp / 'runs', out=tmp / 'results'))
    with pytest.raises(ValueError, match='valid profiles'): stability(Run('mnist', 'nope'))
    with pytest.raises(ValueError, match=r'saved epochs: \[1, 2\]'): _epoch('mnist', 'smoke', 0, 'CNN', tmp / 'runs', 5)
    with pytest.raises(ValueError, match='not on the attack grid'): _grid((0.1, 0.2), 0.15)

@pytest.mark.parametrize('argv, says', [
    (['--dataset', 'svhn'], 'valid datasets: mnist, fashion_mnist'),
    (['--profile', 'full'], 'valid profiles: smoke, quick, paper-lite, paper'),
    (['--dataset', 'mnist', '--models', 'VGG'], f"error: unknown models ['VGG']: choose among {TARGETS}"),
    (['--dataset', 'mnist', '--profile', 'smoke', '--curves', '--models', 'CNN'],
     'error: --curves and --models: --models writes no tables; drop one\n'),
    (['--dataset', 'mnist', '--profile', 'smoke', '--curves', '--seeds', '1', '0'],
     'error: --curves takes one seed, the run that kept every epoch: --seeds 1\n')])
def test_cli_refuses_bad_arguments(argv, says):
    err = io.StringIO()
    with contextlib.redirect_stderr(err): assert main(argv) == 2
    assert says in err.getvalue()

def test_cli_seeds_twice_is_refused():
    with contextlib.redirect_stderr(io.StringIO()): assert main(['--dataset', 'mnist', '--seeds', '0', '0']) == 2

def test_cli_runs(smoke, tmp_path):
    tmp, _, _ = smoke
    out = tmp_path / 'results'; shutil.copytree(tmp / 'results', out)
    R, args = out / 'smoke', ['--dataset', 'mnist', '--profile', 'smoke', '--runs', str(tmp / 'runs'), '--out', str(out)]
    o = io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(io.StringIO()):   # one model: its partial file only
        assert main([*args, '--seeds', '0', '--models', 'CNN', '--force']) == 0
    pm = parts_of(out)
    assert o.getvalue() == f'mnist: CNN measured, in {pm}; the study is written when every target is\n'
    assert (pm / 'CNN.json').exists()
    with contextlib.redirect_stdout(o := io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main([*args, '--seeds', '0', '1']) == 0
    for f in ['mnist_stability.json', 'mnist_stability.md', 'mnist_epochs.png', 'mnist_masking.png',
              'mnist_substitutes.png', 'mnist_seeds.png']:
        assert (R / f).exists(), f
    assert 'written:' in o.getvalue() and [d['seed'] for d in seed_results(out, 'mnist', 'smoke')] == [0, 1]
    for f in ['mnist.json', 'mnist_seed1.json', 'mnist_stability.md', 'mnist_epochs.png', 'mnist_masking.png',
              'mnist_substitutes.png', 'mnist_seeds.png']:
        (R / f).unlink()
    with contextlib.redirect_stdout(o := io.StringIO()), contextlib.redirect_stderr(io.StringIO()):   # the curves alone
        assert main([*args, '--seeds', '0', '--curves']) == 0
    have = {f.name for f in R.iterdir()}
    assert {'mnist_stability.md', 'mnist_epochs.png', 'mnist_masking.png', 'mnist_substitutes.png'} <= have
    assert not have & {'mnist.json', 'mnist_seed1.json', 'mnist_seeds.png'}, have
    assert 'over seeds' not in o.getvalue() and '| CNN / epoch 1 |' in o.getvalue()
    assert 'grad 0 in every entry (%)' in (R / 'mnist_stability.md').read_text()

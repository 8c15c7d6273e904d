"""The audit's machinery (notebook 09, with AutoAttack from notebook 17): attacks run a model in eval mode whatever
mode it comes in; on a real smoke-profile reproduction, the file the audit writes, loading and `force`, `models`,
resuming from its stages after a kill, a changed checkpoint or reproduction audited again, its errors and its command
line; and the committed audits' gradients, measured again.

The tests on the smoke reproduction are slow (`make test-slow`): the fixture trains and attacks it, then audits it.
Nothing here asserts an accuracy of the smoke models: only what the machinery must do whatever they learned."""
import contextlib, copy, io, json, re, shutil
from dataclasses import asdict, fields, replace
from pathlib import Path
import numpy as np
import pytest
import torch, torch.nn as nn
import foolbox as fb
import guessfirst_nb.audit as A
from guessfirst_nb.audit import (audit, CONDITIONED, remeasure_gradients, pgd, pgd_broken, hsj_dist, input_grad_stats,
                                 pgd_gradients, audit_doc, audit_markdown, checks_table, hsj_table, sizes, to_plain,
                                 worst_case_table, worst_cases, AuditDoc, Check, GivenEntry, Images, ModelResult, Row,
                                 Source, Subset, CascadeEntry, READ_FROM_REPRODUCTION, stage_config, add_gradients,
                                 audit_images, attacked_images)
from guessfirst_nb.data import load
from guessfirst_nb.stats import wilson
from guessfirst_nb.store import plain
from guessfirst_nb.attacks import fmodel, fixed_eps_advs
from guessfirst_nb.autoattack import AUTOATTACK, AutoAttackConfig, attack_broken, audit_main, full_audit
from guessfirst_nb.models import TARGETS
from guessfirst_nb.profiles import AttackConfig, AuditConfig
from guessfirst_nb.reproduce import reproduce, reproduction, entry
from guessfirst_nb.run import Run

ROOT = Path(__file__).resolve().parent.parent
from conftest import committed, label
quiet = lambda *a: None


# --- eval mode: fast, on a model built by hand -------------------------------------------------------------------

def bn_model():
    "A tiny model with BatchNorm whose running statistics are far from any batch's, so that its two modes differ."
    torch.manual_seed(0)
    m = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad(): m[2].running_mean.uniform_(-2, 2); m[2].running_var.uniform_(0.2, 3)
    return m

def test_the_foolbox_wrapper_puts_the_model_in_eval_mode():
    m = bn_model().train()
    fmodel(m)
    assert not any(k.training for k in m.modules())

def test_an_attack_on_a_model_in_training_mode_is_the_attack_in_eval_mode():
    """Each attack the audit runs, given a BatchNorm model in training mode, gives what it gives on the same model in
    eval mode, and leaves its running statistics (and its count of batches) as they were."""
    x = torch.rand(12, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    ev = bn_model().eval()
    with torch.no_grad():
        y = ev(x).argmax(1)
        assert not torch.allclose(copy.deepcopy(ev).train()(x), ev(x))   # the two modes differ on these images
    state = copy.deepcopy(ev.state_dict())
    def direct(m):   # foolbox's PGD through the wrapper, its adversarial examples
        torch.manual_seed(0); return pgd('linf', 'margin', steps=3)(fmodel(m), x, y, epsilons=[0.2])[1][0]
    attacks = {'foolbox PGD': direct,
               'fixed_eps_advs': lambda m: fixed_eps_advs('PGD', m, x, y, [0.2], AttackConfig(pgd_steps=3)),
               'pgd_broken': lambda m: pgd_broken(m, x, y, (0.1, 0.2), steps=3, restarts=2)['broken'],
               'pgd_gradients': lambda m: pgd_gradients(m, x, y, 0.2, steps=3)['nonzero_min'],
               'hsj_dist': lambda m: hsj_dist(m, x, y, 'l2', steps=2, init_evals=5, max_evals=10)['dist'],
               'input_grad_stats': lambda m: input_grad_stats(m, x, y)['norm'],
               'APGD-CE': lambda m: attack_broken('APGD-CE', m, x, y, 'linf', 0.2, AutoAttackConfig(apgd_iter=3)),
               'Square': lambda m: attack_broken('Square', m, x, y, 'linf', 0.2, AutoAttackConfig(square_queries=20))}
    for name, attack in attacks.items():
        want = attack(bn_model().eval())
        tr = bn_model().train()
        got = attack(tr)
        for a, b in zip(*((want, got) if isinstance(want, tuple) else ((want,), (got,)))):
            if isinstance(a, torch.Tensor): assert torch.equal(a, b), name
            else: np.testing.assert_array_equal(np.asarray(a, float), np.asarray(b, float), err_msg=name)
        for k, v in tr.state_dict().items():
            assert torch.equal(v, state[k]), (name, k)   # running_mean, running_var, num_batches_tracked


def test_the_audit_refuses_a_configuration_that_asks_for_autoattack_without_it():
    with pytest.raises(ValueError, match='guessfirst_nb.autoattack.full_audit'): audit(Run('mnist', 'smoke'))
    with pytest.raises(ValueError, match='valid profiles: smoke, quick, paper-lite'): audit(Run('mnist', 'nope'))


@pytest.mark.parametrize('argv, says', [(['--dataset', 'svhn'], 'valid datasets: mnist, fashion_mnist'),
                                        (['--profile', 'full'], 'valid profiles: smoke, quick, paper-lite, paper'),
                                        (['--device', 'tpu'], 'valid devices: auto, cpu, cuda, mps')])
def test_cli_refuses_bad_arguments(argv, says):
    err = io.StringIO()
    with contextlib.redirect_stderr(err): assert audit_main(argv) == 2
    assert says in err.getvalue()


# --- a smoke reproduction and its audit (slow) -------------------------------------------------------------------

@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    "A smoke reproduction of MNIST (seed 0) and its audit, with AutoAttack, in a temporary folder."
    tmp = tmp_path_factory.mktemp('audit')
    run = Run('mnist', 'smoke', runs=tmp / 'runs', out=tmp / 'results')
    repro = reproduce(run, progress=False, log=quiet)
    return run, repro, full_audit(run, log=quiet)

def copy_of(run, tmp_path, runs=False) -> Run:
    "`run` with its results (and, with `runs`, its checkpoints) copied under `tmp_path`."
    shutil.copytree(run.out, tmp_path / 'results')
    if runs: shutil.copytree(run.runs, tmp_path / 'runs')
    return Run(run.dataset, run.profile, run.seed, tmp_path / 'runs' if runs else run.runs, tmp_path / 'results')

def per_sample(e): return sizes(e).tolist()

class Killed(Exception): pass

def killed_at(model, monkeypatch):
    "Make the audit die as it starts on `model` (loading it), after every model before it is saved as a stage."
    load = A.load_model
    def load_or_die(run, name, **kw):
        if name == model: raise Killed
        return load(run, name, **kw)
    monkeypatch.setattr(A, 'load_model', load_or_die)
    return lambda: monkeypatch.setattr(A, 'load_model', load)

@pytest.mark.slow
def test_audit_writes_its_file(smoke):
    run, repro, doc = smoke
    saved = json.loads(run.result('audit').read_text())   # the file as JSON: its keys, in their order
    assert to_plain(doc) == saved and audit_doc(saved) == doc
    assert set(saved['results']) == set(TARGETS) and set(saved['compression']) == set(CONDITIONED + ['CNN'])
    assert saved['audit_config']['n'] == 50 and len(saved['images']['positions']) == 50
    assert saved['environment']['foolbox'] == fb.__version__ and saved['total_seconds'] > 0
    assert saved['reproduction']['path'] == str(run.result())
    assert not run.stages('audit').exists()   # the stages go once the audit is written
    pos = saved['images']['positions']
    for m, r in saved['results'].items():
        assert r['n'] == 50 and list(r) == ['n', 'clean', 'attacks', 'checks', 'worst_case', 'seconds', 'gradients']
        assert saved['seconds'][m] == r['seconds']
        for key, w in r['worst_case'].items():   # the worst case is never above any single attack
            assert w['acc'] <= min(v for v in w['single'].values() if v is not None) + 1e-12, (m, key)
        # the reproduction's entries carried into the audit give back its own accuracy on the same images
        e = repro['results'][m]['PGD/white']
        want = np.mean([e['first_broken'][i] == -1 or e['first_broken'][i] > e['eps'].index(0.3) for i in pos])
        assert abs(r['worst_case']['linf 0.3']['single']['repro PGD/linf'] - want) < 1e-12
        assert len(r['attacks']['HSJ/l2']['index']) == 10
        g = r['gradients']   # the input gradients, per image
        assert all(len(g[k]) == 50 for k in ('max_abs', 'zero_frac', 'norm', 'norm_f32'))
        for a in AUTOATTACK:   # AutoAttack (notebook 17), on what the audit's attacks left
            e = r['attacks'][f'{a}/linf']
            assert (e['cascade'], e['config']['apgd_iter'], len(e['attacked'])) == (True, 5, 2)
            assert all(w['single'][f'{a}/linf'] is None for k, w in r['worst_case'].items() if k.startswith('linf'))
    assert 'autoattack_config' not in saved and not any('AutoAttack' in k for k in saved['seconds'])

@pytest.mark.slow
def test_audit_loads_and_force_recomputes_the_models_asked_for(smoke, tmp_path):
    run, _, doc = smoke
    again = full_audit(run, log=quiet)
    assert again == doc and again.total_seconds == json.loads(run.result('audit').read_text())['total_seconds']
    r2 = copy_of(run, tmp_path)
    msgs = []
    one = full_audit(r2, force=True, models=['CNN'], log=lambda *a: msgs.append(' '.join(map(str, a))))
    assert list(one.results) == ['CNN'] and list(one.compression) == ['CNN']
    assert one.total_seconds != doc.total_seconds and not any('resumed' in m for m in msgs)
    for a, e in doc.results['CNN'].attacks.items():   # seeded: the same, sample by sample
        assert per_sample(one.results['CNN'].attacks[a]) == per_sample(e), a

@pytest.mark.slow
def test_audit_resumes_after_a_kill(smoke, tmp_path, monkeypatch):
    "Killed as it starts on C-DV: CNN is a stage; the audit run again takes it and equals an uninterrupted one."
    run, _, saved = smoke
    r2 = copy_of(run, tmp_path)
    revive = killed_at('C-DV', monkeypatch)
    with pytest.raises(Killed): full_audit(r2, force=True, models=['CNN', 'C-DV'], log=quiet)
    assert sorted(p.name for p in r2.stages('audit').iterdir()) == ['CNN.json']
    revive(); msgs = []
    doc = full_audit(r2, force=True, models=['CNN', 'C-DV'], log=lambda *a: msgs.append(' '.join(map(str, a))))
    assert any('CNN: resumed' in m for m in msgs) and not any('C-DV: resumed' in m for m in msgs)
    assert not r2.stages('audit').exists()
    for m in ('CNN', 'C-DV'):   # a resumed audit equals an uninterrupted one, sample by sample
        assert replace(doc.compression[m], seconds=0) == replace(saved.compression[m], seconds=0)
        for a, e in saved.results[m].attacks.items():
            assert per_sample(doc.results[m].attacks[a]) == per_sample(e), (m, a)

@pytest.mark.slow
def test_a_changed_checkpoint_or_reproduction_is_audited_again(smoke, tmp_path, monkeypatch):
    "With the attacks stubbed (cheap): what is taken from a stage, and what is computed again."
    run, _, _ = smoke
    r2 = copy_of(run, tmp_path, runs=True)
    calls = []
    def stub(model, x, y, cfg, black, extra, hsj_index, log):
        calls.append(model.__class__.__name__)
        return ModelResult(n=len(y), clean=1.0, attacks={}, checks={}, worst_case={}, seconds=0.0)
    monkeypatch.setattr(A, 'audit_model', stub)
    monkeypatch.setattr(A, 'compression', lambda *a, **k: {f.name: 0 for f in fields(A.Compression)
                                                             if f.name != 'seconds'})
    def audit_cnn():   # killed as it starts on C-DV, so that CNN's stage stays
        calls.clear(); revive = killed_at('C-DV', monkeypatch)
        with pytest.raises(Killed): A.audit(r2, AuditConfig(n=50, autoattack=False, n_probe=100),
                                            force=True, models=['CNN', 'C-DV'], log=quiet)
        revive(); return len(calls)
    assert audit_cnn() == 1 and audit_cnn() == 0              # the second time, CNN is taken from its stage
    doc = json.loads(r2.result().read_text()); doc['total_seconds'] += 1
    r2.result().write_text(json.dumps(doc))                    # a change the audit does not read: taken
    assert audit_cnn() == 0
    fb = doc['results']['CNN']['PGD/white']['first_broken']; fb[0] = -1 if fb[0] != -1 else 0
    r2.result().write_text(json.dumps(doc))                    # an entry it reads changed: audited again
    assert audit_cnn() == 1 and audit_cnn() == 0
    ck = torch.load(r2.checkpoint('CNN'), weights_only=True)
    torch.save(dict(ck, note='retrained'), r2.checkpoint('CNN'))   # the checkpoint changed: audited again
    assert audit_cnn() == 1 and audit_cnn() == 0
    other = r2.stages('audit') / 'C-JS.json'; other.write_text('{}')   # a stage of another call
    A.audit(r2, AuditConfig(n=50, autoattack=False, n_probe=100), force=True, models=['CNN'], log=quiet)
    assert other.exists() and not (r2.stages('audit') / 'CNN.json').exists()   # only this call's stages cleared

@pytest.mark.slow
def test_audit_errors(smoke, tmp_path):
    run, _, _ = smoke
    with pytest.raises(FileNotFoundError, match='guessfirst-reproduce --dataset mnist --profile smoke --seed 0'):
        full_audit(Run('mnist', 'smoke', runs=run.runs, out=tmp_path / 'nothing'), log=quiet)

@pytest.mark.slow
def test_cli_writes_the_audit_and_its_tables(smoke, tmp_path):
    run, _, _ = smoke
    r2 = copy_of(run, tmp_path)
    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        assert audit_main(['--dataset', 'mnist', '--profile', 'smoke', '--runs', str(run.runs), '--out',
                           str(r2.out)]) == 0
    p = r2.result('audit')
    assert str(p) in o.getvalue() and p.with_suffix('.md').exists()
    assert '## Input gradients of the cross-entropy' in p.with_suffix('.md').read_text()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e := io.StringIO()):   # no reproduction there
        assert audit_main(['--dataset', 'mnist', '--profile', 'smoke', '--out', str(tmp_path / 'none')]) == 1
    assert e.getvalue().startswith('error: no reproduction results at') and e.getvalue().count('\n') == 1

@pytest.mark.slow
def test_remeasure_gradients_reproduces_the_committed_ones(tmp_path):
    "The committed paper-lite audit's gradients, measured again on the published weights, on a copy."
    src = ROOT / 'results' / 'paper-lite' / 'mnist_audit.json'
    p = tmp_path / 'mnist_audit.json'; shutil.copy(src, p)
    before = json.loads(p.read_text())
    doc = remeasure_gradients(p)
    assert p.with_suffix('.md').exists() and 'gradients_source' in json.loads(p.read_text())
    for m, r in before['results'].items():
        old, new = r['gradients'], asdict(doc.results[m].gradients)
        # other float kernels move the smallest gradients (a saturated softmax: 1 - p_y is quantized in float32, and
        # cancels against the other classes' terms), so: most images within 10%, and the same zeros
        for k in ('norm', 'max_abs'):
            assert np.mean(np.isclose(new[k], old[k], rtol=0.1)) >= 0.9, (m, k)
        for k in ('norm_f32', 'max_abs'):
            assert (np.array(new[k]) == 0).tolist() == (np.array(old[k]) == 0).tolist(), (m, k)


# --- the audit's document: its schema on the committed files and on documents made by hand (fast) --------------

AUDITS = committed('paper*/*_audit.json')

def test_the_committed_audits_are_found():
    "The round trip below is parametrized by a glob: an empty glob would skip it without a word."
    assert {'paper/mnist_audit.json', 'paper/fashion_mnist_audit.json', 'paper-lite/mnist_audit.json',
            'paper-lite/fashion_mnist_audit.json'} <= set(map(label, AUDITS))

@pytest.mark.parametrize('path', AUDITS, ids=label)
def test_every_committed_audit_reads_and_writes_back_byte_for_byte_and_renders_its_markdown(path):
    text = path.read_text()
    doc = audit_doc(json.loads(text))
    assert json.dumps(to_plain(doc), indent=1, allow_nan=False) == text
    md = path.with_suffix('.md').read_text()   # add_autoattack wrote one more newline than the command
    assert audit_markdown(doc) in (md, md[:-1])

CFG = AuditConfig(linf_eps=(0.15, 0.3), l2_eps=())

def grid(fb, kind='white'):
    "An attack on the grid 0, 0.15, 0.3 that first broke each image at the index `fb` (-1: never)."
    return GivenEntry(kind=kind, norm='linf', eps=[0, 0.15, 0.3], first_broken=fb)

def made_doc(**results) -> AuditDoc:
    "A document by hand: one model per keyword, {attack: entry}, on four images; its worst cases computed."
    def result(attacks):
        r = ModelResult(n=4, clean=0.75, attacks=attacks, checks={}, worst_case={}, seconds=1.0)
        return replace(r, worst_case=worst_cases(r, CFG))
    return AuditDoc(dataset='mnist', profile='made-up', seed=0, audit_config=plain(CFG), attack_config={},
                    images=Images(Subset(4, 0), [0, 1, 2, 3], None, Subset(2, 1)), reproduction=Source('r.json', None),
                    environment={}, seconds={}, total_seconds=1.0,
                    results={m: result(a) for m, a in results.items()}, compression={})

# PGD-ce breaks image 1 at 0.15 and image 2 at 0.3; PGD-margin image 2 at 0.15 and image 3 clean; the reproduction none
MADE = made_doc(CNN={'PGD-ce/linf': grid([-1, 1, 2, -1]), 'PGD-margin/linf': grid([-1, -1, 1, 0]),
                     'repro PGD/linf': grid([-1, -1, -1, -1])})

def test_the_worst_case_table_of_a_document_made_by_hand():
    w = MADE.results['CNN'].worst('linf', 0.15)
    assert (w.k, w.n, w.single, w.only) == (1, 4, {'PGD-ce/linf': 0.75, 'PGD-margin/linf': 0.5, 'repro PGD/linf': 1.0},
                                            {'PGD-ce/linf': 1, 'PGD-margin/linf': 2, 'repro PGD/linf': 0})
    t = worst_case_table(MADE, paper={('mnist', 'PGD', 'white', 0.15): {'CNN': 12.3}})
    lo, hi = wilson(1, 4)
    assert t['CNN'][('l-inf 0.15', 'paper: PGD white-box')] == '12.3'
    assert t['CNN'][('l-inf 0.30', 'paper: PGD white-box')] == ''     # no paper value there
    assert t['CNN'][('l-inf 0.15', 'reproduction: PGD white-box')] == '100.0'
    assert t['CNN'][('l-inf 0.15', 'audit: PGD margin (100 x 5)')] == '50.0'
    assert t['CNN'][('l-inf 0.15', 'audit: PGD cross-entropy (100 x 5)')] == '75.0'
    assert t['CNN'][('l-inf 0.15', 'worst case, 3 attacks [95% CI]')] == f'25.0 [{100 * lo:.1f}, {100 * hi:.1f}]'
    assert len(t) == 10   # l2 2.0 is not in the worst cases: no rows for it

def test_the_checks_table_shows_the_largest_violation():
    rows = [Row('PGD-ce', 0.15, 0.30, 0.20, False), Row('PGD-ce', 0.3, 0.5, 0.1, False), Row('FGSM', 0.3, 0.1, 0.2, True)]
    r = replace(MADE.results['CNN'], checks={'a': Check('a', True, 0.02, [], 'PASS'), 'c': Check('c', False, 0.02, rows, 'FAIL')})
    t = checks_table({'CNN': r})
    assert t['CNN'].tolist() == ['pass', 'n/a', 'FAIL (PGD-ce @0.3: 50.0 vs 10.0)', 'n/a']

def test_the_hsj_table_reads_the_subset():
    hsj = A.HsjEntry(dist=[0.1, None], norm='linf', seconds=0.0, steps=1, init_evals=1, max_evals=1, no_start=0,
                     kind='decision', index=[0, 3])
    doc = made_doc(CNN={'PGD-ce/linf': grid([-1, 1, 2, -1]), 'HSJ/linf': hsj})
    t = hsj_table(doc)   # on images 0 and 3: PGD broke neither, HopSkipJump image 0 at 0.1
    assert t['CNN'].tolist() == ['100.0', '50.0', '1 of 2'] * 2 and list(t.index)[:2] == [
        'l-inf 0.15: without HSJ', 'l-inf 0.15: with HSJ']

def test_an_unknown_key_is_one_error_naming_where():
    data = to_plain(MADE)
    def bad(where, key):
        d = copy.deepcopy(data); where(d)[key] = 1
        with pytest.raises(ValueError) as e: audit_doc(d)
        return str(e.value)
    assert bad(lambda d: d, 'colour') == "audit: AuditDoc has no field 'colour'"
    assert bad(lambda d: d['results']['CNN']['worst_case']['linf 0.3'], 'acc_pct') == \
        "audit.results['CNN'].worst_case['linf 0.3']: Worst has no field 'acc_pct'"
    # an attack entry is told apart by its keys: the error names its own kind
    assert bad(lambda d: d['results']['CNN']['attacks']['PGD-ce/linf'], 'steps') == \
        "audit.results['CNN'].attacks['PGD-ce/linf']: GivenEntry has no field 'steps'"
    d = copy.deepcopy(data); del d['results']['CNN']['clean']
    with pytest.raises(ValueError, match=r"audit.results\['CNN'\]: ModelResult lacks 'clean'"): audit_doc(d)

def test_to_plain_leaves_out_absent_keys_and_keeps_nulls():
    p = to_plain(MADE)
    assert 'note' not in p and 'pgd_gradients' not in p and 'gradients' not in p['results']['CNN']
    assert p['images']['hsj_positions'] is None and p['reproduction'] == {'path': 'r.json', 'git_commit': None}
    assert p['results']['CNN']['attacks']['PGD-ce/linf'] == dict(kind='white', norm='linf', eps=[0, 0.15, 0.3],
                                                                 first_broken=[-1, 1, 2, -1])
    assert 'hsj_subset' not in p['results']['CNN']['worst_case']['linf 0.15']   # no HopSkipJump: absent
    assert to_plain(GivenEntry(kind='black', norm='linf', dist=[float('inf'), 0.5]))['dist'] == [None, 0.5]
    assert audit_doc(p) == MADE


# --- moved from notebook 09: the committed documents, the stage key, add_gradients, the images attacked (fast) ------

def test_autoattack_entries_have_no_accuracy_of_their_own_and_an_unknown_field_is_named():
    "The 200-epoch audit has every later addition; an AutoAttack entry that claims an accuracy is refused."
    text = (ROOT / 'results' / 'paper' / 'mnist_audit.json').read_text()
    d200 = audit_doc(json.loads(text))
    sq = d200.results['C-JS'].attacks['Square/linf']
    assert isinstance(sq, CascadeEntry) and not hasattr(sq, 'acc')
    assert d200.results['C-JS'].worst('linf', 0.15).single['Square/linf'] is None
    bad = json.loads(text); bad['results']['C-JS']['attacks']['Square/linf']['acc'] = [1.0, 0.5, 0.4]
    with pytest.raises(ValueError, match=re.escape(
            "audit.results['C-JS'].attacks['Square/linf']: CascadeEntry has no field 'acc'")): audit_doc(bad)
    bad = json.loads(text); bad['results']['CNN']['worst_case']['linf 0.15']['accuracy'] = 0.5
    with pytest.raises(ValueError, match=re.escape(
            "audit.results['CNN'].worst_case['linf 0.15']: Worst has no field 'accuracy'")): audit_doc(bad)

def test_a_stage_key_holds_the_reproductions_entries_as_its_file_has_them():
    "Typed reading adds no field: a stage saved before the reproduction was read through its schema is still taken."
    raw = json.loads((ROOT / 'results' / 'paper-lite' / 'mnist.json').read_text())
    sc = stage_config(reproduction(raw), 'C-JS', AuditConfig())
    assert plain(sc['reproduction']['entries']) == {entry(*k): raw['results']['C-JS'][entry(*k)]
                                                    for k in READ_FROM_REPRODUCTION}

def test_add_gradients_measures_a_made_up_audit_on_its_own_images():
    torch.manual_seed(0); lin = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()
    fake = AuditDoc(dataset='mnist', profile='made-up', seed=0, audit_config={}, attack_config={},
                    images=Images(Subset(100, 0), [3, 5, 8], None, Subset(10, 1)), reproduction=Source('', None),
                    environment={}, seconds={}, total_seconds=0.0, compression={},
                    results={'linear': ModelResult(n=3, clean=1.0, attacks={}, grad_norms=[1.0, 1.0, 1.0], checks={},
                                                   worst_case={}, seconds=0.0)})
    got = add_gradients(fake, {'linear': lin}, pgd=dict(eps=0.1, steps=3, n=2), source='constructed')
    te = load('mnist', 'test').subset(100, seed=0)
    x, y = te.images()[[3, 5, 8]], te.y[[3, 5, 8]]
    assert got.results['linear'].gradients == A._grad_json(input_grad_stats(lin, x, y))   # its own images
    assert (got.results['linear'].grad_norms, fake.results['linear'].grad_norms) == (None, [1.0, 1.0, 1.0])
    assert (len(got.pgd_gradients.results['linear'].broken), got.pgd_gradients.config.steps) == (2, 3)
    assert got.gradients_source == 'constructed'
    assert list(to_plain(got)['results']['linear']) == ['n', 'clean', 'attacks', 'checks', 'worst_case', 'seconds',
                                                        'gradients']   # no grad_norms key left behind
    with pytest.raises(ValueError, match=re.escape("models ['CNN'] are not in this audit")):
        add_gradients(fake, {'CNN': lin})

def test_the_images_an_audit_attacks_are_seeded_sorted_and_all_of_them_when_n_is_n_test():
    p1, p2 = A._positions(100, 50, 0), A._positions(100, 50, 0)
    assert torch.equal(p1, p2) and len(set(p1.tolist())) == 50 and bool((p1[1:] > p1[:-1]).all())
    assert torch.equal(A._positions(100, 100, 0), torch.arange(100))
    with pytest.raises(ValueError, match=re.escape('subset size must be in 1..10')): A._positions(10, 11, 0)
    im = audit_images(AttackConfig(n_test=100, seed=0), AuditConfig(n=50, n_hsj=10))
    assert im.positions == p1.tolist() and len(im.hsj_positions) == 10
    assert set(im.hsj_positions) <= set(range(50))          # positions among the attacked images, not the subset
    assert audit_images(AttackConfig(n_test=100, seed=0), AuditConfig(n=500, n_hsj=0)).positions == list(range(100))
    _, ya = attacked_images('mnist', im)
    assert torch.equal(ya, load('mnist', 'test').subset(100, seed=0).y[p1])

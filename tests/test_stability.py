"""The stability study's machinery (notebook 10) on real smoke-profile runs: agreement with the reproduction, the stage
keys, resuming after a kill, two processes sharing one study, a checkpoint changed under the same file name or an
epoch not yet saved, damaged stage files, a run still in training, and the command line.

The fixture trains and attacks two smoke reproductions (seeds 0 and 1): every test that uses it is slow. Nothing here
asserts an accuracy of the smoke models, or that one changes: what was measured again is checked through the stage
keys (the SHA-256 of every checkpoint a stage read), through which stages were resumed and which checkpoints were
loaded, never through the numbers."""
import contextlib, io, json, shutil
from dataclasses import replace
import pytest
import torch
import guessfirst_nb.stability as S
from guessfirst_nb.data import load
from guessfirst_nb.io import sha256_file
from guessfirst_nb.models import TARGETS, SUBSTITUTE
from guessfirst_nb.reproduce import reproduce
from guessfirst_nb.run import Run
from guessfirst_nb.stability import (stability, main, seed_results, _epochs, _grid, craft, transfer, EpochRow,
                                     read_stability)
from guessfirst_nb.store import Store, plain, typed
from guessfirst_nb.train import load_model

slow = pytest.mark.slow
quiet = lambda *a: None
FIRST = ['C-JS', 'CNN']
LOAD = S.load_model
SUBS = [f'{SUBSTITUTE}-epoch{e}' for e in (1, 2)]   # the smoke substitute's stages: epochs 1 and 0 (the last, 2)

class Log(list):
    "A `log` that keeps every line."
    def __call__(self, *a): self.append(' '.join(map(str, a)))
    def resumed(self): return [m.split()[1].rstrip(':') for m in self if ' resumed from ' in m]

@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    "Smoke reproductions of MNIST for seeds 0 and 1, and the stability study of seed 0, in a temporary folder."
    tmp = tmp_path_factory.mktemp('stability')
    run = Run('mnist', 'smoke', runs=tmp / 'runs', out=tmp / 'results')
    repro = {s: reproduce(run.with_seed(s), progress=False, log=quiet) for s in (0, 1)}
    return run, repro, stability(run, log=quiet)

def copy(run, tmp_path, runs=False) -> Run:
    "`run` with its results, and its checkpoints if `runs`, copied under `tmp_path`."
    shutil.copytree(run.out, tmp_path / 'results')
    if runs: shutil.copytree(run.runs, tmp_path / 'runs')
    return replace(run, out=tmp_path / 'results', runs=tmp_path / 'runs' if runs else run.runs)

def no_time(curves):
    "{model: its rows without the seconds they took} of a study's `curves`."
    return {m: [replace(r, seconds=0.0) for r in rows] for m, rows in curves.items()}
def stage(run, name): return json.loads(Store(run.stages('stability')).path(name).read_text())
def loads(monkeypatch, hook=lambda m, e: None) -> list:
    "Record every (model, epoch) the study loads, calling `hook(model, epoch)` first."
    seen = []
    def load_model(run, m, epoch=None, device='cpu'):
        hook(m, epoch); seen.append((m, epoch)); return LOAD(run, m, epoch=epoch, device=device)
    monkeypatch.setattr(S, 'load_model', load_model)
    return seen

@slow
def test_the_study_covers_every_target_epoch_and_substitute(smoke):
    run, _, doc = smoke
    assert list(run.epochs('CNN')) == [1, 2] and not run.stages('stability').exists()   # stages cleared once written
    assert list(doc.curves) == TARGETS and [r.epoch for r in doc.curves['C-JS']] == [1, 2]
    assert sorted(doc.substitute) == ['1', '2'] and read_stability(run.result('stability')) == doc   # as written
    for rows in doc.curves.values():
        for r in rows:   # the signs of masking of score_stats, every one a fraction
            assert all(0 <= x <= 1 for x in (r.grad_all_zero, r.grad_zero_entries, r.grad_norm_f32_zero))
            assert r.grad_max >= 0 and r.grad_norm_f32_zero >= r.grad_all_zero and r.grad_zero is None
            for e in (0.15, 0.3):   # the white-box worst case is never above either of its attacks, and cumulative
                w = r.white; assert w[f'worst {e:g}'] <= min(w[f'ce {e:g}'], w[f'margin {e:g}']) + 1e-12
                assert w[f'worst {e:g}'] <= w['worst 0.15'] + 1e-12

@slow
def test_last_epoch_and_substitute_give_the_reproductions_numbers(smoke):
    "FGSM and C&W are deterministic: equal on the same images; PGD starts at random: close."
    _, repro, doc = smoke
    P0 = repro[0]['results']
    for m in TARGETS:
        last = doc.row(m, 2); b = last.black['2']
        assert abs(last.clean - P0[m]['clean']) < 1e-12
        for e in (0.15, 0.3):
            r = P0[m]['FGSM/black']; assert abs(b[f'FGSM {e:g}'] - r['acc'][r['eps'].index(e)]) < 1e-12
            r = P0[m]['PGD/black']; assert abs(b[f'PGD {e:g}'] - r['acc'][r['eps'].index(e)]) <= 0.05
        r = P0[m]['CW/black']; assert abs(b['CW 2'] - r['acc'][r['eps'].index(2.0)]) < 1e-12

@slow
def test_transfer_of_the_study_is_transfer(smoke):
    run, _, doc = smoke
    te = load('mnist', 'test').subset(run.profile.attack.n_test, seed=0)
    crafted = craft(load_model(run, SUBSTITUTE)[0], te.images(), te.y, run.profile.stability, run.profile.attack)
    got = transfer(load_model(run, 'CNN')[0], te.images(), te.y, crafted, run.profile.stability)
    assert got == doc.row('CNN', 2).black['2']

@slow
def test_stage_keys_name_every_input(smoke, tmp_path):
    """A substitute's stage is kept under the configurations, the images and its checkpoint's SHA-256; a target's
    under the same and the SHA-256 of each of its epochs' checkpoints and of each substitute's."""
    run, _, doc = smoke
    run = copy(run, tmp_path)
    assert stability(run, force=True, models=FIRST, log=quiet) is None   # the others are not measured
    prof, sha = run.profile, lambda m, e: sha256_file(run.checkpoint(m, e))
    common = dict(config=plain(dict(stability=prof.stability, attack=prof.attack)),
                  images=dict(n=prof.attack.n_test, seed=prof.attack.seed))
    subs = {f'{SUBSTITUTE} epoch {e}': sha(SUBSTITUTE, e) for e in (1, 2)}
    for m in FIRST:
        st = stage(run, m)
        assert st['key'] == dict(common, checkpoints={f'{m} epoch {e}': sha(m, e) for e in (1, 2)} | subs)
        assert no_time({m: typed(list[EpochRow], st['value'])}) == {m: no_time(doc.curves)[m]}   # its rows, epochs 1, 2
    for e in (1, 2):
        st = torch.load(Store(run.stages('stability')).path(f'{SUBSTITUTE}-epoch{e}', True), weights_only=True)
        assert st['key'] == dict(common, checkpoints={f'{SUBSTITUTE} epoch {e}': sha(SUBSTITUTE, e)})
        assert set(st['value']) == {'crafted', 'clean'} and st['value']['clean'] == doc.substitute[str(e)].clean

class Killed(Exception): pass

@slow
def test_a_killed_run_resumes(smoke, tmp_path, monkeypatch):
    "Killed while measuring C-DV's second epoch: the substitutes and the CNN are kept, C-DV's first epoch is not."
    run, _, doc = smoke
    run = copy(run, tmp_path)
    def kill(m, e):
        if (m, e) == ('C-DV', 2): raise Killed
    loads(monkeypatch, kill)
    with pytest.raises(Killed): stability(run, force=True, log=quiet)
    folder = run.stages('stability')
    assert sorted(p.name for p in folder.iterdir()) == ['CNN.json', *(f'{s}.pt' for s in SUBS)]
    seen, log = loads(monkeypatch), Log()
    doc2 = stability(run, force=True, log=log)
    assert log.resumed() == ['substitute', 'substitute', 'CNN'] and not folder.exists()
    assert {m for m, _ in seen} == set(TARGETS) - {'CNN'}   # nothing crafted again, the CNN not loaded
    assert no_time(doc2.curves) == no_time(doc.curves)

@slow
def test_two_processes_share_one_study(smoke, tmp_path, monkeypatch):
    """The second (started while the first measures C-JS) measures the others, CNN among them, ends first and finds
    C-JS missing; the first takes CNN from it rather than measuring it, and writes the study."""
    run, _, doc = smoke
    run = copy(run, tmp_path)
    written = json.loads(run.result('stability').read_text())['total_seconds']
    folder, others = run.stages('stability'), [m for m in TARGETS if m != 'C-JS']
    folder.mkdir(); (folder / '.CNN.json.123.tmp').write_text('')   # a third writer's file in progress: kept
    side, log2 = [], Log()
    def second_process(m, e):
        if (m, e) == ('C-JS', 2) and not side:
            side.append(len(seen))
            side.append(stability(run, force=True, models=others, log=log2))
            side.append(sorted(p.stem for p in folder.glob('*.json')))
            side.append(json.loads(run.result('stability').read_text())['total_seconds'])   # untouched so far
    seen, log = loads(monkeypatch, second_process), Log()
    doc3 = stability(run, force=True, models=FIRST, log=log)
    assert side[1:] == [None, sorted(others), written]
    assert log2.resumed() == ['substitute', 'substitute'] and any('mnist CNN: 2 epochs' in m for m in log2)
    assert seen[side[0]:side[0] + 2 * len(others)] == [(m, e) for m in others for e in (1, 2)]   # the second's
    first = seen[:side[0]] + seen[side[0] + 2 * len(others):]
    assert first == [(SUBSTITUTE, 1), (SUBSTITUTE, 2), ('C-JS', 1), ('C-JS', 2)] and log.resumed() == ['CNN']
    assert list(doc3.curves) == TARGETS and no_time(doc3.curves) == no_time(doc.curves)
    assert [p.name for p in folder.iterdir()] == ['.CNN.json.123.tmp']
    # models=[]: nothing measured, None; an unknown model is refused
    shutil.rmtree(folder)
    assert stability(run, force=True, models=[], log=quiet) is None
    with pytest.raises(ValueError, match=r"unknown models \['VGG'\]"): stability(run, force=True, models=['VGG'])

def negate(run, model, epoch):
    "Change a checkpoint under the same file name: its linear weights negated."
    f = run.checkpoint(model, epoch); ck = torch.load(f, weights_only=True)
    ck['model'] = {k: -v if v.ndim == 2 else v for k, v in ck['model'].items()}; torch.save(ck, f)

@slow
@pytest.mark.parametrize('changed, kept', [('C-JS', ['CNN']), (SUBSTITUTE, [])])
def test_a_changed_checkpoint_is_measured_again(smoke, tmp_path, monkeypatch, changed, kept):
    """A checkpoint changed under the same file name is read again: a target's only that target, the substitute's its
    examples and every target. Checked through the keys: the stored SHA-256 is the new file's, and only the stages
    whose inputs did not change were resumed."""
    run, _, doc = smoke
    run = copy(run, tmp_path, runs=True)
    stability(run, force=True, models=FIRST, log=quiet)
    before = {m: stage(run, m)['key']['checkpoints'] for m in FIRST}
    name, old = f'{changed} epoch 1', sha256_file(run.checkpoint(changed, 1))
    negate(run, changed, 1)
    new = sha256_file(run.checkpoint(changed, 1)); assert new != old
    log = Log()
    stability(run, force=True, models=FIRST, log=log)
    assert log.resumed() == ['substitute'] * (2 - (changed == SUBSTITUTE)) + kept
    after = {m: stage(run, m)['key']['checkpoints'] for m in FIRST}
    for m in FIRST if changed == SUBSTITUTE else [changed]:   # the keys that read it name the new file
        assert before[m][name] == old and after[m][name] == new
        assert {k: v for k, v in after[m].items() if k != name} == {k: v for k, v in before[m].items() if k != name}
    if changed == SUBSTITUTE:
        st = torch.load(Store(run.stages('stability')).path(SUBS[0], True), weights_only=True)
        assert st['key']['checkpoints'] == {name: new}
    else: assert after['CNN'] == before['CNN']

@slow
def test_an_epoch_saved_later_is_measured(smoke, tmp_path, monkeypatch):
    """A target measured while its run had saved fewer epochs is measured again on every epoch now on disk: its rows
    are always those of the epochs its key names."""
    run, _, _ = smoke
    run = copy(run, tmp_path, runs=True)
    held = tmp_path / 'epoch002.pt'; shutil.move(run.checkpoint('CNN', 2), held)   # not yet saved
    stability(run, force=True, models=['CNN'], log=quiet)
    st = stage(run, 'CNN')
    assert [r['epoch'] for r in st['value']] == [1]
    assert [k for k in st['key']['checkpoints'] if 'CNN' in k] == ['CNN epoch 1']
    shutil.move(held, run.checkpoint('CNN', 2))
    seen, log = loads(monkeypatch), Log()
    stability(run, force=True, models=['CNN'], log=log)
    st = stage(run, 'CNN')
    assert log.resumed() == ['substitute', 'substitute'] and seen == [('CNN', 1), ('CNN', 2)]
    assert [r['epoch'] for r in st['value']] == [1, 2]
    assert [k for k in st['key']['checkpoints'] if 'CNN' in k] == ['CNN epoch 1', 'CNN epoch 2']

@slow
def test_a_damaged_stage_is_computed_again(smoke, tmp_path, monkeypatch):
    run, _, _ = smoke
    run = copy(run, tmp_path)
    stability(run, force=True, models=FIRST, log=quiet)
    store = Store(run.stages('stability'))
    key = stage(run, 'C-JS')['key']
    store.path('C-JS').write_text('{"key": ')                         # cut short
    store.path(SUBS[0], True).write_bytes(b'not a torch file')
    seen, log = loads(monkeypatch), Log()
    stability(run, force=True, models=FIRST, log=log)
    assert sum('unreadable' in m for m in log) == 2 and log.resumed() == ['substitute', 'CNN']
    assert seen == [(SUBSTITUTE, 1), ('C-JS', 1), ('C-JS', 2)]
    assert stage(run, 'C-JS')['key'] == key                            # and repaired
    assert torch.load(store.path(SUBS[0], True), weights_only=True)['key']['checkpoints'] == \
        {f'{SUBSTITUTE} epoch 1': sha256_file(run.checkpoint(SUBSTITUTE, 1))}

@slow
def test_a_run_still_in_training_is_refused(smoke, tmp_path):
    run, _, _ = smoke
    shutil.copytree(run.runs, tmp_path / 'runs')
    run = replace(run, runs=tmp_path / 'runs', out=tmp_path / 'early')
    early = run.model_dir('C-DV-IE'); shutil.copy(early / 'epoch001.pt', early / 'last.pt')
    with pytest.raises(Exception, match='C-DV-IE is trained to epoch 1 of 2: wait for its training to end'):
        stability(run, models=['C-DV-IE'])
    with pytest.raises(Exception, match='C-DV-IE is trained to epoch 1'): stability(run)
    assert not run.out.exists()   # refused before crafting anything
    for extra in (['--models', 'C-DV-IE'], ['--curves']):
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(e := io.StringIO()):
            assert main(['--dataset', 'mnist', '--profile', 'smoke', '--seeds', '0', '--runs', str(run.runs), '--out',
                         str(run.out), *extra]) == 1
        assert e.getvalue().startswith('error: C-DV-IE is trained to epoch 1 of 2') and e.getvalue().count('\n') == 1

@slow
def test_errors_name_the_fix(smoke):
    run, _, _ = smoke
    with pytest.raises(Exception, match='LeNet5 has no checkpoint in'): stability(run.with_seed(7))
    with pytest.raises(ValueError, match='valid profiles'): stability(Run('mnist', 'nope'))
    with pytest.raises(ValueError, match=r'saved epochs: \[1, 2\]'): _epochs(run, 'CNN', [5])
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

@slow
def test_cli_runs(smoke, tmp_path):
    run, _, _ = smoke
    run = copy(run, tmp_path)
    R = run.out / 'smoke'
    args = ['--dataset', 'mnist', '--profile', 'smoke', '--runs', str(run.runs), '--out', str(run.out)]
    with contextlib.redirect_stdout(o := io.StringIO()), contextlib.redirect_stderr(io.StringIO()):   # one model
        assert main([*args, '--seeds', '0', '--models', 'CNN', '--force']) == 0
    assert o.getvalue() == (f"mnist: CNN measured, in {run.stages('stability')}; the study is written when every "
                            'target is\n')
    assert Store(run.stages('stability')).path('CNN').exists()
    with contextlib.redirect_stdout(o := io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main([*args, '--seeds', '0', '1']) == 0
    for f in ['mnist_stability.json', 'mnist_stability.md', 'mnist_epochs.png', 'mnist_masking.png',
              'mnist_substitutes.png', 'mnist_seeds.png']:
        assert (R / f).exists(), f
    assert 'written:' in o.getvalue() and [d['seed'] for d in seed_results(run)] == [0, 1]
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

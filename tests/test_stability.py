"""The stability study's machinery (notebook 10) on real smoke-profile runs: agreement with the reproduction, the stage
keys, resuming after a kill, two processes sharing one study, a checkpoint changed under the same file name or an
epoch not yet saved, damaged stage files, a run still in training, and the command line.

The fixture trains and attacks two smoke reproductions (seeds 0 and 1): every test that uses it is slow. Nothing here
asserts an accuracy of the smoke models, or that one changes: what was measured again is checked through the stage
keys (the SHA-256 of every checkpoint a stage read), through which stages were resumed and which checkpoints were
loaded, never through the numbers.

The fast tests (unmarked) are the notebook's bookkeeping on made-up inputs: which epochs a study reads, the schema of a
study's document and the byte-for-byte round trip of every committed study, how the seeds' reproductions and audits are
found on disk, and the rendering (figures, tables, markdown) of a made-up study whose every number says where it
belongs."""
import contextlib, io, json, math, shutil
from pathlib import Path
from dataclasses import replace
import pytest
import torch
import guessfirst_nb.stability as S
from guessfirst_nb.data import load
from guessfirst_nb.io import sha256_file
from guessfirst_nb.models import TARGETS, SUBSTITUTE
from guessfirst_nb.reproduce import reproduce
from guessfirst_nb.run import Run
from guessfirst_nb.audit import AuditDoc, Images, ModelResult, Source, Subset, Worst, cell_key
from guessfirst_nb.reproduce import paper_table
from guessfirst_nb.stability import (stability, main, seed_results, _epochs, _grid, craft, transfer, EpochRow,
                                     read_stability, write_stability, StabilityDoc, SubstituteEntry, audit_results,
                                     seed_worst_table, plot_epochs, plot_masking, curve_table, plot_seeds,
                                     stability_markdown, cell_name, checkpoint_name, BLACK_CELLS, CURVE_METRICS)
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
    subs = {checkpoint_name(SUBSTITUTE, e): sha(SUBSTITUTE, e) for e in (1, 2)}
    for m in FIRST:
        st = stage(run, m)
        assert st['key'] == dict(common, checkpoints={checkpoint_name(m, e): sha(m, e) for e in (1, 2)} | subs)
        assert no_time({m: typed(list[EpochRow], st['value'])}) == {m: no_time(doc.curves)[m]}   # its rows, epochs 1, 2
    for e in (1, 2):
        st = torch.load(Store(run.stages('stability')).path(f'{SUBSTITUTE}-epoch{e}', True), weights_only=True)
        assert st['key'] == dict(common, checkpoints={checkpoint_name(SUBSTITUTE, e): sha(SUBSTITUTE, e)})
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
    assert 'written:' in o.getvalue() and [d.seed for d in seed_results(run)] == [0, 1]
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


# --- the notebook's bookkeeping on made-up inputs (fast) ---
RESULTS = Path(__file__).resolve().parent.parent / 'results'

def test_epochs_are_read_from_the_checkpoints_on_disk(tmp_path):
    run = Run('mnist', 'smoke', runs=tmp_path / 'runs')
    run.model_dir('CNN').mkdir(parents=True)
    for e in (1, 2, 3): run.checkpoint('CNN', e).write_bytes(b'')   # only the names count here
    assert _epochs(run, 'CNN') == [1, 2, 3]                          # none asked for: every saved epoch
    assert _epochs(run, 'CNN', (1, 0, 3)) == [1, 3]                  # 0 is the last one, and each is read once
    with pytest.raises(ValueError, match=r'CNN has no checkpoint for epoch 5; saved epochs: \[1, 2, 3\]'):
        _epochs(run, 'CNN', (5,))
    with pytest.raises(FileNotFoundError, match='train first: guessfirst-reproduce --dataset mnist --profile smoke --seed 0'):
        _epochs(run, 'C-JS')

RAW = dict(dataset='mnist', profile='smoke', seed=3, config={}, attack_config={}, n=4, n_white=2,
           substitute={'3': dict(epoch=3, clean=0.5, seconds=1.0), '10': dict(epoch=10, clean=0.75, seconds=1.0)},
           curves={'CNN': [dict(epoch=e, clean=e / 8,
                                black={s: {'FGSM 0.15': e / 16 + int(s) / 100} for s in ('3', '10')},
                                white={'worst 0.15': e / 32}, grad_norm_f32_zero=0.0, T_true=1.0, T_other=0.0,
                                seconds=1.0) for e in (2, 5)]},
           environment=dict(git_commit=None), total_seconds=1.0)

def test_a_raw_document_reads_as_the_schema(tmp_path):
    d = typed(StabilityDoc, RAW)
    assert (d.row('CNN', 5).clean, d.row('CNN', 2).black['10']['FGSM 0.15']) == (0.625, 0.225)   # by epoch, not position
    assert (d.longest, d.epochs, d.substitute['10'].clean) == ('10', [2, 5], 0.75)   # the longest by epochs, not text
    assert d.row('CNN', 2).grad_all_zero is None          # not measured: None, and absent when written
    write_stability(d, tmp_path / 'd.json')
    assert json.loads((tmp_path / 'd.json').read_text()) == RAW   # a null kept inside `environment`, a plain dict
    with pytest.raises(ValueError, match=r'epoch 1 was not measured for CNN; measured: \[2, 5\]'): d.row('CNN', 1)
    bad = dict(RAW, curves={'CNN': [dict(RAW['curves']['CNN'][0], T_ture=1.0)]})
    with pytest.raises(ValueError, match=r"document.curves\['CNN'\]\[0\]: EpochRow has no field 'T_ture'"):
        typed(StabilityDoc, bad)
    with pytest.raises(ValueError, match="lacks 'n_white'"): typed(StabilityDoc, {k: v for k, v in RAW.items() if k != 'n_white'})
    with pytest.raises(ValueError, match='document.n: expected int'): typed(StabilityDoc, dict(RAW, n='4'))

def test_every_committed_study_round_trips_byte_for_byte(tmp_path):
    studies = sorted(RESULTS.glob('*/*_stability.json'))
    assert len(studies) >= 3
    for p in studies:   # read as the schema, then written: the file's text
        write_stability(read_stability(p), tmp_path / p.name); assert (tmp_path / p.name).read_bytes() == p.read_bytes()

def test_cell_names_are_the_documents_keys():
    assert [cell_name('FGSM', 0.15), cell_name('CW', 2.0), cell_name('worst', 0.30)] == ['FGSM 0.15', 'CW 2', 'worst 0.3']
    assert BLACK_CELLS == ['FGSM 0.15', 'FGSM 0.3', 'PGD 0.15', 'PGD 0.3', 'CW 2']
    assert checkpoint_name('C-JS', 7) == 'C-JS epoch 7'

def fake(seed, acc, n=100, dataset='mnist'):
    "A reproduction's document whose every cell is `acc`."
    e = lambda eps: dict(eps=eps, acc=[acc] * len(eps), n=n, first_broken=[])
    r = {m: {'clean': acc, 'FGSM/white': e([0, .15, .3]), 'FGSM/black': e([0, .15, .3]), 'PGD/white': e([0, .15, .3]),
             'PGD/black': e([0, .15, .3]), 'CW/white': e([0, 2.0]), 'CW/black': e([0, 2.0])} for m in TARGETS}
    return dict(dataset=dataset, profile='paper-lite', seed=seed, results=r)

def fake_audit(seed, worst: dict, dataset='mnist') -> AuditDoc:
    "An audit of `seed` that holds only each model's worst cases, `worst` = {model: {(norm, eps): (acc, lo, hi)}}."
    w = lambda eps, acc, lo, hi: Worst(eps, acc, round(acc * 100), 100, lo, hi, {}, {})
    return AuditDoc(dataset=dataset, profile='paper-lite', seed=seed, audit_config={}, attack_config={},
                    images=Images(Subset(100, 0), [], None, Subset(100, 1)), reproduction=Source('', None),
                    environment={}, seconds={}, total_seconds=0.0, compression={},
                    results={m: ModelResult(n=100, clean=1.0, attacks={}, checks={}, seconds=0.0,
                                            worst_case={cell_key(*k): w(k[1], *v) for k, v in cells.items()})
                             for m, cells in worst.items()})

def test_the_seeds_documents_are_found_by_name(tmp_path):
    R = tmp_path / 'results' / 'paper-lite'; R.mkdir(parents=True)
    for f, d in [('mnist.json', fake(0, .9)), ('mnist_seed1.json', fake(1, .8)), ('mnist_stability.json', dict(seed=0)),
                 ('fashion_mnist_seed2.json', fake(2, .7, dataset='fashion_mnist'))]:
        (R / f).write_text(json.dumps(d))
    lite = lambda ds: Run(ds, 'paper-lite', out=tmp_path / 'results')
    assert [d.seed for d in seed_results(lite('mnist'))] == [0, 1]   # not mnist_stability.json, not another dataset
    assert [d.seed for d in seed_results(lite('fashion_mnist'))] == [2]
    assert seed_results(Run('fashion_mnist', 'smoke', out=tmp_path / 'results')) == []
    cells = {('linf', 0.15): (.01, 0., .02), ('l2', 2): (.5, .4, .6)}
    for name, seed in [('mnist_audit.json', 0), ('mnist_seed3_audit.json', 3), ('fashion_mnist_audit.json', 5),
                       ('mnist_seed3_x_audit.json', 7)]:
        (R / name).write_text(json.dumps(plain(fake_audit(seed, {m: cells for m in TARGETS}), drop_none=True)))
    A = audit_results(lite('mnist'))
    assert {s: d.seed for s, d in A.items()} == {0: 0, 3: 3}   # not another dataset, not another kind of file
    t = seed_worst_table(A)
    assert list(t.index) == ['seed 0: l-inf 0.15', 'seed 0: l2 2.00', 'seed 3: l-inf 0.15', 'seed 3: l2 2.00']
    assert t.loc['seed 3: l2 2.00', 'C-JS'] == '50.0 [40.0, 60.0]' and list(t.columns) == TARGETS

def fake_study(epochs=(1, 2), subs=('1', '2'), seed=0):
    """A made-up stability study whose every number says where it belongs: model i (in `TARGETS` order) at epoch e has
    clean accuracy 0.9 + i/100 + e/1000; its black-box cells add the substitute's epochs / 1e4 to 0.5 + i/100 + e/1000,
    its white-box cells are 0.1 + i/100 + e/1000; its true-class score is i + e, its float32-norm share i / 10."""
    row = lambda i, e: EpochRow(
        epoch=e, clean=0.9 + i / 100 + e / 1000,
        black={s: {c: 0.5 + i / 100 + e / 1000 + int(s) / 1e4 for c in BLACK_CELLS} for s in subs},
        white={cell_name(k, w): 0.1 + i / 100 + e / 1000 for k in ('ce', 'margin', 'worst') for w in (0.15, 0.3)},
        grad_all_zero=0.0, grad_zero_entries=0.1, grad_max=1e-20, grad_norm_f32_zero=i / 10, T_true=float(i + e),
        T_other=-float(e), seconds=1.0)
    return StabilityDoc(dataset='mnist', profile='paper-lite', seed=seed, config={}, attack_config={}, n=100,
                        n_white=30, substitute={s: SubstituteEntry(int(s), 0.8, 1.0) for s in subs},
                        curves={m: [row(i, e) for e in epochs] for i, m in enumerate(TARGETS)}, environment={},
                        total_seconds=1.0)

def before_score_stats(doc):
    "`doc` as a study made before score_stats: only `grad_zero`."
    return replace(doc, curves={m: [replace(r, grad_zero=r.grad_norm_f32_zero, grad_norm_f32_zero=None, grad_all_zero=None,
                                            grad_zero_entries=None, grad_max=None) for r in rows]
                                for m, rows in doc.curves.items()})

@pytest.fixture
def plt():
    import matplotlib; matplotlib.use('Agg'); import matplotlib.pyplot as plt
    yield plt
    plt.close('all')

def test_plot_epochs_draws_every_cell_and_the_audits_star(plt):
    doc = fake_study()
    fig = plot_epochs(doc); assert len(fig.axes) == 8
    line = fig.axes[0].lines[TARGETS.index('C-JS')]            # the clean panel, C-JS (i = 2): 90 + 2 + e / 10 (%)
    assert list(line.get_ydata()) == pytest.approx([92.1, 92.2]) and list(line.get_xdata()) == [1, 2]
    fig = plot_epochs(doc, fake_audit(0, {'C-JS': {('linf', 0.15): (.5, .4, .6)}}))   # an audit of C-JS at 0.15
    stars = [[l.get_ydata()[0] for l in ax.lines if l.get_marker() == '*'] for ax in fig.axes]
    assert stars == [[]] * 6 + [[50.0], []]     # a star in the white-box 0.15 panel only

def test_plot_masking_draws_both_counts_or_the_old_one(plt):
    doc = fake_study()
    fig = plot_masking(doc); assert len(fig.axes) == 3 and len(fig.axes[0].lines) == 2 * len(TARGETS)
    assert list(fig.axes[0].lines[2 * TARGETS.index('C-JS') + 1].get_ydata()) == pytest.approx([20.0, 20.0])   # i / 10
    assert all(ax.get_ylabel() for ax in fig.axes) and fig.axes[1].get_yscale() == 'linear'
    fig = plot_masking(before_score_stats(doc))
    assert len(fig.axes[0].lines) == len(TARGETS) and 'float32' in fig.axes[0].get_title()
    with pytest.raises(ValueError, match='--force'):
        plot_masking(replace(doc, curves={m: [replace(r, grad_norm_f32_zero=None) for r in rows]
                                          for m, rows in doc.curves.items()}))

def test_curve_table_puts_each_number_in_its_place():
    doc = fake_study(); t = curve_table(doc)
    assert list(t.index) == list(doc.curves) and t.shape == (len(TARGETS), len(CURVE_METRICS) * 2)
    assert t.loc['C-JS', ('transfer PGD 0.15', 2)] == pytest.approx(100 * (0.5 + 0.02 + 0.002 + 2e-4))   # substitute 2
    assert t.loc['C-JS', ('white PGD 0.15', 2)] == pytest.approx(100 * 0.122)
    assert t.loc['C-JS', ('median T true', 1)] == pytest.approx(3.0)
    assert t.loc['C-JS', ('grad l2 norm 0 in float32 (%)', 1)] == pytest.approx(20.0)
    with pytest.raises(ValueError, match=r'epoch 5 was not measured for CNN; measured epochs: \[1, 2\]'):
        curve_table(doc, [1, 5])
    assert curve_table(doc, [2, 1, 2]).columns.get_level_values('epoch').tolist()[:2] == [1, 2]
    old = curve_table(before_score_stats(doc))
    assert old.loc['C-JS', ('grad l2 norm 0 in float32 (%)', 1)] == pytest.approx(20.0)   # the older name
    assert old['grad 0 in every entry (%)'].isna().all().all()

def test_plot_seeds_has_a_panel_per_cell(plt):
    assert len(plot_seeds([fake(0, .9), fake(1, .8)]).axes) == 12

def test_stability_markdown(plt):
    doc = fake_study()
    md = stability_markdown([fake(0, .9), fake(1, .8)], doc)
    assert md.count('\n|---') == 2 and 'seeds 0, 1' in md and 'results/claims.md' in md
    mds = stability_markdown([], doc)   # the study alone: its epochs, every model once per epoch, without a seed table
    assert mds.count('\n|---') == 1 and 'over seeds' not in mds and f"seeds {doc.seed}" in mds
    assert all(mds.count(f'| {m} / epoch {e} |') == 1 for m in TARGETS for e in (1, 2))
    assert f"| C-JS / epoch 2 | {100 * doc.row('C-JS', 2).clean:.1f} |" in mds and '| 92.2 |' in mds
    assert 'grad 0 in every entry (%)' in mds
    assert 'grad 0 in every entry' not in stability_markdown([], before_score_stats(doc))
    with pytest.raises(ValueError, match='nothing to write'): stability_markdown([])
    with pytest.raises(ValueError, match='give both of one dataset'):
        stability_markdown([dict(fake(0, .9), dataset='fashion_mnist')], doc)
    uneven = replace(doc, curves={**doc.curves, 'CNN': [replace(r, T_true=math.nan) for r in doc.curves['CNN'][-1:]]})
    mdu = stability_markdown([], uneven)   # models measured at different epochs: each at its own; a missing value is '-'
    assert mdu.count('| CNN / epoch') == 1 and all(f'| C-JS / epoch {e} |' in mdu for e in (1, 2))
    cnn = next(l for l in mdu.splitlines() if l.startswith('| CNN / epoch'))
    assert cnn.split(' | ')[-2] == '-'   # median T true of the last epoch
    fa = fake_audit(0, {m: {k: (.5 * ('JS' in m), 0., 1.) for k in [('linf', 0.15), ('linf', 0.3), ('l2', 2)]}
                        for m in TARGETS})
    mda = stability_markdown([fake(0, .9), fake(1, .8)], doc, {0: fa})
    assert mda.count('\n|---') == 3 and 'per audited seed' in mda

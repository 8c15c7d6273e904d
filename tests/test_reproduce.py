"""The reproduction's machinery. Fast: a coded results document through its schema and back, the stage keys on
stand-in checkpoints, the command line's errors, the heatmap's panels and files in a temporary folder. Slow, on the
smoke profile (1,000 MNIST training images, two epochs, 100 test images): the pipeline end to end, the command line on
its files, a killed run that resumes from its stage store, stages redone when a checkpoint changes or a stage file is
damaged, processes sharing the attacks. These check the bookkeeping, never what accuracy a tiny model reaches."""
import contextlib, copy, io, json, math, shutil
from dataclasses import replace
import numpy as np
import pytest
import torch
from guessfirst_nb import reproduce as R
from guessfirst_nb.run import Run
from guessfirst_nb.attacks import evaluate, l2_curve
from guessfirst_nb.models import TARGETS, SUBSTITUTE
from guessfirst_nb.profiles import AttackConfig
from guessfirst_nb.store import git_commit, plain
from guessfirst_nb.train import load_model

slow = pytest.mark.slow
quiet = lambda *a: None


def cli(*args):
    "Run the command line in-process: (exit status, stdout, stderr)."
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): rc = R.main(list(args))
    return rc, out.getvalue(), err.getvalue()


def drop_seconds(results):
    "The results without their timings."
    return {m: {k: ({a: b for a, b in v.items() if a != 'seconds'} if isinstance(v, dict) else v)
                for k, v in e.items()} for m, e in results.items()}


def stage_files(folder) -> dict:
    "{stage: its record} of the stage files in `folder`."
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob('*.json'))}


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    "One uninterrupted smoke reproduction: (tmp folder, its results document)."
    tmp = tmp_path_factory.mktemp('reproduce')
    doc = R.reproduce(Run('mnist', 'smoke', runs=tmp / 'runs', out=tmp / 'results'), progress=False, log=quiet)
    return tmp, doc


@slow
def test_end_to_end_files_and_shape(smoke):
    tmp, doc = smoke
    run = Run('mnist', 'smoke', runs=tmp / 'runs', out=tmp / 'results')
    assert json.loads(run.result().read_text())['results']['C-DV']['PGD/white']['n'] == 100
    assert set(doc['results']) == set(TARGETS)
    assert set(doc['histories']) == set(TARGETS + [SUBSTITUTE]) and len(doc['histories']['CNN']) == 2
    assert doc['environment']['torch'] == torch.__version__
    assert R.table(doc).shape == (11, 6)
    assert list(doc) == ['dataset', 'profile', 'seed', 'train_profile', 'attack_config', 'substitute', 'environment',
                         'train_seconds', 'attack_seconds', 'total_seconds', 'results', 'histories']   # nothing resumed
    assert list(doc['results']['CNN']) == ['clean', 'FGSM/black', 'PGD/black', 'CW/black', 'FGSM/white', 'PGD/white',
                                           'CW/white']
    assert not run.stages().exists()                                  # the stage files go once the results are written


@slow
def test_staged_attacks_equal_one_call_of_evaluate(smoke):
    "The staged attacks write what one call of `evaluate` gives on the same models and images, entry for entry."
    tmp, doc = smoke
    run = Run('mnist', 'smoke', runs=tmp / 'runs')
    sm = {m: load_model(run, m)[0] for m in TARGETS + [SUBSTITUTE]}
    x, y = R.attack_images(run)
    direct = evaluate({m: sm[m] for m in TARGETS}, sm[SUBSTITUTE], x, y, run.profile.attack, log=quiet)
    assert json.dumps(drop_seconds(R.to_json(direct, len(y)))) == json.dumps(drop_seconds(doc['results']))


@slow
def test_cli_loads_and_writes_table_and_figure(smoke):
    tmp, doc = smoke
    p = Run('mnist', 'smoke', out=tmp / 'results').result()
    rc, o, e = cli('--dataset', 'mnist', '--profile', 'smoke', '--runs', str(tmp / 'runs'), '--out',
                   str(tmp / 'results'), '--device', 'cpu')
    assert rc == 0 and 'Traceback' not in e
    assert o.splitlines()[-4:] == ['written:', f'  {p}', f"  {p.with_suffix('.md')}", f"  {p.parent / 'mnist_figure3.png'}"]
    assert p.with_name('mnist_figure3.png').exists()


@slow
def test_existing_results_are_loaded_and_redo_recomputes_only_its_attack(smoke):
    tmp, doc = smoke
    run = Run('mnist', 'smoke', runs=tmp / 'runs', out=tmp / 'results')
    assert R.reproduce(run, progress=False, log=quiet)['results'] == json.loads(run.result().read_text())['results']
    with pytest.raises(ValueError, match=r"unknown attacks \['Square'\]; valid: FGSM, PGD, CW"):
        R.reproduce(run, redo=('Square',), log=quiet)
    doc3 = R.reproduce(run, redo=('CW',), progress=False, log=quiet)
    assert doc3['results']['CNN']['PGD/white'] == doc['results']['CNN']['PGD/white']
    assert doc3['results']['CNN']['CW/white']['dist'] == doc['results']['CNN']['CW/white']['dist']   # deterministic
    assert doc3['redone'][-1]['attacks'] == ['CW']
    assert json.loads(run.result().read_text())['redone'] == doc3['redone']


class Killed(Exception): pass


def _kill_after_cdv(*a):
    if str(a[0]).startswith('C-DV: white-box attacks done'): raise Killed('killed after C-DV')


@pytest.fixture(scope='module')
def killed(smoke):
    "A smoke run killed right after C-DV's white-box stage: (its run, a copy of its stage folder)."
    tmp, _ = smoke
    run = Run('mnist', 'smoke', runs=tmp / 'runs', out=tmp / 'killed')
    with pytest.raises(Killed): R.reproduce(run, progress=False, log=_kill_after_cdv)
    copy = tmp / 'killed-state'; shutil.copytree(run.stages(), copy)
    return run, copy


def _restore(run, state):
    "The killed run's stage folder back as the kill left it."
    shutil.rmtree(run.stages(), ignore_errors=True); shutil.copytree(state, run.stages())


@slow
def test_a_killed_run_leaves_its_stages_and_no_results(smoke, killed):
    run, state = killed
    st = stage_files(state)
    assert (sorted(st), set(st['black']['value'])) == (['C-DV', 'CNN', 'black'], set(TARGETS))
    assert [set(st[m]['value']) for m in ['CNN', 'C-DV']] == [{'CNN'}, {'C-DV'}]
    keys = R.attack_stages(run)   # each stage saved under the key of what it read
    assert all(st[s]['key'] == keys[s] for s in st)
    assert list(st['black']['key']['checkpoints']) == sorted(TARGETS + [SUBSTITUTE])
    assert list(st['C-DV']['key']['checkpoints']) == ['C-DV']
    assert not run.result().exists()          # nothing half-written where the results go


@slow
def test_a_killed_run_resumes_and_ends_where_an_uninterrupted_one_does(smoke, killed):
    (tmp, doc), (run, state) = smoke, killed
    _restore(run, state)
    said = []
    doc_k = R.reproduce(run, progress=False, log=said.append, force=True)
    assert [s.split(':')[0] for s in said if ': taken from ' in s] == ['black', 'CNN', 'C-DV']
    assert [s.split(':')[0] for s in said if 'white-box attacks done' in s] == TARGETS[2:]   # the other four
    assert doc_k['resumed'] == {s: git_commit() for s in ['black', 'CNN', 'C-DV']}
    assert not run.stages().exists() and 'resumed' not in doc
    assert drop_seconds(doc_k['results']) == drop_seconds(doc['results'])
    assert list(doc_k['results']['CNN']) == list(doc['results']['CNN'])   # same entries, same order
    kept = stage_files(state)   # the time spent before the kill counts: attack_seconds sums every stage's
    rest = doc_k['attack_seconds'] - sum(kept[s]['seconds'] for s in kept)
    assert rest >= sum(v['seconds'] for m in TARGETS[2:] for k, v in doc_k['results'][m].items() if k.endswith('/white'))


def _linear(model_or_state):
    "The 2-d weights (the linear layers) of a model or a state dict, by name."
    sd = model_or_state if isinstance(model_or_state, dict) else model_or_state.state_dict()
    return {k: v.detach().cpu().clone() for k, v in sd.items() if v.ndim == 2}


def _same(a, b): return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@slow
@pytest.mark.parametrize('changed, kept', [('CNN', ['C-DV']), (SUBSTITUTE, ['CNN', 'C-DV'])])
def test_a_changed_checkpoint_redoes_exactly_the_stages_that_read_it(smoke, killed, monkeypatch, changed, kept):
    """The killed run's stages again, but one checkpoint has changed since (its linear weights negated, same file
    name). Checked through the stage keys and what each stage was given, not through an accuracy: the keys of exactly
    the stages that read the changed checkpoint differ from their saved ones, those stages are run again on the
    changed weights, and the others are taken from the store."""
    (tmp, doc), (run, state) = smoke, killed
    runs2 = tmp / f'runs-{changed}'; shutil.copytree(tmp / 'runs', runs2)
    run2 = Run('mnist', 'smoke', runs=runs2, out=run.out)
    ck = torch.load(run2.checkpoint(changed), weights_only=True)
    ck['model'] = {k: -v if v.ndim == 2 else v for k, v in ck['model'].items()}; torch.save(ck, run2.checkpoint(changed))
    saved, keys = stage_files(state), R.attack_stages(run2)
    assert [s for s in saved if saved[s]['key'] != keys[s]] == sorted(['black', *({changed} & set(TARGETS))])
    _restore(run2, state)
    given = {'white': []}
    def white(model, *a, **k):
        given['white'].append(_linear(model)); return evaluate_white(model, *a, **k)
    def black(targets, substitute, *a, **k):
        given['black'] = dict(substitute=_linear(substitute), targets={m: _linear(t) for m, t in targets.items()})
        return evaluate_black(targets, substitute, *a, **k)
    evaluate_white, evaluate_black = R.evaluate_white, R.evaluate_black
    monkeypatch.setattr(R, 'evaluate_white', white); monkeypatch.setattr(R, 'evaluate_black', black)
    doc_o = R.reproduce(run2, progress=False, log=quiet, force=True)
    assert list(doc_o['resumed']) == kept
    # the black-box stage always read the changed checkpoint (it attacks every target with the substitute's examples)
    changed_w = _linear(ck['model'])
    seen = given['black']['substitute'] if changed == SUBSTITUTE else given['black']['targets'][changed]
    assert _same(seen, changed_w)
    # every white-box stage not kept was run, in order, on the weights now in its checkpoint (the changed ones too)
    redone = [m for m in TARGETS if m not in kept]
    assert len(given['white']) == len(redone)
    for m, w in zip(redone, given['white']): assert _same(w, _linear(load_model(run2, m)[0]))
    if changed == 'CNN': assert _same(given['white'][0], changed_w)
    for m in kept:   # the kept stages are the killed run's, untouched
        assert doc_o['results'][m]['PGD/white'] == saved[m]['value'][m]['PGD/white']
    assert all(math.isfinite(a) for e in doc_o['results'].values() for k, v in e.items() if k != 'clean'
               for a in v['acc'])


@slow
def test_a_damaged_stage_file_is_computed_again(smoke, killed, monkeypatch):
    "A stage file cut short (a full disk) or edited by hand counts as not finished: that stage alone is run again."
    (tmp, doc), (run, state) = smoke, killed
    _restore(run, state)
    f = run.stages() / 'C-DV.json'; f.write_text(f.read_text()[:100])
    (run.stages() / 'CNN.json').write_text('[]')
    ran = []
    def white(model, x, *a, **k):   # a stand-in: which stages run is the question here, not what they find
        ran.append(model); return {('FGSM', 'white'): dict(eps=[0], broken=np.zeros((1, len(x)), bool), seconds=0.0)}
    monkeypatch.setattr(R, 'evaluate_white', white)
    said = []
    doc_d = R.reproduce(run, progress=False, log=said.append, force=True)
    assert list(doc_d['resumed']) == ['black'] and len(ran) == len(TARGETS)   # every white-box stage ran
    assert any(s.startswith(f'{f}: unreadable (JSONDecodeError), computed again') for s in said), said
    assert doc_d['results']['C-DV']['PGD/black'] == stage_files(state)['black']['value']['C-DV']['PGD/black']
    assert not run.stages().exists()


@slow
def test_processes_share_the_stages(smoke, killed):
    """Another process ran Alemi's white-box stage before the rerun, a third runs C-JS's while the rerun goes on, and a
    fourth is still writing a stage file when the rerun ends: the rerun takes both stages, computes only the rest, and
    clears its stage files but not the file being written (nor, so, the folder)."""
    (tmp, doc), (run, state) = smoke, killed
    _restore(run, state)
    side = lambda models, log: R.reproduce(run, log=log, models=models, force=True)
    before = []
    assert side(['VIB'], before.append) is None and [s.split(':')[0] for s in before] == ['Alemi']
    assert sorted(stage_files(run.stages())) == ['Alemi', 'C-DV', 'CNN', 'black']
    said, meanwhile = [], []
    writing = run.stages() / '.C-JS-IE.json.x7k2p9q1.tmp'
    def log(s):
        said.append(s)
        if s.startswith('black: taken from'): meanwhile.append(side(['C-JS'], meanwhile.append))
        if s.startswith('C-JS-IE: white-box attacks done'): writing.write_text('{')
    doc_s = R.reproduce(run, progress=False, log=log, force=True)
    assert (meanwhile[-1], [s.split(':')[0] for s in meanwhile[:-1]]) == (None, ['C-JS'])   # it ran C-JS's stage only
    assert list(doc_s['resumed']) == ['black', 'CNN', 'C-DV', 'C-JS', 'Alemi']
    assert f'C-JS: taken from {run.stages() / "C-JS.json"} (commit {git_commit()})' in said
    assert [s.split(':')[0] for s in said if 'white-box attacks done' in s] == ['C-DV-IE', 'C-JS-IE']
    assert drop_seconds(doc_s['results']) == drop_seconds(doc['results'])
    assert run.stages().is_dir() and [p.name for p in run.stages().iterdir()] == [writing.name]


@slow
def test_models_refuses_what_it_cannot_do(smoke):
    tmp, _ = smoke
    runs3 = tmp / 'runs-early'; shutil.copytree(tmp / 'runs', runs3)
    early = Run('mnist', 'smoke', 0, runs3).model_dir('C-DV-IE'); shutil.copy(early / 'epoch001.pt', early / 'last.pt')
    with pytest.raises(Exception, match='C-DV-IE is trained to epoch 1 of 2: wait for its training to end'):
        R.reproduce(Run('mnist', 'smoke', runs=runs3, out=tmp / 'early'), force=True, models=['C-JS', 'C-DV-IE'])
    assert not (tmp / 'early').exists()                       # refused before attacking anything
    with pytest.raises(ValueError, match='models and redo do not go together'):
        R.reproduce(Run('mnist', 'smoke', runs=tmp / 'runs', out=tmp / 'early'), models=['CNN'], redo=('CW',))
    with pytest.raises(ValueError, match=r"unknown models \['VGG'\]"):
        R.reproduce(Run('mnist', 'smoke', runs=tmp / 'runs', out=tmp / 'early'), models=['VGG'])
    assert R.reproduce(Run('mnist', 'smoke', runs=tmp / 'runs', out=tmp / 'empty'), models=[], log=quiet) is None
    assert not (tmp / 'empty').exists()
    # the same from the command line: one line on stdout, or one error line
    rc, o, e = cli('--dataset', 'mnist', '--profile', 'smoke', '--runs', str(tmp / 'runs'), '--out', str(tmp / 'cli'),
                   '--models', 'CNN', 'Alemi')
    run = Run('mnist', 'smoke', runs=tmp / 'runs', out=tmp / 'cli')
    assert (rc, o) == (0, f'mnist: white-box attacks of CNN Alemi saved in {run.stages()}; a run without --models '
                          'takes them\n')
    st, keys = stage_files(run.stages()), R.attack_stages(run)
    assert sorted(st) == ['Alemi', 'CNN'] and all(st[m]['key'] == keys[m] for m in st)   # the full run's keys
    rc, o, e = cli('--dataset', 'mnist', '--profile', 'smoke', '--runs', str(tmp / 'runs'), '--out', str(tmp / 'vib'),
                   '--models', 'VIB')   # the paper's Alemi by its other name
    assert rc == 0 and o.startswith('mnist: white-box attacks of Alemi saved in ')
    assert R.reproduce(Run('mnist', 'smoke', runs=tmp / 'runs', out=tmp / 'vib-api'), models=['VIB'], log=quiet) is None
    assert [p.stem for p in (tmp / 'vib-api' / 'smoke' / 'mnist.stages').glob('*.json')] == ['Alemi']   # the API too
    assert cli('--dataset', 'mnist', '--models', 'VGG') == (2, '', f"error: unknown models ['VGG']: choose among {TARGETS}\n")
    assert cli('--dataset', 'mnist', '--models', 'CNN', '--redo', 'CW') == (
        2, '', 'error: --models and --redo do not go together: --redo recomputes every model\n')
    rc, o, e = cli('--dataset', 'mnist', '--profile', 'smoke', '--runs', str(runs3), '--out', str(tmp / 'cli'),
                   '--models', 'C-DV-IE')
    assert (rc, o) == (1, '') and e.startswith('error: C-DV-IE is trained to epoch 1 of 2') and e.count('\n') == 1
    rc, o, e = cli('--dataset', 'mnist', '--profile', 'smoke', '--runs', str(tmp / 'none'), '--models', 'CNN')
    assert (rc, o) == (1, '') and e.startswith('error: CNN has no checkpoint in ') and e.count('\n') == 1


# --- fast: no training ------------------------------------------------------------------------------------------------
N, CFG = 1000, AttackConfig()
GRIDS = {'FGSM': CFG.fgsm_eps, 'PGD': CFG.pgd_eps, 'CW': CFG.cw_eps}
KEYS = [f'{a}/{mode}' for mode in ['black', 'white'] for a in ['FGSM', 'PGD', 'CW']]


def coded(model: str, key: str, eps: float) -> float:
    """The fake accuracy of notebook 08: model i's clean accuracy (990 - 10 i) / 1000 at eps = 0, then 15% less per
    entry of KEYS and 1.2% less per grid index."""
    mi, ki, j = TARGETS.index(model), KEYS.index(key), [0, *GRIDS[key.split('/')[0]]].index(eps)
    return round((990 - 10 * mi) * (1 if j == 0 else 1 - 0.15 * ki - 0.012 * j)) / 1000


def coded_doc() -> dict:
    "A results document of `coded` accuracies (JSON data), made by `to_json` from a hand-made `evaluate` output."
    res = {}
    for m in TARGETS:
        res[m] = {'clean': coded(m, KEYS[0], 0)}
        for key in KEYS:
            atk, mode = key.split('/'); eps = [0, *GRIDS[atk]]
            nb = np.array([round((1 - coded(m, key, e)) * N) for e in eps])
            v = dict(eps=eps, broken=np.arange(N)[None] < nb[:, None], seconds=1.0)
            if atk == 'CW':
                v['dist'] = [0.0 if i < nb[0] else next((e - 0.01 for e, k in zip(eps, nb) if i < k), math.inf)
                             for i in range(N)]
            res[m][(atk, mode)] = v
    return dict(dataset='mnist', profile='fake', results=json.loads(json.dumps(R.to_json(res, N))))


def test_a_coded_document_round_trips_through_its_schema():
    "Read whole and written back as it was; a misspelt key deep inside is one error naming its place."
    fdoc = coded_doc()
    r = R.reproduction(fdoc)
    assert plain(r, drop_none=True) == fdoc | dict(seed=0)
    a, n = r.cell('C-JS', 'PGD', 'white', 0.3)
    assert (a, n) == (pytest.approx(coded('C-JS', 'PGD/white', 0.3), abs=1e-12), N)
    e = r.curve('C-DV', 'CW', 'black')
    assert l2_curve([math.inf if d is None else d for d in e.dist], e.eps) == pytest.approx(e.acc, abs=1e-12)
    bad = copy.deepcopy(fdoc); e = bad['results']['C-JS']['PGD/white']; e['firstbroken'] = e.pop('first_broken')
    with pytest.raises(ValueError, match=r"reproduction\.results\['C-JS'\]\['PGD/white'\]: Curve has no field 'firstbroken'"):
        R.reproduction(bad)
    with pytest.raises(ValueError, match='not on the grid'): r.cell('C-JS', 'PGD', 'white', 0.27)


def test_write_reproduction_checks_before_it_writes(tmp_path):
    fdoc, p = coded_doc(), tmp_path / 'mnist.json'
    assert R.write_reproduction(fdoc, p) == fdoc | dict(seed=0) == json.loads(p.read_text())
    with pytest.raises(ValueError, match=r"reproduction: Reproduction has no field 'resultz'"):
        R.write_reproduction(dict(fdoc, resultz=1), tmp_path / 'bad.json')
    assert not (tmp_path / 'bad.json').exists()


def test_a_changed_checkpoint_changes_the_keys_of_exactly_the_stages_that_read_it(tmp_path):
    """On stand-in checkpoints (only their bytes count): a target's changes its own stage's key and the transfer
    stage's, the substitute's only the transfer stage's; a process given `only` computes the very keys of the full
    run, and a changed attack setting changes every key."""
    fake = Run('mnist', 'smoke', runs=tmp_path)
    for i, m in enumerate(TARGETS + [SUBSTITUTE]):
        fake.model_dir(m).mkdir(parents=True); fake.checkpoint(m).write_bytes(bytes([i]))
    keys = R.attack_stages(fake)
    assert list(keys) == ['black', *TARGETS] == R.STAGES
    assert sorted(keys['black']['checkpoints']) == sorted(TARGETS + [SUBSTITUTE])   # the transfer attacks read all seven
    assert all(list(keys[m]['checkpoints']) == [m] for m in TARGETS)                # a target's stage, its own
    assert keys['CNN']['images'] == dict(n=100, seed=fake.profile.attack.seed)

    def changed(m):
        "The stages whose key changes when `m`'s checkpoint is rewritten with other weights."
        p = fake.checkpoint(m); old = p.read_bytes(); p.write_bytes(b'other weights')
        try: return [s for s, k in R.attack_stages(fake).items() if k != keys[s]]
        finally: p.write_bytes(old)
    assert changed('C-DV') == ['black', 'C-DV']
    assert changed(SUBSTITUTE) == ['black']
    assert R.attack_stages(fake, only=['C-JS', 'CNN']) == {'C-JS': keys['C-JS'], 'CNN': keys['CNN']}
    harder = replace(fake, profile=replace(fake.profile, attack=replace(fake.profile.attack, pgd_steps=80)))
    assert all(k != keys[s] for s, k in R.attack_stages(harder).items())


@pytest.mark.parametrize('args, msg', [
    (['--dataset', 'svhn'], "unknown dataset 'svhn'; valid datasets: mnist, fashion_mnist (or all)"),
    (['--profile', 'full'], "unknown profile 'full'; valid profiles: smoke, quick, paper-lite, paper"),
    (['--device', 'tpu'], "unknown device 'tpu'; valid devices: auto, cpu, cuda, mps (or cuda:N)")])
def test_the_command_line_refuses_a_bad_argument_with_one_line(args, msg):
    assert cli(*args) == (2, '', f'error: {msg}\n')


@slow   # seaborn and a PNG: about 4 s
def test_heatmap_panels_and_files_in_a_folder(tmp_path):
    "The panels of a results folder by training length, every seed in one; the PNG written for each dataset with results."
    import matplotlib.pyplot as plt
    (tmp_path / 'paper-lite').mkdir()
    with pytest.raises(FileNotFoundError, match='no paper-lite or paper results of mnist'): R.heatmap_panels(tmp_path, 'mnist')
    fdoc = coded_doc()
    (tmp_path / 'paper-lite' / 'mnist.json').write_text(json.dumps(dict(fdoc, seed=0)))
    (tmp_path / 'paper-lite' / 'mnist_seed1.json').write_text(json.dumps(dict(fdoc, seed=1)))
    assert {k: [d.seed for d in v] for k, v in R.heatmap_panels(tmp_path, 'mnist').items()} == {'10 epochs': [0, 1]}
    assert R.write_paper_heatmaps(tmp_path) == [tmp_path / 'mnist_vs_paper.png']
    assert (tmp_path / 'mnist_vs_paper.png').read_bytes()[:4] == b'\x89PNG'
    plt.close('all')

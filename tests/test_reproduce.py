"""The reproduction's machinery on the smoke profile (1,000 MNIST training images, two epochs, 100 test images): the
pipeline end to end, the command line on its files, a killed run that resumes, stages redone when a checkpoint
changes, two processes sharing the attacks. These check the bookkeeping, never what accuracy a tiny model reaches."""
import contextlib, io, json, math, shutil
import pytest
import torch
from guessfirst_nb import reproduce as R
from guessfirst_nb.run import Run
from guessfirst_nb.attacks import evaluate
from guessfirst_nb.data import load
from guessfirst_nb.models import TARGETS, SUBSTITUTE
from guessfirst_nb.profiles import get_profile
from guessfirst_nb.train import load_model

pytestmark = pytest.mark.slow
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


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
    "One uninterrupted smoke reproduction: (tmp folder, its results document)."
    tmp = tmp_path_factory.mktemp('reproduce')
    doc = R.reproduce(Run('mnist', 'smoke', runs=tmp / 'runs', out=tmp / 'results'), progress=False, log=quiet)
    return tmp, doc


def test_end_to_end_files_and_shape(smoke):
    tmp, doc = smoke
    p = Run('mnist', 'smoke', out=tmp / 'results').result()
    assert json.loads(p.read_text())['results']['C-DV']['PGD/white']['n'] == 100
    assert set(doc['results']) == set(TARGETS)
    assert set(doc['histories']) == set(TARGETS + [SUBSTITUTE]) and len(doc['histories']['CNN']) == 2
    assert doc['environment']['torch'] == torch.__version__
    assert R.table(doc).shape == (11, 6)


def test_staged_attacks_equal_one_call_of_evaluate(smoke):
    "The staged attacks write what one call of `evaluate` gives on the same models and images, entry for entry."
    tmp, doc = smoke
    cfg = get_profile('smoke').attack
    sm = {m: load_model(Run('mnist', 'smoke', 0, tmp / 'runs'), m)[0] for m in TARGETS + [SUBSTITUTE]}
    te = load('mnist', 'test').subset(cfg.n_test, seed=cfg.seed)
    direct = evaluate({m: sm[m] for m in TARGETS}, sm[SUBSTITUTE], te.images(), te.y, cfg, log=quiet)
    assert json.dumps(drop_seconds(R.to_json(direct, cfg.n_test))) == json.dumps(drop_seconds(doc['results']))


def test_cli_loads_and_writes_table_and_figure(smoke):
    tmp, doc = smoke
    p = Run('mnist', 'smoke', out=tmp / 'results').result()
    rc, o, e = cli('--dataset', 'mnist', '--profile', 'smoke', '--runs', str(tmp / 'runs'), '--out',
                   str(tmp / 'results'), '--device', 'cpu')
    assert rc == 0 and 'Traceback' not in e
    assert o.splitlines()[-4:] == ['written:', f'  {p}', f"  {p.with_suffix('.md')}", f"  {p.parent / 'mnist_figure3.png'}"]
    assert p.with_name('mnist_figure3.png').exists()


def test_existing_results_are_loaded_and_redo_recomputes_only_its_attack(smoke):
    tmp, doc = smoke
    kw = dict(runs=tmp / 'runs', out=tmp / 'results', progress=False, log=quiet)
    assert R.reproduce(Run('mnist', 'smoke'), **kw)['results'] == json.loads(
        Run('mnist', 'smoke', out=tmp / 'results').result().read_text())['results']
    doc3 = R.reproduce(Run('mnist', 'smoke'), redo=('CW',), **kw)
    assert doc3['results']['CNN']['PGD/white'] == doc['results']['CNN']['PGD/white']
    assert doc3['results']['CNN']['CW/white']['dist'] == doc['results']['CNN']['CW/white']['dist']   # deterministic
    assert doc3['redone'][-1]['attacks'] == ['CW']


class Killed(Exception): pass


def _kill_after_cdv(*a):
    if str(a[0]).startswith('C-DV: white-box attacks done'): raise Killed('killed after C-DV')


@pytest.fixture(scope='module')
def killed(smoke):
    "A smoke run killed right after C-DV's white-box stage: (its out folder, a copy of its partial folder)."
    tmp, _ = smoke
    out = tmp / 'killed'
    with pytest.raises(Killed):
        R.reproduce(Run('mnist', 'smoke', runs=tmp / 'runs', out=out), progress=False, log=_kill_after_cdv)
    pk = Run('mnist', 'smoke', out=out).result().with_name('mnist.partial')
    copy = tmp / 'killed-state'; shutil.copytree(pk, copy)
    return out, copy


def test_a_killed_run_leaves_its_stages_and_no_results(smoke, killed):
    out, state = killed
    st = {p.stem: json.loads(p.read_text())['entries'] for p in state.glob('*.json')}
    assert (sorted(st), set(st['black'])) == (['C-DV', 'CNN', 'black'], set(TARGETS))
    assert not Run('mnist', 'smoke', out=out).result().exists()          # nothing half-written where the results go


def test_a_killed_run_resumes_and_ends_where_an_uninterrupted_one_does(smoke, killed):
    (tmp, doc), (out, state) = smoke, killed
    pk = Run('mnist', 'smoke', out=out).result().with_name('mnist.partial')
    shutil.rmtree(pk, ignore_errors=True); shutil.copytree(state, pk)
    said = []
    doc_k = R.reproduce(Run('mnist', 'smoke', runs=tmp / 'runs', out=out), progress=False, log=said.append, force=True)
    assert [s for s in said if s.startswith('resumed')] == [f'resumed from {pk}: black, CNN, C-DV']
    assert [s.split(':')[0] for s in said if 'white-box attacks done' in s] == TARGETS[2:]   # the other four
    assert doc_k['resumed'] == {s: R._git_commit() for s in ['black', 'CNN', 'C-DV']}
    assert not pk.exists() and 'resumed' not in doc
    assert drop_seconds(doc_k['results']) == drop_seconds(doc['results'])
    assert list(doc_k['results']['CNN']) == list(doc['results']['CNN'])   # same entries, same order


def _linear(model_or_state):
    "The 2-d weights (the linear layers) of a model or a state dict, by name."
    sd = model_or_state if isinstance(model_or_state, dict) else model_or_state.state_dict()
    return {k: v.detach().cpu().clone() for k, v in sd.items() if v.ndim == 2}


def _same(a, b): return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize('changed, kept', [('CNN', ['C-DV']), (SUBSTITUTE, ['CNN', 'C-DV'])])
def test_a_changed_checkpoint_redoes_exactly_the_stages_that_read_it(smoke, killed, monkeypatch, changed, kept):
    """The killed run's stages again, but one checkpoint has changed since (its linear weights negated, same file
    name). Checked through what each stage was given, not through an accuracy: the stages that read the changed
    checkpoint are run again on the changed weights, the others are taken from the partial files."""
    (tmp, doc), (out, state) = smoke, killed
    runs2 = tmp / f'runs-{changed}'; shutil.copytree(tmp / 'runs', runs2)
    ckp = Run('mnist', 'smoke', 0, runs2).checkpoint(changed)
    ck = torch.load(ckp, weights_only=True)
    ck['model'] = {k: -v if v.ndim == 2 else v for k, v in ck['model'].items()}; torch.save(ck, ckp)
    pk = Run('mnist', 'smoke', out=out).result().with_name('mnist.partial')
    shutil.rmtree(pk, ignore_errors=True); shutil.copytree(state, pk)
    given = {'white': []}
    def white(model, *a, **k):
        given['white'].append(_linear(model)); return evaluate_white(model, *a, **k)
    def black(targets, substitute, *a, **k):
        given['black'] = dict(substitute=_linear(substitute), targets={m: _linear(t) for m, t in targets.items()})
        return evaluate_black(targets, substitute, *a, **k)
    evaluate_white, evaluate_black = R.evaluate_white, R.evaluate_black
    monkeypatch.setattr(R, 'evaluate_white', white); monkeypatch.setattr(R, 'evaluate_black', black)
    doc_o = R.reproduce(Run('mnist', 'smoke', runs=runs2, out=out), progress=False, log=quiet, force=True)
    assert list(doc_o['resumed']) == kept
    # the black-box stage always read the changed checkpoint (it attacks every target with the substitute's examples)
    changed_w = _linear(ck['model'])
    seen = given['black']['substitute'] if changed == SUBSTITUTE else given['black']['targets'][changed]
    assert _same(seen, changed_w)
    # every white-box stage not kept was run, in order, on the weights now in its checkpoint (the changed ones too)
    redone = [m for m in TARGETS if m not in kept]
    assert len(given['white']) == len(redone)
    for m, w in zip(redone, given['white']): assert _same(w, _linear(load_model(Run('mnist', 'smoke', 0, runs2), m)[0]))
    if changed == 'CNN': assert _same(given['white'][0], changed_w)
    for m in kept:   # the kept stages are the killed run's, untouched
        assert drop_seconds(doc_o['results'])[m]['PGD/white'] == drop_seconds(doc['results'])[m]['PGD/white']
    assert all(math.isfinite(a) for e in doc_o['results'].values() for k, v in e.items() if k != 'clean'
               for a in v['acc'])


def test_a_second_process_shares_the_stages(smoke, killed):
    "A second process attacks C-JS alone while the rerun goes on; the rerun takes C-JS from it when it gets there."
    (tmp, doc), (out, state) = smoke, killed
    pk = Run('mnist', 'smoke', out=out).result().with_name('mnist.partial')
    shutil.rmtree(pk, ignore_errors=True); shutil.copytree(state, pk)
    said, side = [], []
    def second_process(s):
        said.append(s)
        if s.startswith('resumed from'):
            side.append(R.reproduce(Run('mnist', 'smoke', runs=tmp / 'runs', out=out), log=side.append, models=['C-JS'], force=True))
    doc_s = R.reproduce(Run('mnist', 'smoke', runs=tmp / 'runs', out=out), progress=False, log=second_process, force=True)
    assert (side[-1], [s.split(':')[0] for s in side[:-1]]) == (None, ['C-JS'])   # it ran C-JS's stage only
    assert list(doc_s['resumed']) == ['black', 'CNN', 'C-DV', 'C-JS']
    assert any(s.startswith('C-JS: taken from') for s in said)
    assert [s.split(':')[0] for s in said if 'white-box attacks done' in s] == TARGETS[3:]
    assert drop_seconds(doc_s['results']) == drop_seconds(doc['results']) and not pk.exists()


def test_models_refuses_what_it_cannot_do(smoke):
    tmp, _ = smoke
    runs3 = tmp / 'runs-early'; shutil.copytree(tmp / 'runs', runs3)
    early = Run('mnist', 'smoke', 0, runs3).model_dir('C-DV-IE'); shutil.copy(early / 'epoch001.pt', early / 'last.pt')
    with pytest.raises(Exception, match='C-DV-IE is trained to epoch 1 of 2: wait for its training to end'):
        R.reproduce(Run('mnist', 'smoke', runs=runs3, out=tmp / 'early'), force=True, models=['C-JS', 'C-DV-IE'])
    with pytest.raises(ValueError, match='models and redo do not go together'):
        R.reproduce(Run('mnist', 'smoke', runs=tmp / 'runs', out=tmp / 'early'), models=['CNN'], redo=('CW',))
    with pytest.raises(ValueError, match=r"unknown models \['VGG'\]"):
        R.reproduce(Run('mnist', 'smoke', runs=tmp / 'runs', out=tmp / 'early'), models=['VGG'])
    assert R.reproduce(Run('mnist', 'smoke', runs=tmp / 'runs', out=tmp / 'empty'), models=[], log=quiet) is None
    assert not (tmp / 'empty').exists()
    # the same from the command line: one line on stdout, or one error line
    rc, o, e = cli('--dataset', 'mnist', '--profile', 'smoke', '--runs', str(tmp / 'runs'), '--out', str(tmp / 'cli'),
                   '--models', 'CNN', 'Alemi')
    pc = Run('mnist', 'smoke', out=tmp / 'cli').result().with_name('mnist.partial')
    assert (rc, o) == (0, f'mnist: white-box attacks of CNN Alemi saved in {pc}; a run without --models takes them\n')
    assert sorted(p.stem for p in pc.glob('*.json')) == ['Alemi', 'CNN']
    rc, o, e = cli('--dataset', 'mnist', '--profile', 'smoke', '--runs', str(tmp / 'runs'), '--out', str(tmp / 'vib'),
                   '--models', 'VIB')   # the paper's Alemi by its other name
    assert rc == 0 and o.startswith('mnist: white-box attacks of Alemi saved in ')
    assert R.reproduce(Run('mnist', 'smoke', runs=tmp / 'runs', out=tmp / 'vib-api'), models=['VIB'], log=quiet) is None
    assert [p.stem for p in (tmp / 'vib-api' / 'smoke' / 'mnist.partial').glob('*.json')] == ['Alemi']   # the API too
    assert cli('--dataset', 'mnist', '--models', 'VGG') == (2, '', f"error: unknown models ['VGG']: choose among {TARGETS}\n")
    assert cli('--dataset', 'mnist', '--models', 'CNN', '--redo', 'CW') == (
        2, '', 'error: --models and --redo do not go together: --redo recomputes every model\n')
    rc, o, e = cli('--dataset', 'mnist', '--profile', 'smoke', '--runs', str(runs3), '--out', str(tmp / 'cli'),
                   '--models', 'C-DV-IE')
    assert (rc, o) == (1, '') and e.startswith('error: C-DV-IE is trained to epoch 1 of 2') and e.count('\n') == 1
    rc, o, e = cli('--dataset', 'mnist', '--profile', 'smoke', '--runs', str(tmp / 'none'), '--models', 'CNN')
    assert (rc, o) == (1, '') and e.startswith('error: CNN has no checkpoint in ') and e.count('\n') == 1

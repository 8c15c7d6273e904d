"""The substitutes study's machinery (notebook 18). Fast: the file names, the command's error paths, the committed files
read and written back byte for byte (their summaries those of the bits they store, their markdown that of their table).
Slow: end to end on smoke-trained models (two epochs on 1,000 MNIST images:
a test of the mechanics, not a result), 40 test images: each source's bits are those of a direct transfer from the
model of that name (the ensemble's, from its two members), the checkpoints are recorded, a run killed after two
sources resumes them (one stage per source, keyed on the checkpoints it reads) and ends where an uninterrupted run
does, after the CNN of seed 1 changed only the sources that read it are computed again, and a checkpoint of another
seed in a model's slot is one clear error."""
import contextlib, io, json, shutil
from dataclasses import replace
from pathlib import Path
import pytest
import torch
from guessfirst_nb.data import load
from guessfirst_nb.run import Run
from guessfirst_nb.io import sha256_file
from guessfirst_nb.models import MODELS, TARGETS
from guessfirst_nb.profiles import PROFILES
from guessfirst_nb.store import Store, plain, typed
from guessfirst_nb.reproduce import markdown_table
from guessfirst_nb.substitutes import (Ensemble, Images, Substitutes, attacker_substitutes, main, pack, substitutes,
                                       substitutes_json, substitutes_table, summarize, transfer_broken)
from guessfirst_nb.train import CheckpointError, fit, load_model

ROOT = Path(__file__).resolve().parent.parent
from conftest import committed, label
quiet = lambda *a: None
CFG40 = replace(PROFILES['smoke'].attack, n_test=40)


def test_the_files_of_a_run():
    r = Run('mnist', 'paper-lite', 1)
    assert r.result('substitutes').as_posix() == 'results/paper-lite/mnist_seed1_substitutes.json'
    assert r.stages('substitutes').as_posix() == 'results/paper-lite/mnist_seed1_substitutes.stages'


def test_command_errors_are_one_line(tmp_path):
    err = io.StringIO()
    with contextlib.redirect_stderr(err): assert main(['--seed', '1', '--other-seed', '1']) == 2
    assert 'must differ' in err.getvalue() and 'Traceback' not in err.getvalue()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(['--dataset', 'mnist', '--profile', 'smoke', '--runs', '/nonexistent', '--out', str(tmp_path)]) == 1
    assert 'no checkpoint' in err.getvalue() and 'Traceback' not in err.getvalue()


COMMITTED = committed('*/*_substitutes.json')

def test_the_committed_substitutes_are_found():
    "The test below is parametrized by a glob: an empty glob would skip it without a word."
    assert {'paper-lite/mnist_substitutes.json', 'paper-lite/fashion_mnist_substitutes.json',
            'paper/fashion_mnist_substitutes.json'} <= set(map(label, COMMITTED))

@pytest.mark.parametrize('path', COMMITTED, ids=label)
def test_a_committed_file_is_its_schema_and_its_bits(path):
    "Read and written back, the same bytes; the summaries are the bits' (intervals to 12 decimals); the markdown the table's."
    text = path.read_text()
    doc = typed(Substitutes, json.loads(text))
    assert substitutes_json(doc) == text
    r12 = lambda d: json.loads(json.dumps(plain(d)), parse_float=lambda v: round(float(v), 12))   # 2e-19 for an exact 0
    assert r12(summarize(doc)) == r12(doc.results)
    rep = json.loads(path.with_name(path.name.replace('_substitutes', '')).read_text())
    assert (doc.n, doc.images) == (1000, Images(rep['attack_config']['n_test'], 0))
    assert doc.sources == attacker_substitutes(doc.other_seed) + TARGETS
    md = markdown_table(substitutes_table(doc, rep), 'model / cell') + '\n'
    assert md == path.with_suffix('.md').read_text()


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    "Every model of seed 0 and the CNN of seed 1, trained once on the smoke profile: the runs folder."
    r = tmp_path_factory.mktemp('substitutes') / 'runs'
    for m in MODELS: fit(Run('mnist', 'smoke', 0, r), m, progress=False)
    fit(Run('mnist', 'smoke', 1, r), 'CNN', progress=False)
    return r


def smoke(runs, out) -> Run:
    "Seed 0 of the smoke runs under `runs`, its results into `out` beside `runs`."
    return Run('mnist', 'smoke', runs=runs, out=runs.parent / out)


def run(runs, out, **kw):
    "The substitutes study of seed 0 against the CNN of seed 1, 40 images."
    return substitutes(smoke(runs, out), other_seed=1, cfg=CFG40, **kw)


@pytest.fixture(scope='module')
def doc(runs):
    "One uninterrupted run."
    return run(runs, 'a', log=quiet)


@pytest.mark.slow
def test_each_source_transfers_as_the_model_of_its_name(runs, doc):
    assert (doc.n, doc.sources) == (40, attacker_substitutes(1) + TARGETS)
    file = smoke(runs, 'a').result('substitutes')
    saved = typed(Substitutes, json.loads(file.read_text()))
    assert saved == doc                                                           # the file holds the document returned
    assert plain(summarize(saved)) == plain(saved.results)    # its counts agree with the broken images it stores (packed)
    te = load('mnist', 'test').subset(40, seed=CFG40.seed)
    mdl = lambda m, s=0: load_model(Run('mnist', 'smoke', s, runs), m)[0]
    ensemble = Ensemble(mdl('LeNet5'), mdl('CNN', 1)).eval()
    for src, model in (('CNN seed 1', mdl('CNN', 1)), ('LeNet5 + CNN seed 1', ensemble), ('C-JS', mdl('C-JS'))):
        direct = transfer_broken(model, {'C-DV-IE': mdl('C-DV-IE')}, te.images(), te.y, CFG40, log=quiet)
        assert {c: pack(v) for c, v in direct['C-DV-IE'].items()} == doc.broken[src]['C-DV-IE']
    assert 'C-JS' not in doc.broken['C-JS']                       # a target is never its own substitute


@pytest.mark.slow
def test_the_checkpoints_and_environment_are_recorded(runs, doc):
    ck = doc.checkpoints['CNN seed 1']
    assert (ck.file, ck.epoch) == ('mnist/smoke/seed1/CNN/last.pt', 2)
    assert ck.sha256 == sha256_file(runs / ck.file)
    assert sorted(doc.checkpoints) == sorted([f'{m} seed 0' for m in MODELS] + ['CNN seed 1'])
    assert doc.environment['torch']


class Killed(Exception): pass


def kill_at(source, msgs=None):
    "A log that kills the run when it starts on `source` (and keeps every message in `msgs`)."
    def log(*a):
        if msgs is not None: msgs.append(' '.join(map(str, a)))
        if a and str(a[0]).startswith(f'mnist from {source}:'): raise Killed
    return log


def stages(runs, out) -> list:
    "The sources finished in the stage store of the run into `out`."
    return sorted(p.stem for p in smoke(runs, out).stages('substitutes').glob('*.json'))


@pytest.mark.slow
def test_a_killed_run_resumes_and_ends_where_an_uninterrupted_one_does(runs, doc):
    with pytest.raises(Killed): run(runs, 'b', log=kill_at('LeNet5 + CNN seed 1'))
    assert stages(runs, 'b') == ['CNN seed 1', 'LeNet5']
    msgs = []
    doc_b = run(runs, 'b', log=lambda *a: msgs.append(' '.join(map(str, a))))
    assert [m for m in msgs if m.endswith('resumed')] == ['mnist LeNet5: resumed', 'mnist CNN seed 1: resumed']
    assert not any(m.startswith(('mnist from LeNet5:', 'mnist from CNN seed 1:')) for m in msgs)   # nothing redone
    assert doc_b.broken == doc.broken and not smoke(runs, 'b').stages('substitutes').exists()


@pytest.mark.slow
def test_each_source_is_keyed_on_the_checkpoints_it_reads(runs):
    "Its own (both of an ensemble's) and those of the targets it attacks, by their SHA-256; nothing else."
    with pytest.raises(Killed): run(runs, 'k', log=kill_at('C-DV'))
    r, store = smoke(runs, 'k'), Store(smoke(runs, 'k').stages('substitutes'))
    sha = lambda m, seed=0: sha256_file(r.with_seed(seed).checkpoint(m))
    others = lambda skip=None: {t: sha(t) for t in TARGETS if t != skip}
    want = {'LeNet5': {'LeNet5': sha('LeNet5'), **others()}, 'CNN seed 1': {'CNN seed 1': sha('CNN', 1), **others()},
            'LeNet5 + CNN seed 1': {'LeNet5': sha('LeNet5'), 'CNN seed 1': sha('CNN', 1), **others()},
            'CNN': others()}   # a target is its own checkpoint, and attacks the others
    assert {s: json.loads(store.path(s).read_text())['key']['checkpoints'] for s in want} == want


@pytest.fixture
def runs_copy(runs, tmp_path):
    "A copy of the trained runs that a test may change."
    shutil.copytree(runs, tmp_path / 'runs')
    return tmp_path / 'runs'


@pytest.mark.slow
def test_after_a_checkpoint_changed_the_sources_that_read_it_are_computed_again(runs_copy):
    """Four sources finished; then the CNN of seed 1 is replaced by another (its weights moved): the two sources made
    of it are computed again, LeNet5 and the target CNN (which never read it) are resumed."""
    with pytest.raises(Killed): run(runs_copy, 'c', log=kill_at('C-DV'))
    s1 = runs_copy / 'mnist/smoke/seed1/CNN/last.pt'
    ck1 = torch.load(s1, weights_only=True)
    ck1['model'] = {k: v + 0.01 if v.is_floating_point() else v for k, v in ck1['model'].items()}
    torch.save(ck1, s1)
    msgs = []
    with pytest.raises(Killed): run(runs_copy, 'c', log=kill_at('C-DV', msgs))
    assert [m for m in msgs if m.endswith('resumed')] == ['mnist LeNet5: resumed', 'mnist CNN: resumed']
    assert {m.split(':')[0] for m in msgs if m.startswith('mnist from')} == {
        'mnist from CNN seed 1', 'mnist from LeNet5 + CNN seed 1', 'mnist from C-DV'}


@pytest.mark.slow
def test_a_checkpoint_of_another_seed_is_one_clear_error(runs_copy):
    shutil.copy(runs_copy / 'mnist/smoke/seed0/CNN/last.pt', runs_copy / 'mnist/smoke/seed1/CNN/last.pt')
    with pytest.raises(CheckpointError, match='holds CNN of mnist, seed 0, not CNN'): run(runs_copy, 'd', log=quiet)

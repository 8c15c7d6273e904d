"""The substitutes study's machinery (notebook 18) end to end on smoke-trained models (two epochs on 1,000 MNIST images:
a test of the mechanics, not a result), 40 test images: each source's bits are those of a direct transfer from the
model of that name, the checkpoints are recorded, a run killed after two sources resumes from them and ends where an
uninterrupted run does, progress made with another CNN of seed 1 is not resumed, and a checkpoint of another seed in a
model's slot is one clear error."""
import json, shutil
from dataclasses import replace
import pytest
import torch
from guessfirst_nb.data import load
from guessfirst_nb.run import Run
from guessfirst_nb.io import sha256_file
from guessfirst_nb.models import MODELS, TARGETS
from guessfirst_nb.profiles import get_profile
from guessfirst_nb.substitutes import (attacker_substitutes, pack, substitutes, summarize,
                                       transfer_broken)
from guessfirst_nb.train import CheckpointError, fit, load_model

pytestmark = pytest.mark.slow
quiet = lambda *a: None
CFG40 = replace(get_profile('smoke').attack, n_test=40)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    "Every model of seed 0 and the CNN of seed 1, trained once on the smoke profile: the runs folder."
    r = tmp_path_factory.mktemp('substitutes') / 'runs'
    for m in MODELS: fit(Run('mnist', 'smoke', 0, r), m, progress=False)
    fit(Run('mnist', 'smoke', 1, r), 'CNN', progress=False)
    return r


def run(runs, out, **kw):
    "The substitutes study of seed 0 against the CNN of seed 1, 40 images, into `out` beside `runs`."
    return substitutes(Run('mnist', 'smoke', runs=runs, out=runs.parent / out), other_seed=1, cfg=CFG40, **kw)


@pytest.fixture(scope='module')
def doc(runs):
    "One uninterrupted run."
    return run(runs, 'a', log=quiet)


def test_each_source_transfers_as_the_model_of_its_name(runs, doc):
    assert (doc['n'], doc['sources']) == (40, attacker_substitutes(1) + TARGETS)
    assert json.loads(json.dumps(summarize(doc))) == json.loads(json.dumps(doc['results']))
    te = load('mnist', 'test').subset(40, seed=CFG40.seed)
    mdl = lambda m, s=0: load_model(Run('mnist', 'smoke', s, runs), m)[0]
    for src, model in (('CNN seed 1', mdl('CNN', 1)), ('C-JS', mdl('C-JS'))):
        direct = transfer_broken(model, {'C-DV-IE': mdl('C-DV-IE')}, te.images(), te.y, CFG40, log=quiet)
        assert {c: pack(v) for c, v in direct['C-DV-IE'].items()} == doc['broken'][src]['C-DV-IE']
    assert 'C-JS' not in doc['broken']['C-JS']                       # a target is never its own substitute


def test_the_checkpoints_and_environment_are_recorded(runs, doc):
    ck = doc['checkpoints']['CNN seed 1']
    assert (ck['file'], ck['epoch']) == ('mnist/smoke/seed1/CNN/last.pt', 2)
    assert ck['sha256'] == sha256_file(runs / ck['file'])
    assert sorted(doc['checkpoints']) == sorted([f'{m} seed 0' for m in MODELS] + ['CNN seed 1'])
    assert doc['environment']['torch']


class Killed(Exception): pass


def kill_at(source):
    "A log that kills the run when it starts on `source`."
    def log(*a):
        if a and str(a[0]).startswith(f'mnist from {source}:'): raise Killed
    return log


def test_a_killed_run_resumes_and_ends_where_an_uninterrupted_one_does(runs, doc):
    with pytest.raises(Killed): run(runs, 'b', log=kill_at('LeNet5 + CNN seed 1'))
    partial = Run('mnist', 'smoke', out=runs.parent / 'b').result('substitutes').with_name('mnist_substitutes.partial.json')
    assert list(json.loads(partial.read_text())['broken']) == ['LeNet5', 'CNN seed 1']
    msgs = []
    doc_b = run(runs, 'b', log=lambda *a: msgs.append(' '.join(map(str, a))))
    assert [m for m in msgs if m.endswith('resumed')] == ['mnist LeNet5: resumed', 'mnist CNN seed 1: resumed']
    assert doc_b['broken'] == doc['broken'] and not partial.exists()


@pytest.fixture
def runs_copy(runs, tmp_path):
    "A copy of the trained runs that a test may change."
    shutil.copytree(runs, tmp_path / 'runs')
    return tmp_path / 'runs'


def test_progress_made_with_another_checkpoint_is_not_resumed(runs_copy):
    "The same progress, but the CNN of seed 1 has been replaced by another (its weights moved): nothing is resumed."
    with pytest.raises(Killed): run(runs_copy, 'c', log=kill_at('LeNet5 + CNN seed 1'))
    s1 = runs_copy / 'mnist/smoke/seed1/CNN/last.pt'
    ck1 = torch.load(s1, weights_only=True)
    ck1['model'] = {k: v + 0.01 if v.is_floating_point() else v for k, v in ck1['model'].items()}
    torch.save(ck1, s1)
    msgs = []
    with pytest.raises(Killed):
        run(runs_copy, 'c', log=lambda *a: (msgs.append(' '.join(map(str, a))), kill_at('CNN seed 1')(*a)))
    assert not any('resumed' in m for m in msgs), msgs


def test_a_checkpoint_of_another_seed_is_one_clear_error(runs_copy):
    shutil.copy(runs_copy / 'mnist/smoke/seed0/CNN/last.pt', runs_copy / 'mnist/smoke/seed1/CNN/last.pt')
    with pytest.raises(CheckpointError, match='holds CNN of mnist, seed 0, not CNN'): run(runs_copy, 'd', log=quiet)

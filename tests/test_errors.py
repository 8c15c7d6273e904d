"""The commands' error paths (issue 27): each ends in one line that names the file and the fix, with exit status 2 for a
bad argument and 1 for a failure, and before any work where that can be known; and what a kill leaves behind."""
import os, re, signal, subprocess, sys
from pathlib import Path
import pytest, torch
from conftest import BIN, cli, read_only
from guessfirst_nb import data, train, reproduce as rep, stability
from guessfirst_nb.run import Run
from guessfirst_nb.data import DATASETS, raw_dir
from guessfirst_nb.models import TARGETS, SUBSTITUTE

def one_line(err: str) -> str:
    "The one error line of a command's stderr (it must hold exactly one line, and no traceback)."
    assert err.count('\n') == 1 and err.startswith('error: ') and 'Traceback' not in err, err
    return err[len('error: '):-1]

@pytest.fixture
def no_training(monkeypatch):
    "Fail the test if any training step runs."
    def refuse(*a, **k): raise AssertionError('a training step ran before the error')
    monkeypatch.setattr(train, 'train_step', refuse)

def test_runs_or_out_given_a_file(tmp_path, no_training):
    f = tmp_path / 'notes.txt'; f.write_text('a file')
    rc, o, e = cli(train.main, '--model', 'CNN', '--profile', 'smoke', '--runs', f)
    assert rc == 2 and one_line(e) == f'--runs {f} is a file, not a folder; pass a folder (it is made if missing)'
    rc, o, e = cli(rep.main, '--profile', 'smoke', '--runs', tmp_path / 'runs', '--out', f)
    assert rc == 2 and one_line(e) == f'--out {f} is a file, not a folder; pass a folder (it is made if missing)'
    rc, o, e = cli(rep.main, '--profile', 'smoke', '--out', f / 'results')
    assert rc == 2 and one_line(e) == f'--out {f / "results"} cannot be made: {f} is a file; pass another folder'

def test_read_only_out_or_runs_is_refused_before_any_work(tmp_path, tiny, no_training, monkeypatch):
    ro = tmp_path / 'ro'; ro.mkdir()
    def no_attack(*a, **k): raise AssertionError('attacked before the error')
    monkeypatch.setattr(rep, 'attack_all', no_attack)
    with read_only(ro):
        rc, o, e = cli(rep.main, '--dataset', 'mnist', '--profile', tiny, '--runs', tmp_path / 'runs', '--out', ro)
        assert rc == 2 and one_line(e).startswith(f'--out {ro} cannot be written: {ro} is not writable here; pass a '
                                                  'folder you can write to'), e
        rc, o, e = cli(rep.main, '--dataset', 'mnist', '--profile', tiny, '--out', ro / 'results')
        assert rc == 2 and f'--out {ro / "results"} cannot be written: {ro} is not writable' in one_line(e)
        rc, o, e = cli(train.main, '--model', 'CNN', '--profile', tiny, '--runs', ro, '--device', 'cpu')
        d = Run('mnist', tiny, 0, ro).model_dir('CNN')
        assert rc == 2 and one_line(e).startswith(f'run folder {d} cannot be written: {ro} is not writable here'), e
    assert not list(ro.iterdir())

def _corrupt_keeping_size_and_mtime(f: Path, offset: int, value: int):
    st = f.stat(); b = bytearray(f.read_bytes()); b[offset] = value; f.write_bytes(bytes(b))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (f.stat().st_size, f.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)

def test_corrupt_data_file_in_train_and_reproduce(copy_dataset, tmp_path, monkeypatch, tiny, no_training):
    root, d = copy_dataset('mnist')
    monkeypatch.setenv('GUESSFIRST_DATA', str(root))
    f = d / 'train-labels-idx1-ubyte'
    _corrupt_keeping_size_and_mtime(f, 8, 9 - f.read_bytes()[8])   # the first label: 5 becomes 4
    want = DATASETS['mnist']['files'][f.name]
    import hashlib
    line = (f'corrupt data file {f}: its sha256 is {hashlib.sha256(f.read_bytes()).hexdigest()}, expected {want}; '
            'fix: guessfirst-data fetch mnist --force')
    rc, o, e = cli(train.main, '--model', 'CNN', '--profile', tiny, '--runs', tmp_path / 'runs', '--device', 'cpu')
    assert rc == 1 and one_line(e) == line
    rc, o, e = cli(rep.main, '--dataset', 'mnist', '--profile', tiny, '--runs', tmp_path / 'runs',
                   '--out', tmp_path / 'out', '--device', 'cpu')
    assert rc == 1 and one_line(e) == line

def test_negative_seed_is_refused(tmp_path, no_training):
    rc, o, e = cli(train.main, '--model', 'CNN', '--profile', 'smoke', '--seed', '-1', '--runs', tmp_path)
    assert rc == 2 and one_line(e).startswith('seed -1 is negative; give a seed of 0 or more'), e
    rc, o, e = cli(stability.main, '--profile', 'smoke', '--seeds', '0', '-2', '--runs', tmp_path, '--out', tmp_path)
    assert rc == 2 and one_line(e).startswith('seed -2 is negative'), e
    with pytest.raises(ValueError, match='seed -1 is negative'):
        train.fit(Run('mnist', 'smoke', -1, tmp_path), 'CNN')
    assert not list(tmp_path.iterdir())

def _train(runs, profile, *models):
    for m in models:
        rc, o, e = cli(train.main, '--model', m, '--dataset', 'mnist', '--profile', profile, '--runs', runs,
                       '--device', 'cpu')
        assert rc == 0, e

def test_damaged_last_pt_names_the_command_that_repairs_it(tmp_path, tiny, monkeypatch):
    runs = tmp_path / 'runs'
    _train(runs, tiny, 'C-DV', 'CNN')
    attacked = []
    monkeypatch.setattr(rep, 'attack_all', lambda nets, *a, **k: attacked.append(sorted(nets)))
    last = Run('mnist', tiny, 0, runs).model_dir('CNN') / 'last.pt'
    last.write_bytes(last.read_bytes()[:1000])
    args = ['--dataset', 'mnist', '--profile', tiny, '--runs', runs, '--out', tmp_path / 'out', '--device', 'cpu']
    rc, o, e = cli(rep.main, *args, '--models', 'C-DV', 'CNN')
    msg = one_line(e)
    assert rc == 1 and msg.startswith(f'checkpoint {last} is truncated or not a zip archive (1,000 bytes). Fix: '), msg
    assert attacked == []                                     # failed before attacking anything
    cmd = re.search(r'Fix: (guessfirst train .*?) repairs it', msg).group(1)
    assert cmd == f'guessfirst train --model CNN --dataset mnist --profile {tiny} --seed 0 --runs {runs}'
    from guessfirst_nb.cli import main as guessfirst
    rc, o, e = cli(guessfirst, *cmd.split()[1:])              # the command it names repairs the run
    assert rc == 0 and 'the run is finished and epoch001.pt holds its final weights' in e, e
    assert not last.exists() and train.check_finished(Run('mnist', tiny, 0, runs), 'CNN')['epoch'] == 1
    rc, o, e = cli(rep.main, *args, '--models', 'C-DV', 'CNN')
    assert rc == 0 and attacked == [['C-DV', 'CNN']], e

@pytest.mark.slow
def test_reproduce_checks_every_checkpoint_before_attacking(tmp_path, tiny, monkeypatch):
    "A reproduction with a damaged last.pt repairs it as it loads the models, and attacks only whole checkpoints."
    runs = tmp_path / 'runs'
    _train(runs, tiny, 'all')
    (Run('mnist', tiny, 0, runs).model_dir('C-DV') / 'last.pt').write_bytes(b'')
    class Attacked(Exception): pass
    def attack_all(nets, *a, **k):
        assert sorted(nets) == sorted(TARGETS + [SUBSTITUTE])
        train.check_checkpoints(Run('mnist', tiny, 0, runs), nets)   # every checkpoint the reproduction reads is whole
        raise Attacked
    monkeypatch.setattr(rep, 'attack_all', attack_all)
    with pytest.raises(Attacked):
        cli(rep.main, '--dataset', 'mnist', '--profile', tiny, '--runs', runs, '--out', tmp_path / 'out', '--device',
            'cpu')

def test_stale_checkpoint_tmp_is_removed_by_the_next_run(tmp_path, tiny):
    _train(tmp_path, tiny, 'CNN')
    d = Run('mnist', tiny, 0, tmp_path).model_dir('CNN')
    (d / '.last.pt.x7k2p9q1.tmp').write_bytes(b'half')
    _train(tmp_path, tiny, 'CNN')
    assert sorted(p.name for p in d.iterdir()) == ['epoch001.pt', 'last.pt']

TINY_DATA = r'''
import sys, time, torch
import guessfirst_nb.train as t
from guessfirst_nb.run import Run
smoke = t.training_data(Run('mnist', 'smoke'))
data = (smoke[0].subset(500, seed=0), smoke[1].subset(250, seed=0))   # two steps an epoch
'''

def _tiny_data():
    from guessfirst_nb.profiles import get_profile
    smoke = train.training_data(Run('mnist', 'smoke'))
    return smoke[0].subset(500, seed=0), smoke[1].subset(250, seed=0)

def _weights(m): return torch.cat([p.detach().flatten() for p in m.parameters()])

@pytest.mark.slow
def test_run_killed_mid_epoch_resumes_to_the_same_weights(tmp_path):
    """kill -9 inside epoch 2 of a VIB (whose noise tests the RNG restore): the epoch-1 checkpoint survives, no
    temporary file is left, and the resumed run ends with the weights of an uninterrupted one (bitwise with one
    thread)."""
    child = TINY_DATA + '''
def cb(epoch, step, model):
    if epoch == 2 and step == 0: print('mid-epoch', flush=True); time.sleep(600)
t.fit(Run('mnist', 'smoke', 0, sys.argv[1]), 'Alemi', progress=False, callback=cb, data=data)
'''
    p = subprocess.Popen([sys.executable, '-c', child, str(tmp_path / 'killed')], stdout=subprocess.PIPE, text=True)
    try: assert p.stdout.readline().strip() == 'mid-epoch'
    finally: p.send_signal(signal.SIGKILL); p.wait()
    kd = Run('mnist', 'smoke', 0, tmp_path / 'killed').model_dir('Alemi')
    assert train.load_checkpoint(kd / 'last.pt')['epoch'] == 1 and not list(kd.glob('.*.tmp'))
    data = _tiny_data()
    resumed, ck = train.fit(Run('mnist', 'smoke', 0, tmp_path / 'killed'), 'Alemi', progress=False, data=data)
    whole, _ = train.fit(Run('mnist', 'smoke', 0, tmp_path / 'whole'), 'Alemi', progress=False, data=data)
    assert ck['epoch'] == 2
    if torch.get_num_threads() == 1: assert torch.equal(_weights(resumed), _weights(whole))
    else: assert torch.allclose(_weights(resumed), _weights(whole), atol=1e-3)   # multi-threaded sums differ in order

@pytest.mark.slow
def test_kill_while_writing_a_checkpoint_leaves_a_tmp_that_the_next_run_removes(tmp_path):
    child = TINY_DATA + '''
real = torch.save
def save(obj, f, *a, **k):
    real(obj, f, *a, **k)
    if '.last.pt.' in str(f): print('writing last.pt', flush=True); time.sleep(600)
torch.save = save
t.fit(Run('mnist', 'smoke', 0, sys.argv[1]), 'CNN', progress=False, data=data)
'''
    p = subprocess.Popen([sys.executable, '-c', child, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try: assert p.stdout.readline().strip() == 'writing last.pt'
    finally: p.send_signal(signal.SIGKILL); p.wait()
    d = Run('mnist', 'smoke', 0, tmp_path).model_dir('CNN')
    left = sorted(p.name for p in d.iterdir())
    assert 'last.pt' not in left and [n for n in left if n.startswith('.last.pt.') and n.endswith('.tmp')], left
    _, ck = train.fit(Run('mnist', 'smoke', 0, tmp_path), 'CNN', progress=False, data=_tiny_data())
    assert ck['epoch'] == 2 and sorted(p.name for p in d.iterdir()) == ['epoch001.pt', 'epoch002.pt', 'last.pt']

@pytest.mark.slow
def test_errors_through_the_console_scripts_are_one_line(tmp_path, copy_dataset):
    "The same errors from real processes: nothing but the one line on stderr."
    f = tmp_path / 'notes.txt'; f.write_text('a file')
    for args, status, start in [(['train', '--runs', f], 2, f'error: --runs {f} is a file'),
                                (['train', '--seed', '-1'], 2, 'error: seed -1 is negative')]:
        r = subprocess.run([BIN / 'guessfirst', *map(str, args)], capture_output=True, text=True, cwd=tmp_path)
        assert r.returncode == status and r.stderr.count('\n') == 1 and r.stderr.startswith(start), r.stderr
    root, d = copy_dataset('mnist')
    _corrupt_keeping_size_and_mtime(d / 't10k-labels-idx1-ubyte', 8 + 7, 0)   # test label 7: a 9 becomes a 0
    r = subprocess.run([BIN / 'guessfirst', 'data', 'fetch', 'mnist', '--root', root], capture_output=True,
                       text=True)
    assert r.returncode == 1 and r.stderr.count('\n') == 1, r.stderr
    assert r.stderr.startswith(f'error: corrupt data file {d / "t10k-labels-idx1-ubyte"}: its sha256 is ')
    assert r.stderr.endswith(f'fix: guessfirst-data fetch mnist --root {root} --force\n') and 'verified' not in r.stdout

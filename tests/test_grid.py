"""The grid's machinery (notebook 11) on the smoke profile. Quick: what a done job is (a finished, a halfway and a
damaged checkpoint), a task run in this process, the scheduling's rules with a stand-in executor, what the executors
ask for, the command line's errors and its dry run. Slow (`make test-slow`: they start processes or train): the grid
writes exactly the files the sequential commands write, through submitit's local executor and through its real SLURM
executor against stand-ins for SLURM's commands (tests/fake_slurm.py); the stand-ins on their own; a preempted SLURM
job that is requeued and resumes; a failed job and a job sbatch refuses, reported with their errors; a second grid
that sends only what is missing, or waits for the jobs an earlier grid sent."""
import contextlib, io, json, os, re, shutil, subprocess, sys, time
from pathlib import Path
import pytest
import torch
from guessfirst_nb.io import atomic_torch_save, atomic_write_text
from guessfirst_nb.run import Run
from guessfirst_nb.grid import (LOCAL_TIMEOUT_MIN, JobFailed, Task, is_done, local_executor, main, outputs,
                                parse_sbatch_flags, plan, run_grid, slurm_executor)
from fake_slurm import write_fake_slurm, fake_job

BIN = Path(sys.executable).parent


def cli(*args):
    "Run the grid's command line in-process: (exit status, stdout, stderr)."
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): rc = main(list(args))
    return rc, out.getvalue(), err.getvalue()


@contextlib.contextmanager
def environ(**kw):
    "Set (None: remove) environment variables for the duration of a block."
    old = {k: os.environ.get(k) for k in kw}
    for k, v in kw.items():
        if v is None: os.environ.pop(k, None)
        else: os.environ[k] = v
    try: yield
    finally:
        for k, v in old.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v


@contextlib.contextmanager
def inside(folder):
    "Work in `folder` for the duration of a block."
    old = os.getcwd(); os.chdir(folder)
    try: yield
    finally: os.chdir(old)


# wall-clock times, versions and thread counts, and the checkout's commit (a commit made while the test runs changes
# it): the only things allowed to differ
VOLATILE = ('seconds', 'environment', 'git_commit')


def same(x, y, where='') -> None:
    """Assert two loaded checkpoints or JSON documents are equal, tensors bit for bit, ignoring keys that name times or
    the environment."""
    if isinstance(x, dict):
        kx, ky = ({k for k in d if not any(v in str(k) for v in VOLATILE)} for d in (x, y))
        assert kx == ky, f'{where}: keys differ: {sorted(map(str, kx ^ ky))}'
        for k in kx: same(x[k], y[k], f'{where}/{k}')
    elif isinstance(x, (list, tuple)):
        assert len(x) == len(y), f'{where}: lengths {len(x)} and {len(y)}'
        for i, (a, b) in enumerate(zip(x, y)): same(a, b, f'{where}[{i}]')
    elif isinstance(x, torch.Tensor): assert torch.equal(x, y), f'{where}: tensors differ'
    else: assert x == y or (x != x and y != y), f'{where}: {x!r} != {y!r}'


def same_files(a, b, skip=('logs',)) -> list:
    """Assert folders `a` and `b` hold the same files (but `skip`) with the same contents: checkpoints and JSON by
    `same`, the rest byte for byte. Returns the files."""
    files = lambda d: sorted(str(p.relative_to(d)) for p in Path(d).rglob('*') if p.is_file()
                             and not set(p.relative_to(d).parts) & set(skip))
    fa, fb = files(a), files(b)
    assert fa == fb
    for f in fa:
        pa, pb = Path(a) / f, Path(b) / f
        if pa.suffix == '.pt': same(torch.load(pa, weights_only=True), torch.load(pb, weights_only=True), f)
        elif pa.suffix == '.json': same(json.loads(pa.read_text()), json.loads(pb.read_text()), f)
        else: assert pa.read_bytes() == pb.read_bytes(), f'{f} differs'   # tables and figures: byte for byte
    return fa


def test_same(tmp_path):
    "The comparison itself: times and the environment may differ, nothing else."
    same(dict(a=torch.ones(2), seconds=1.0, environment='x'), dict(a=torch.ones(2), seconds=2.0, environment='y'))
    with pytest.raises(AssertionError, match='tensors differ'): same(dict(a=torch.ones(2)), dict(a=torch.zeros(2)))
    with pytest.raises(AssertionError, match='keys differ'): same(dict(a=1), dict(a=1, b=2))
    with pytest.raises(AssertionError, match='lengths'): same([1], [1, 2])
    for d in 'ab': (tmp_path / d).mkdir(); (tmp_path / d / 'x.md').write_text(d)
    with pytest.raises(AssertionError, match='x.md differs'): same_files(tmp_path / 'a', tmp_path / 'b')


# --- quick tests of the machinery: what a done job is, a task, the scheduling's rules, the executors, the command line


@pytest.mark.parametrize('kw, msg', [(dict(datasets=['svhn']), 'valid datasets: mnist, fashion_mnist'),
                                     (dict(profile='fast'), 'valid profiles: smoke, quick'),
                                     (dict(models=['VGG']), 'valid models: CNN'),
                                     (dict(seeds=[0, 0]), 'seeds repeat'), (dict(seeds=[]), 'no seeds given'),
                                     (dict(seeds=[-1]), 'seed -1 is negative'),
                                     (dict(stages=['attack']), 'valid stages: train, reproduce, audit, stability')])
def test_plan_refuses_bad_arguments(kw, msg):
    with pytest.raises(ValueError, match=re.escape(msg)):
        plan(**{**dict(profile='smoke', datasets=['mnist'], seeds=[0]), **kw})


def test_a_job_is_done_when_its_run_holds_its_work(tmp_path):
    """A training is done when its run's checkpoint (`last.pt`, else the newest epoch's) is at the profile's last
    epoch; halfway, damaged or missing, it is not. A study is done when every one of its files is there."""
    tr, rp, au, st = plan('smoke', ['mnist'], [0, 1], ['CNN'], runs=tmp_path / 'runs', out=tmp_path / 'results')
    final, last = outputs(tr[0])
    assert not is_done(tr[0])
    atomic_torch_save(dict(epoch=1, done=False), last); assert not is_done(tr[0])        # halfway
    atomic_torch_save(dict(epoch=2, done=True), last); assert is_done(tr[0])
    last.write_bytes(b''); assert not is_done(tr[0])                                     # damaged: the command repairs it
    last.unlink(); atomic_torch_save(dict(epoch=1), final.with_name('epoch001.pt'))
    assert not is_done(tr[0])                                                            # weights only, halfway
    atomic_torch_save(dict(epoch=2), final); assert is_done(tr[0])                       # weights only, the last epoch
    assert not is_done(tr[1])                                                            # the other seed's run
    for p in outputs(rp[0])[:2]: p.parent.mkdir(parents=True, exist_ok=True); p.write_text('{}')
    assert not is_done(rp[0])                                                            # the figure is missing
    outputs(rp[0])[2].write_text(''); assert is_done(rp[0]) and not is_done(rp[1])


def test_a_task_runs_its_command_in_its_folder(tmp_path):
    """A task run in this process: in its folder (the relative `--runs` is read there), with the variables it sets and
    removes, its command's output after the command line; the command's error is `JobFailed` (a training whose
    `last.pt` is empty, with no epoch checkpoint to fall back on). Its checkpoint is the same task again."""
    job = plan('smoke', ['mnist'], [0], ['CNN'], stages=['train'], device='cpu')[0][0]
    work, elsewhere = tmp_path / 'work', tmp_path / 'elsewhere'; elsewhere.mkdir()
    last = work / outputs(job)[1]; last.parent.mkdir(parents=True); last.write_bytes(b'')
    out, err = io.StringIO(), io.StringIO()
    with environ(GF_GRID_TEST='x', GF_GRID_TEST2=None), inside(elsewhere):
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
             pytest.raises(JobFailed, match='guessfirst-train exited with status 1'):
            Task(job, work, env={'GF_GRID_TEST': None, 'GF_GRID_TEST2': 'y'})()
        assert os.getcwd() == str(work.absolute())
        assert 'GF_GRID_TEST' not in os.environ and os.environ['GF_GRID_TEST2'] == 'y'
    assert out.getvalue().splitlines()[0] == f'$ {job.command}'
    assert 'error: checkpoint runs/mnist/smoke/seed0/CNN/last.pt is empty (0 bytes)' in err.getvalue(), err.getvalue()
    t = Task(job, work); c = t.checkpoint()
    assert c.function is t and c.args == () and c.kwargs == {}


class StubJob:
    "A submitit job stand-in: done at its second check; its result raises if the executor says it fails."
    def __init__(self, ex, task): self.ex, self.task, self.checks, self.job_id = ex, task, 0, str(len(ex.sent))
    paths = property(lambda self: type('P', (), dict(stderr=Path(f'/logs/{self.job_id}.err'),
                                                     stdout=Path(f'/logs/{self.job_id}.out'))))
    def done(self):
        self.checks += 1
        if self.checks == 2: self.ex.running -= 1; self.ex.finished.append(self.task.job.key)
        return self.checks >= 2
    def result(self):
        if self.task.job.key in self.ex.fail: raise JobFailed(f'{self.task.job.command} exited with status 1')
        return 0


class StubExecutor:
    "Sends every task, counting how many run at once; refuses those in `refuse`, as sbatch refuses a job."
    def __init__(self, fail=(), refuse=()):
        self.sent, self.finished, self.fail, self.refuse, self.running, self.most = [], [], set(fail), set(refuse), 0, 0
    def submit(self, task):
        if task.job.key in self.refuse: raise RuntimeError('sbatch: error: invalid partition specified: gpu')
        self.sent.append(task.job.key); self.running += 1; self.most = max(self.most, self.running)
        return StubJob(self, task)


def test_the_scheduling_rules():
    """With no limit every training goes at once; a failed job is reported with its logs; a failed audit does not stop
    the stability study, which only comes after it; a job that exits 0 without its work on disk failed; a job done
    before the grid is not sent; a job sbatch refuses failed, with sbatch's reason, and the jobs that need it are not
    sent."""
    P = plan('smoke', ['mnist'], [0, 1], ['CNN', 'LeNet5'])
    quiet = dict(log=lambda *a: None, err=lambda *a: None, poll_s=0)
    ex = StubExecutor(); run_grid(P, ex, done=lambda j: j.key in ex.finished, **quiet)
    assert ex.most == 4
    ex, msgs = StubExecutor(fail=['train mnist seed 1 LeNet5']), []
    R = run_grid(P, ex, max_jobs=2, done=lambda j: j.key in ex.finished and j.key not in ex.fail,
                 log=lambda *a: None, err=msgs.append, poll_s=0)
    o = R['train mnist seed 1 LeNet5']
    assert o.reason == ('guessfirst-train --model LeNet5 --dataset mnist --profile smoke --seed 1 --runs runs --device '
                        'auto exited with status 1')
    assert msgs == [f'FAILED train mnist seed 1 LeNet5 (job {o.job_id}): {o.reason}\n  log: /logs/{o.job_id}.err\n  '
                    f'output: /logs/{o.job_id}.out']
    ex = StubExecutor(fail=['audit mnist seed 0'])
    R = run_grid(P, ex, done=lambda j: j.key in ex.finished and j.key not in ex.fail, **quiet)
    assert [k for k, o in R.items() if o.state != 'completed'] == ['audit mnist seed 0']
    assert ex.sent.index('stability mnist seeds 0 1') > max(ex.sent.index('audit mnist seed 0'),
                                                            ex.sent.index('audit mnist seed 1'))
    R = run_grid(P[:1], StubExecutor(), done=lambda j: False, **quiet)
    assert all(o.state == 'failed' and o.reason.startswith('the command exited without error but its work is not on '
                                                           'disk: runs/mnist/smoke/seed') for o in R.values())
    ex = StubExecutor()
    R = run_grid(P, ex, done=lambda j: j.kind == 'train' or j.key in ex.finished, **quiet)
    assert ex.sent[:2] == ['reproduce mnist seed 0', 'reproduce mnist seed 1']
    assert R['train mnist seed 0 CNN'].state == 'done'
    ex = StubExecutor(refuse=['reproduce mnist seed 0'])
    R = run_grid(P, ex, done=lambda j: j.key in ex.finished, **quiet)
    assert R['reproduce mnist seed 0'].reason == ('could not be sent: sbatch: error: invalid partition specified: '
                                                   'gpu')
    assert R['audit mnist seed 0'].reason == 'needs reproduce mnist seed 0, which failed'
    assert R['stability mnist seeds 0 1'].reason == 'needs reproduce mnist seed 0, which failed'
    assert R['audit mnist seed 1'].state == 'completed'


def test_one_job_at_a_time_finishes_a_seed_first():
    """With one job at a time, seed 0's reproduction and audit go before seed 1's trainings; a failed training stops its
    seed's reproduction and audit and the stability study (each saying why), and not the other seed."""
    P = plan('smoke', ['mnist'], [0, 1], ['CNN', 'LeNet5'])
    quiet = dict(log=lambda *a: None, err=lambda *a: None, poll_s=0)
    ex = StubExecutor()
    R = run_grid(P, ex, max_jobs=1, done=lambda j: j.key in ex.finished, **quiet)
    assert ex.most == 1
    assert ex.sent == ['train mnist seed 0 CNN', 'train mnist seed 0 LeNet5', 'reproduce mnist seed 0',
                       'audit mnist seed 0', 'train mnist seed 1 CNN', 'train mnist seed 1 LeNet5',
                       'reproduce mnist seed 1', 'audit mnist seed 1', 'stability mnist seeds 0 1']
    assert all(o.state == 'completed' for o in R.values())
    ex = StubExecutor(fail=['train mnist seed 1 LeNet5'])
    R = run_grid(P, ex, max_jobs=2, done=lambda j: j.key in ex.finished and j.key not in ex.fail, **quiet)
    assert ex.most == 2
    assert {k: o.state for k, o in R.items() if o.state != 'completed'} == {
        'train mnist seed 1 LeNet5': 'failed', 'reproduce mnist seed 1': 'not sent', 'audit mnist seed 1': 'not sent',
        'stability mnist seeds 0 1': 'not sent'}
    assert R['reproduce mnist seed 1'].reason == 'needs train mnist seed 1 LeNet5, which failed'
    assert R['stability mnist seeds 0 1'].reason == 'needs reproduce mnist seed 1, which was not sent'


def test_sbatch_flags():
    "Extra sbatch options as one types them; short options and those the grid sets itself are refused."
    assert parse_sbatch_flags('--account=proj --qos high --exclusive --constraint "a100|h100"') == \
        {'account': 'proj', 'qos': 'high', 'exclusive': True, 'constraint': 'a100|h100'}
    assert parse_sbatch_flags('') == {}
    with pytest.raises(ValueError, match='long options'): parse_sbatch_flags('-A proj')
    with pytest.raises(ValueError, match='cannot set --output'): parse_sbatch_flags('--output=x.log')
    with pytest.raises(ValueError, match='use --time'): parse_sbatch_flags('--time 10')


def test_the_executors_get_what_is_asked(tmp_path):
    """The local executor has no time limit; the SLURM executor asks for the resources given (memory in GB, or in MB
    when not whole), and refuses where there is no SLURM or the time limit is under a minute."""
    assert local_executor(tmp_path / '%j').parameters['timeout_min'] == LOCAL_TIMEOUT_MIN
    with environ(PATH=str(tmp_path)), pytest.raises(ValueError, match="needs SLURM's `sbatch` on PATH"):
        slurm_executor(tmp_path / '%j')
    bin_dir = write_fake_slurm(tmp_path / 'bin', tmp_path / 'state')
    with environ(PATH=f"{bin_dir}:{os.environ['PATH']}"):
        ex = slurm_executor(tmp_path / '%j', 'debug', 1, 4, 1.5, 30, '--account=demo', ['module load cuda'])
        assert ex.parameters == dict(time=30, additional_parameters={'account': 'demo'}, partition='debug',
                                     gpus_per_node=1, cpus_per_task=4, mem='1536MB', setup=['module load cuda'])
        assert slurm_executor(tmp_path / '%j', mem_gb=2).parameters == dict(time=1440, additional_parameters={},
                                                                            mem='2GB')
        with pytest.raises(ValueError, match='at least 1 minute'): slurm_executor(tmp_path / '%j', time_min=0)


def test_the_command_line(tmp_path):
    """Bad arguments: one `error:` line and status 2. `--dry-run` lists the jobs and their commands, what is done,
    and writes nothing."""
    for args, msg in [(['--dataset', 'svhn'], 'valid datasets: mnist, fashion_mnist'),
                      (['--profile', 'fast'], 'valid profiles: smoke, quick'),
                      (['--models', 'CNN', 'VGG'], 'valid models: CNN'), (['--seeds', '0', '0'], 'seeds repeat'),
                      (['--stages', 'attack'], 'valid stages'), (['--jobs', '0'], '--jobs must be at least 1'),
                      (['--device', 'tpu'], 'valid devices: auto, cpu, cuda, mps'),
                      (['--executor', 'slurm', '--device', 'tpu'], 'valid devices'),
                      (['--executor', 'slurm', '--sbatch=--output=x'], 'cannot set --output')]:
        rc, o, e = cli('--out', str(tmp_path), *args)
        assert rc == 2 and e.startswith('error: ') and msg in e and e.count('\n') == 1, (args, e)
    if not torch.cuda.is_available():   # the local executor's jobs run here: a device this machine lacks is refused
        rc, o, e = cli('--device', 'cuda', '--out', str(tmp_path)); assert rc == 2 and 'sees no CUDA GPU' in e, e
        # the nodes may have one
        rc, o, e = cli('--device', 'cuda', '--executor', 'slurm', '--dry-run', '--out', str(tmp_path)); assert rc == 0
    with environ(PATH=str(tmp_path)): rc, o, e = cli('--executor', 'slurm', '--out', str(tmp_path))
    assert rc == 2 and "needs SLURM's `sbatch` on PATH" in e, e
    args = ['--profile', 'smoke', '--dataset', 'mnist', '--seeds', '0', '1', '--models', 'CNN', '--runs',
            str(tmp_path / 'runs'), '--out', str(tmp_path / 'results'), '--device', 'cpu', '--dry-run']
    rc, o, e = cli(*args)
    assert rc == 0, e
    lines = o.splitlines()
    assert lines[0].startswith('guessfirst-grid: 7 jobs (2 train, 2 reproduce, 2 audit, 1 stability), 0 done '
                               'already; executor local'), lines[0]
    assert lines[1] == ('  to run  train mnist seed 0 CNN: guessfirst-train --model CNN --dataset mnist --profile smoke '
                        f"--seed 0 --runs {tmp_path / 'runs'} --device cpu")
    assert len(lines) == 8 and not (tmp_path / 'results').exists()
    atomic_torch_save(dict(epoch=2), Run('mnist', 'smoke', 1, tmp_path / 'runs').checkpoint('CNN', 2))
    rc, o, e = cli(*args)
    assert '1 done already' in o and '  done    train mnist seed 1 CNN: ' in o, o


@pytest.fixture(scope='module')
def sequential(tmp_path_factory):
    "The CNN and LeNet5 of seed 0 trained by `guessfirst-train`, one after the other: the folder the runs are in."
    seq = tmp_path_factory.mktemp('seq')
    with environ(OMP_NUM_THREADS='1'):
        for m in ['CNN', 'LeNet5']:
            subprocess.run([BIN / 'guessfirst-train', '--model', m, '--dataset', 'mnist', '--profile', 'smoke',
                            '--seed', '0', '--runs', 'runs', '--device', 'cpu'], cwd=seq, check=True,
                           capture_output=True)
    return seq


@pytest.mark.slow
def test_a_local_grid_writes_the_sequential_commands_checkpoints(sequential, tmp_path):
    """Two trainings side by side through submitit's local executor (`--stages train --jobs 2`): the checkpoints hold
    the same weights, optimizer and random states and training curves as `guessfirst-train`'s, bit for bit; a second
    grid sends nothing."""
    grid = tmp_path / 'grid'; grid.mkdir()
    args = ['--profile', 'smoke', '--dataset', 'mnist', '--seeds', '0', '--models', 'CNN', 'LeNet5', '--stages',
            'train', '--runs', 'runs', '--out', 'results', '--device', 'cpu']
    with environ(OMP_NUM_THREADS='1'), inside(grid): rc, o, e = cli(*args, '--jobs', '2')
    assert rc == 0, e
    assert o.splitlines()[-1] == 'guessfirst-grid: 2 jobs: 0 done before, 2 completed, 0 failed, 0 not sent', o
    # epoch001.pt, epoch002.pt and last.pt of both runs, the same
    assert len(same_files(sequential / 'runs', grid / 'runs')) == 6
    logs = sorted((grid / 'results' / 'smoke' / 'logs').glob('local-*/*/*_log.out'))
    # a folder per job, no more
    assert len(logs) == 2 and len(list((grid / 'results' / 'smoke' / 'logs').glob('local-*/*'))) == 2
    assert any('\n$ guessfirst-train --model CNN --dataset mnist' in l.read_text() for l in logs)
    # again: nothing to do, nothing sent
    with environ(OMP_NUM_THREADS='1'), inside(grid): rc, o, e = cli(*args)
    assert rc == 0 and '2 done already' in o and 'sent' not in o.replace('not sent', ''), o


@pytest.mark.slow
def test_the_stand_ins_on_their_own(tmp_path):
    "A job that succeeds, one that fails and one cancelled while it runs, as sbatch, sacct and squeue show them."
    fs = tmp_path
    bin_dir = write_fake_slurm(fs / 'bin', fs / 'state', first_id=500, pending_s=2)
    run = lambda *a: subprocess.run([bin_dir / a[0], *a[1:]], capture_output=True, text=True, check=True,
                                    cwd=fs).stdout
    (fs / 'ok.sh').write_text('#!/bin/bash\n#SBATCH --partition=debug\n#SBATCH --output=%j.out\necho "job '
                              '$SLURM_JOB_ID"; sleep 1\n')
    (fs / 'bad.sh').write_text('#!/bin/bash\n#SBATCH --output=%j.out\nexit 3\n')
    assert run('sbatch', 'ok.sh') == 'Submitted batch job 500\n'
    assert run('sbatch', '--parsable', 'bad.sh') == '501\n'
    assert run('squeue', '-h', '-o', '%i %T') == '500 PENDING\n501 PENDING\n'
    for _ in range(100):
        if not run('squeue', '-h'): break          # nothing queued or running
        time.sleep(0.2)
    assert run('sacct', '-o', 'JobID,State,ExitCode', '--parsable2', '-j', '500', '-j', '501') == (
        'JobID|State|ExitCode\n500|COMPLETED|0:0\n500.batch|COMPLETED|0:0\n501|FAILED|3:0\n501.batch|FAILED|3:0\n')
    assert (fs / '500.out').read_text() == 'job 500\n'
    assert fake_job(fs / 'state', 500)['history'] == ['PENDING', 'RUNNING', 'COMPLETED']
    assert fake_job(fs / 'state', 500)['options']['partition'] == 'debug'
    # scancel: a running job is stopped and CANCELLED
    (fs / 'long.sh').write_text('#!/bin/bash\n#SBATCH --output=%j.out\nsleep 120\n')
    jid = run('sbatch', '--parsable', 'long.sh').strip()
    for _ in range(200):
        if json.loads((fs / 'state' / f'{jid}.json').read_text())['state'] == 'RUNNING': break
        time.sleep(0.1)
    run('scancel', jid)
    assert fake_job(fs / 'state', jid)['history'] == ['PENDING', 'RUNNING', 'CANCELLED']
    assert run('sacct', '-o', 'JobID,State', '--parsable2', '-j', jid).splitlines()[1] == f'{jid}|CANCELLED'
    # the script and its sleep are gone
    time.sleep(2)
    with pytest.raises(ProcessLookupError): os.killpg(fake_job(fs / 'state', jid)['batch_pid'], 0)


SLURM_ARGS = ['--profile', 'smoke', '--dataset', 'mnist', '--seeds', '0', '1', '--models', 'CNN', '--stages', 'train',
              '--runs', 'runs', '--out', 'results', '--device', 'cpu', '--executor', 'slurm', '--partition', 'debug',
              '--cpus', '1', '--mem-gb', '2', '--time', '30', '--sbatch=--account=demo --qos low',
              '--setup', 'export GF_GRID_SETUP=1']


@pytest.mark.slow
def test_a_slurm_grid_requeues_a_preempted_job_and_reports_a_failed_one(sequential, tmp_path):
    """Two seeds of the CNN through the real SLURM executor and the stand-ins. Seed 0's job is preempted as soon as it
    has started; submitit requeues it, and its checkpoints come out the same as `guessfirst-train`'s. Seed 1's run
    folder holds a damaged `last.pt` and no epoch checkpoint, which `guessfirst-train` refuses to guess around: that
    job fails, and the grid reports the command's error with the path of the log. Every job got the resources asked
    for; a partition the cluster does not have is sbatch's error, reported as the job's. Once the damaged file is gone,
    the same command sends only seed 1's training."""
    fs = tmp_path; work = fs / 'work'; work.mkdir()
    bin_dir = write_fake_slurm(fs / 'bin', fs / 'state',
                               preempt_on='$ guessfirst-train --model CNN --dataset mnist --profile smoke --seed 0',
                               partitions=['debug'])
    path = f"{bin_dir}:{os.environ['PATH']}"
    damaged = Run('mnist', 'smoke', 1, work / 'runs').model_dir('CNN'); damaged.mkdir(parents=True)
    (damaged / 'last.pt').write_bytes(b'')
    with environ(OMP_NUM_THREADS='1', PATH=path), inside(work): rc, o, e = cli(*SLURM_ARGS)
    assert rc == 1, (o, e)
    logs = work / 'results' / 'smoke' / 'logs'
    sent = json.loads((logs / 'grid_jobs.json').read_text())
    j0, j1 = sent['train mnist seed 0 CNN'], sent['train mnist seed 1 CNN']
    # seed 0: preempted, requeued under the same id, resumed, completed; the sequential command's checkpoints
    assert fake_job(fs / 'state', j0)['history'] == ['PENDING', 'RUNNING', 'REQUEUED', 'PENDING', 'RUNNING',
                                                     'COMPLETED']
    assert len(same_files(sequential / 'runs/mnist/smoke/seed0/CNN', work / 'runs/mnist/smoke/seed0/CNN')) == 3
    out0 = (logs / j0 / f'{j0}_0_log.out').read_text()
    # the command, before and after the requeue
    assert out0.count('$ guessfirst-train --model CNN --dataset mnist --profile smoke --seed 0') == 2, out0
    assert 'Requeued job' in out0 and 'test accuracy' in out0
    # the resources every job asked for, and the setup line
    opts = fake_job(fs / 'state', j0)['options']
    assert {k: opts[k] for k in ('partition', 'cpus-per-task', 'mem', 'time', 'account', 'qos', 'job-name',
                                 'signal')} == dict(partition='debug', **{'cpus-per-task': '1'}, mem='2GB', time='30',
                                                    account='demo', qos='low', **{'job-name': 'gf-train-mnist-s0-CNN'},
                                                    signal='USR2@90')
    assert 'export GF_GRID_SETUP=1' in (fs / 'state' / f'{j0}.sh').read_text()
    # seed 1: failed; the report names the job, the command's error and the log, which holds that error
    assert fake_job(fs / 'state', j1)['state'] == 'FAILED'
    err1 = logs / j1 / f'{j1}_0_log.err'
    why = ('error: checkpoint runs/mnist/smoke/seed1/CNN/last.pt is empty (0 bytes), and no epoch checkpoint of '
           'runs/mnist/smoke/seed1/CNN loads')
    assert why in err1.read_text()
    assert (f'FAILED train mnist seed 1 CNN (job {j1}): JobFailed: guessfirst-train exited with status 1\n  {why}'
            in e), e
    assert f'log: {err1.absolute()}' in e and e.count('error: 1 job(s) failed, 0 not sent') == 1, e
    # a job sbatch refuses is a failure too, with sbatch's reason
    with environ(PATH=path), inside(work): rc, o, e = cli(*[a if a != 'debug' else 'gpu' for a in SLURM_ARGS])
    assert rc == 1
    assert 'FAILED train mnist seed 1 CNN: could not be sent: sbatch: error: invalid partition specified: gpu' in e, e
    # the cause removed, the same command sends what is missing, and only that
    (damaged / 'last.pt').unlink()
    with environ(OMP_NUM_THREADS='1', PATH=path), inside(work): rc, o, e = cli(*SLURM_ARGS)
    assert rc == 0, e
    assert '1 done already' in o and 'sent train mnist seed 1 CNN' in o and 'sent train mnist seed 0' not in o, o
    assert fake_job(fs / 'state', json.loads((logs / 'grid_jobs.json').read_text())['train mnist seed 1 CNN'])[
        'state'] == 'COMPLETED'


@pytest.mark.slow
def test_a_new_grid_waits_for_the_jobs_an_earlier_grid_sent(tmp_path):
    """A grid that is stopped leaves its SLURM jobs running; the next grid finds them in `grid_jobs.json` and waits for
    them rather than sending them again. Here a job is submitted by hand, recorded as if a grid had sent it, and is
    still pending when the grid starts."""
    fs = tmp_path; work = fs / 'work'; work.mkdir()
    bin_dir = write_fake_slurm(fs / 'bin', fs / 'state', pending_s=1)
    logs = work / 'results' / 'smoke' / 'logs'
    with environ(OMP_NUM_THREADS='1', PATH=f"{bin_dir}:{os.environ['PATH']}"), inside(work):
        job = plan('smoke', ['mnist'], [1], ['CNN'], stages=['train'], device='cpu')[0][0]
        ex = slurm_executor(logs / '%j', time_min=30)
        sj = ex.submit(Task(job, work))
        atomic_write_text(logs / 'grid_jobs.json', json.dumps({job.key: sj.job_id}))
        rc, o, e = cli(*SLURM_ARGS[:5], '1', *SLURM_ARGS[7:])   # seed 1 only
    assert rc == 0, e
    assert f'waiting for train mnist seed 1 CNN: SLURM job {sj.job_id}' in o and 'sent train' not in o, o
    assert len(list((fs / 'state').glob('[0-9]*.json'))) == 1   # one job in all
    last = Run('mnist', 'smoke', 1, work / 'runs').model_dir('CNN') / 'last.pt'
    same(torch.load(last, weights_only=True)['history'][-1]['epoch'], 2)


# --- the whole smoke grid: every stage, all seven models, seed 0 (about six minutes on two cores) ---

@pytest.fixture(scope='module')
def whole_sequential(tmp_path_factory):
    """The sequential commands of seed 0 (`guessfirst-train --model all`, `guessfirst-reproduce`, `guessfirst-audit`,
    `guessfirst-stability --seeds 0`), one after the other: the folder they wrote into."""
    fseq = tmp_path_factory.mktemp('whole-seq')
    common = ['--dataset', 'mnist', '--profile', 'smoke', '--runs', 'runs', '--device', 'cpu']
    with environ(OMP_NUM_THREADS='1'):
        for cmd, extra in [('guessfirst-train', ['--model', 'all', '--seed', '0']),
                           ('guessfirst-reproduce', ['--seed', '0', '--out', 'results']),
                           ('guessfirst-audit', ['--seed', '0', '--out', 'results']),
                           ('guessfirst-stability', ['--seeds', '0', '--out', 'results'])]:
            subprocess.run([BIN / cmd, *common, *extra], cwd=fseq, check=True, capture_output=True)
    return fseq


@pytest.mark.slow
def test_the_whole_smoke_grid_writes_the_sequential_commands_files(whole_sequential, tmp_path):
    """Every stage through the local executor, two jobs at a time: every checkpoint and results file the same as the
    sequential commands' (but for the recorded times), every table and figure the same byte for byte; the files the
    grid takes for a job's work (`outputs`) are exactly those its command wrote."""
    with environ(OMP_NUM_THREADS='1'), inside(tmp_path):
        rc, o, e = cli('--profile', 'smoke', '--dataset', 'mnist', '--seeds', '0', '--runs', 'runs', '--out', 'results',
                       '--device', 'cpu', '--jobs', '2')
    assert rc == 0, e
    files = same_files(whole_sequential, tmp_path)
    assert sum(f.endswith('.pt') for f in files) == 7 * 3
    results = sorted(f for f in files if f.startswith('results'))
    assert results == [f'results/smoke/mnist{s}' for s in ['.json', '.md', '_audit.json', '_audit.md', '_epochs.png',
                                                            '_figure3.png', '_masking.png', '_seeds.png',
                                                            '_stability.json', '_stability.md', '_substitutes.png']]
    jobs = [j for st in plan('smoke', ['mnist'], [0], runs='runs', out='results') for j in st]
    assert sorted(str(p) for j in jobs if j.kind != 'train' for p in outputs(j)) == results
    assert sorted(str(p) for j in jobs if j.kind == 'train' for p in outputs(j)) == sorted(
        f for f in files if f.startswith('runs') and f.endswith(('epoch002.pt', 'last.pt')))


@pytest.mark.slow
def test_the_whole_smoke_grid_through_slurm_writes_the_sequential_commands_files(whole_sequential, tmp_path):
    """Every stage through the SLURM stand-ins, training only the CNN as a job of its own (the reproduction trains the
    other six): the same files as the sequential commands', every job COMPLETED."""
    fs = tmp_path; fslurm = fs / 'work'; fslurm.mkdir()
    bin_dir = write_fake_slurm(fs / 'bin', fs / 'state')
    with environ(OMP_NUM_THREADS='1', PATH=f"{bin_dir}:{os.environ['PATH']}"), inside(fslurm):
        rc, o, e = cli('--profile', 'smoke', '--dataset', 'mnist', '--seeds', '0', '--models', 'CNN', '--runs', 'runs',
                       '--out', 'results', '--device', 'cpu', '--executor', 'slurm', '--cpus', '1', '--time', '30')
    assert rc == 0, e
    same_files(whole_sequential, fslurm)
    jobs = json.loads((fslurm / 'results/smoke/logs/grid_jobs.json').read_text())
    assert list(jobs) == ['train mnist seed 0 CNN', 'reproduce mnist seed 0', 'audit mnist seed 0',
                          'stability mnist seeds 0']
    assert all(fake_job(fs / 'state', j)['state'] == 'COMPLETED' for j in jobs.values())

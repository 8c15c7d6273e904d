"""Stand-ins for SLURM's `sbatch`, `srun`, `sacct`, `squeue`, `scancel` and `scontrol`, for the tests of the grid
(tests/test_grid.py) on a machine without a cluster, through submitit's real `SlurmExecutor`.

Every job runs on this machine as soon as it is submitted, and its state is kept in STATE as SLURM keeps it: PENDING,
then RUNNING, then COMPLETED, FAILED or CANCELLED; `scontrol requeue` makes it REQUEUED, then PENDING and RUNNING again
under the same id. If PREEMPT_ON is set, a job is preempted once (SIGTERM, then USR2 to its step, as SLURM and
submitit's own tests do) as soon as its step's log shows that text. If PARTITIONS is set, sbatch refuses other
partitions.

`write_fake_slurm` writes a launcher into a folder (to be put first on PATH) that runs this module's `main` with its
settings, linked under each command's name; `fake_job` reads what the stand-ins know of a job."""
from __future__ import annotations
import fcntl, json, os, random, signal, subprocess, sys, time
from pathlib import Path

# Set by `main` from the configuration that `write_fake_slurm` wrote into the launcher
STATE, PREEMPT_ON, FIRST_ID, PENDING_S, PARTITIONS = None, None, None, 0.3, None
ACTIVE = ('PENDING', 'RUNNING', 'REQUEUED')

def _lock():
    f = open(STATE / '.lock', 'w'); fcntl.flock(f, fcntl.LOCK_EX); return f

def load(jid):
    p = STATE / f'{jid}.json'
    return json.loads(p.read_text()) if p.exists() else None

def update(jid, state=None, **kw):
    "Change a job's record under the lock; a new state is appended to its history."
    with _lock():
        d = load(jid) or {}
        d.update(kw)
        if state is not None: d['state'] = state; d.setdefault('history', []).append(state)
        tmp = STATE / f'.{jid}.tmp'; tmp.write_text(json.dumps(d)); os.replace(tmp, STATE / f'{jid}.json')
        return d

def _expand(template, jid, name=''):
    return (template.replace('%j', jid).replace('%A', jid).replace('%a', '0').replace('%t', '0')
            .replace('%x', name).replace('%N', 'fakenode').replace('%%', '%'))

def _long_options(tokens):
    """--key=value, --key value and --flag tokens as a dict, and the first token that is not an option (and those after
    it)."""
    opts, i = {}, 0
    while i < len(tokens) and tokens[i].startswith('-'):
        k, eq, v = tokens[i].lstrip('-').partition('=')
        if not eq:
            if k in VALUED and i + 1 < len(tokens): v = tokens[i + 1]; i += 1
            else: v = True
        opts[k] = v; i += 1
    return opts, tokens[i:]

VALUED = {'o', 'output', 'e', 'error', 'J', 'job-name', 'p', 'partition', 't', 'time', 'n', 'ntasks',
          'c', 'cpus-per-task', 'N', 'nodes', 'mem', 'gres', 'gpus', 'gpus-per-node', 'A', 'account', 'q', 'qos',
          'D', 'chdir'}

def sbatch(args):
    opts, rest = _long_options(args)
    if not rest: sys.exit('sbatch: error: no batch script given')
    script = Path(rest[0]).read_text()
    sb = {}
    for line in script.splitlines()[1:]:          # #SBATCH lines up to the first command, as sbatch reads them
        if line.startswith('#SBATCH'): sb.update(_long_options(line.split()[1:])[0])
        elif line.strip() and not line.startswith('#'): break
    sb.update({k: v for k, v in opts.items() if k != 'parsable'})
    if PARTITIONS is not None and sb.get('partition', PARTITIONS[0]) not in PARTITIONS:
        sys.exit(f"sbatch: error: invalid partition specified: {sb['partition']}\n"
                 'sbatch: error: Batch job submission failed: Invalid partition name specified')
    with _lock():
        n = STATE / 'next_id'
        jid = int(n.read_text()) if n.exists() else FIRST_ID
        n.write_text(str(jid + 1))
    jid = str(jid)
    (STATE / f'{jid}.sh').write_text(script)    # SLURM keeps a copy of the script as submitted
    update(jid, 'PENDING', id=jid, name=str(sb.get('job-name', Path(rest[0]).name)), options=sb, cwd=os.getcwd(),
           exit_code='0:0', restarts=0, submitted=time.time())
    subprocess.Popen([sys.executable, os.path.realpath(sys.argv[0]), '_run', jid], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(jid if 'parsable' in opts else f'Submitted batch job {jid}')

def _seen(job, text):
    for k in ('step_out', 'step_err'):
        p = job.get(k)
        if p and Path(p).exists() and text in Path(p).read_text(errors='replace'): return True
    return False

def _signal(pid, sig):
    try: os.kill(pid, sig)
    except (ProcessLookupError, TypeError): pass

def _signal_group(pid, sig):
    try: os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError, TypeError): pass

def run(jid):
    "The scheduler's side of one job: wait a moment in PENDING, run the script, record how it ended; again if requeued."
    while True:
        time.sleep(PENDING_S)
        job = load(jid)
        if job['state'] == 'CANCELLED': return
        job = update(jid, 'RUNNING', step_pid=None, step_out=None, step_err=None)
        o, name = job['options'], job['name']
        env = dict(os.environ, SLURM_JOB_ID=jid, SLURM_JOBID=jid, SLURM_JOB_NAME=name, SLURM_JOB_NUM_NODES='1',
                   SLURM_NNODES='1', SLURM_JOB_NODELIST='fakenode', SLURM_NODELIST='fakenode',
                   SLURM_SUBMIT_DIR=job['cwd'], SLURM_CLUSTER_NAME='fake',
                   SLURM_RESTART_COUNT=str(job['restarts']), SLURM_JOB_PARTITION=str(o.get('partition', 'fake')))
        if 'cpus-per-task' in o: env['SLURM_CPUS_PER_TASK'] = str(o['cpus-per-task'])
        out = Path(job['cwd'], _expand(str(o.get('output', 'slurm-%j.out')), jid, name))
        err = Path(job['cwd'], _expand(str(o.get('error', o.get('output', 'slurm-%j.out'))), jid, name))
        out.parent.mkdir(parents=True, exist_ok=True); err.parent.mkdir(parents=True, exist_ok=True)
        with open(out, 'a') as fo, open(err, 'a') as fe:
            p = subprocess.Popen(['bash', str(STATE / f'{jid}.sh')], stdout=fo, stderr=fe, env=env, cwd=job['cwd'],
                                 # the job's processes in a group of their own, as in a job's cgroup
                                 start_new_session=True)
            update(jid, batch_pid=p.pid)
            while p.poll() is None:
                time.sleep(0.1)
                job = load(jid)
                # scancel sent SIGTERM; what is still there after a moment gets SIGKILL
                if job['state'] == 'CANCELLED':
                    time.sleep(1); _signal_group(p.pid, signal.SIGKILL); break
                if PREEMPT_ON and not job.get('preempted') and job.get('step_pid') and _seen(job, PREEMPT_ON):
                    update(jid, preempted=True)
                    _signal(job['step_pid'], signal.SIGTERM); time.sleep(0.2); _signal(job['step_pid'], signal.SIGUSR2)
            p.wait()
        job = load(jid)
        if job.get('requeue'):
            update(jid, 'PENDING', requeue=False, restarts=job['restarts'] + 1); continue
        if job['state'] != 'CANCELLED':
            rc = p.returncode
            update(jid, 'COMPLETED' if rc == 0 else 'FAILED', exit_code=f'{rc}:0' if rc >= 0 else f'0:{-rc}',
                   ended=time.time())
        return

def srun(args):
    "One job step of one task: its output and error streams to the files asked for, then the command itself (exec)."
    opts, cmd = _long_options(args)
    jid, name = os.environ['SLURM_JOB_ID'], os.environ.get('SLURM_JOB_NAME', '')
    env = dict(os.environ, SLURM_PROCID='0', SLURM_LOCALID='0', SLURM_NODEID='0', SLURM_NTASKS='1', SLURM_STEP_ID='0')
    paths = {}
    for k, fd in (('output', 1), ('error', 2)):
        v = opts.get(k) or opts.get(k[0])
        if isinstance(v, str):
            paths[k] = os.path.abspath(_expand(v, jid, name))
            f = os.open(paths[k], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644); os.dup2(f, fd); os.close(f)
    update(jid, step_pid=os.getpid(), step_out=paths.get('output'), step_err=paths.get('error'))
    os.execvpe(cmd[0], cmd, env)

def sacct(args):
    fields, ids, header, i = 'JobID,JobName,Partition,State,ExitCode', [], True, 0
    while i < len(args):
        a = args[i]
        if a in ('-o', '--format'): fields = args[i + 1]; i += 1
        elif a.startswith('--format='): fields = a.split('=', 1)[1]
        elif a in ('-j', '--jobs'): ids += args[i + 1].split(','); i += 1
        elif a.startswith('--jobs='): ids += a.split('=', 1)[1].split(',')
        elif a in ('-n', '--noheader'): header = False
        i += 1
    names = fields.split(',')
    lines = ['|'.join(names)] if header else []
    for jid in ids:
        job = load(jid.split('_')[0].split('.')[0])
        if job is None: continue
        for suffix, name in [('', job['name']), ('.batch', 'batch')]:
            if suffix and job['state'] == 'PENDING': continue
            vals = dict(JobID=job['id'] + suffix, JobName=name, State=job['state'], ExitCode=job['exit_code'],
                        Partition=str(job['options'].get('partition', 'fake')),
                        NodeList='None assigned' if job['state'] == 'PENDING' else 'fakenode')
            lines.append('|'.join(str(vals.get(n, '')) for n in names))
    if lines: print('\n'.join(lines))

def squeue(args):
    fmt, ids, header, i = '%i %P %j %T', None, True, 0
    while i < len(args):
        a = args[i]
        if a in ('-o', '--format'): fmt = args[i + 1]; i += 1
        elif a in ('-j', '--jobs'): ids = args[i + 1].split(','); i += 1
        elif a in ('-h', '--noheader'): header = False
        i += 1
    jobs = [json.loads(p.read_text()) for p in sorted(STATE.glob('[0-9]*.json'))]
    rows = [j for j in jobs if j['state'] in ACTIVE and (ids is None or j['id'] in ids)]
    col = lambda j: {'%i': j['id'], '%P': str(j['options'].get('partition', 'fake')), '%j': j['name'], '%T': j['state'],
                     '%t': {'PENDING': 'PD', 'RUNNING': 'R', 'REQUEUED': 'RQ'}[j['state']]}
    out = ([fmt.replace('%i', 'JOBID').replace('%P', 'PARTITION').replace('%j', 'NAME').replace('%T', 'STATE')
            .replace('%t', 'ST')] if header else [])
    for j in rows:
        line = fmt
        for k, v in col(j).items(): line = line.replace(k, v)
        out.append(line)
    if out: print('\n'.join(out))

def scancel(args):
    sig, ids, i = None, [], 0
    while i < len(args):
        a = args[i]
        if a in ('-s', '--signal'): sig = args[i + 1]; i += 1
        elif a.startswith('--signal='): sig = a.split('=', 1)[1]
        elif not a.startswith('-'): ids.append(a.split('_')[0])
        i += 1
    for jid in ids:
        job = load(jid)
        if job is None: sys.exit(f'scancel: error: Invalid job id {jid}')
        if job['state'] not in ACTIVE: continue
        if sig:   # like SLURM without --batch or --full: the signal goes to the job's steps
            _signal(job.get('step_pid'), getattr(signal, 'SIG' + sig.upper().removeprefix('SIG'), None) or int(sig))
        else:
            update(jid, 'CANCELLED', exit_code='0:15')
            _signal_group(job.get('batch_pid'), signal.SIGTERM)

def scontrol(args):
    if args[:1] != ['requeue'] or len(args) < 2:
        sys.exit(f'scontrol (fake): only `scontrol requeue <job id>` is supported, not {args}')
    for jid in args[1].split(','): update(jid, 'REQUEUED', requeue=True)

def main(config: dict):
    "The launcher's entry point: run the command named by the link it was called through (or a job, with `_run`)."
    global STATE, PREEMPT_ON, FIRST_ID, PENDING_S, PARTITIONS
    STATE, PREEMPT_ON, FIRST_ID = Path(config['state']), config['preempt_on'], config['first_id']
    PENDING_S, PARTITIONS = config['pending_s'], config['partitions']
    cmd = Path(sys.argv[0]).name
    if sys.argv[1:2] == ['_run']: run(sys.argv[2])
    else:
        dict(sbatch=sbatch, srun=srun, sacct=sacct, squeue=squeue, scancel=scancel,
             scontrol=scontrol)[cmd](sys.argv[1:])


def write_fake_slurm(bin_dir, state_dir, preempt_on: str | None = None, first_id: int | None = None,
                     pending_s: float = 0.3, partitions=None) -> Path:
    """Write the stand-ins (one launcher, linked as sbatch, srun, sacct, squeue, scancel and scontrol) to `bin_dir`;
    their states go to `state_dir`. A job waits `pending_s` seconds in PENDING; `preempt_on`: the text in a job's log
    that has it preempted (once); `partitions`: the only partitions sbatch accepts (None: any)."""
    bin_dir, state_dir = Path(bin_dir), Path(state_dir)
    bin_dir.mkdir(parents=True, exist_ok=True); state_dir.mkdir(parents=True, exist_ok=True)
    config = dict(state=str(state_dir.absolute()), preempt_on=preempt_on, pending_s=float(pending_s),
                  partitions=None if partitions is None else list(partitions),
                  # fresh ids: submitit caches states by id
                  first_id=first_id or random.randrange(10**5, 10**6) * 10)
    f = bin_dir / 'fake_slurm'
    f.write_text(f'#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n'
                 f'import fake_slurm\nfake_slurm.main({config!r})\n')
    f.chmod(0o755)
    for c in ('sbatch', 'srun', 'sacct', 'squeue', 'scancel', 'scontrol'):
        (bin_dir / c).unlink(missing_ok=True); (bin_dir / c).symlink_to(f.name)
    return bin_dir


def fake_job(state_dir, jid, wait_s: float = 60) -> dict:
    """What the stand-ins know of job `jid` (state, history of states, sbatch options, ...), once it has ended: submitit
    sees a job's result a moment before SLURM (and the stand-ins) see its process end."""
    for _ in range(int(wait_s / 0.1)):
        d = json.loads((Path(state_dir) / f'{jid}.json').read_text())
        if d['state'] not in ACTIVE: break
        time.sleep(0.1)
    return d

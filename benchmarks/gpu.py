"""GPU performance in one run (issue 26, item 5): each model's train step and inference time against the CNN's (the
paper says the conditioned models cost under 5% extra inference time on its GPU), and the wall time of one real
200-epoch training run (profile `paper`: all of MNIST's training set, batch 250, a test-set evaluation and checkpoints
each epoch).

Run on a GPU (the device machine's python3 has PyTorch; the package needs nothing else for this):
  PYTHONPATH=. python3 benchmarks/gpu.py --device cuda
MNIST's four files must be in $GUESSFIRST_DATA/MNIST/raw/ (default data folder ~/.cache/guessfirst): a machine with
no network cannot fetch them. Carry them gzipped (11 MB; the ignored folder data/, e.g. data/mnist_gz/) and unpack them
there first: mkdir -p /tmp/d/MNIST/raw && for f in data/mnist_gz/*.gz; do gunzip -c $f >/tmp/d/MNIST/raw/$(basename
$f .gz); done && GUESSFIRST_DATA=/tmp/d PYTHONPATH=. python3 benchmarks/gpu.py --device cuda
On a CPU, to check the script end to end in under a minute (a check, not a measurement):
  .venv/bin/python benchmarks/gpu.py --device cpu --quick

Writes benchmarks/gpu_<device name>.md (the card named in the file name and the first line; `_quick` for --quick),
rewritten after each part, so a run cut short keeps what it measured. The whole run stays under --limit seconds
(default 450): a training still running then stops there, and the report gives the epochs it finished and the
200-epoch time they project, named as such. On the device machine add `--out $OUT` to get the report back, and commit
it under benchmarks/."""
import argparse, platform, re, shlex, subprocess, sys, tempfile, time
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import measure, time_inference
from guessfirst_nb.data import DataError
from guessfirst_nb.command import get_device
from guessfirst_nb.run import Run
from guessfirst_nb.io import atomic_write_text
from guessfirst_nb.models import MODELS, TARGETS, check_model
from guessfirst_nb.profiles import get_profile
from guessfirst_nb.train import fit, training_data, load_checkpoint

HERE = Path(__file__).resolve().parent

class OutOfTime(Exception):
    "The training would pass the run's time limit."

def device_name(dev) -> str:
    "The card's name (e.g. 'NVIDIA H100 80GB HBM3'), or the CPU's model."
    if dev.type == 'cuda': return torch.cuda.get_device_name(dev)
    try: cpu = re.search(r'^model name\s*:\s*(.+)$', Path('/proc/cpuinfo').read_text(), re.M).group(1)
    except (OSError, AttributeError): cpu = platform.processor() or platform.machine()
    return f'{dev.type.upper()} {cpu}' if dev.type != 'cpu' else f'CPU {cpu} ({torch.get_num_threads()} threads)'

def slug(name: str) -> str: return re.sub(r'[^a-z0-9]+', '_', name.lower()).strip('_')

def commit() -> str:
    try: return subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True,
                               cwd=HERE).stdout.strip() or 'unknown'
    except OSError: return 'unknown'

def ms(s: float) -> str: return f'{s * 1e3:.3f}'

def dur(s: float) -> str: return f'{s:.0f} s' if s < 120 else f'{s:.0f} s ({s / 60:.1f} min)'

def step_table(res: dict) -> list:
    base_s, base_i, base_m = res['CNN']
    rows = ['| model | train step ms | x CNN | inference ms | x CNN | forward MACs x CNN |',
            '|---|--:|--:|--:|--:|--:|']
    return rows + [f'| {n} | {ms(s)} | {s / base_s:.2f} | {ms(i)} | {i / base_i:.2f} | {m / base_m:.2f} |'
                   for n, (s, i, m) in res.items()]

def inference_table(inf: dict) -> list:
    "{batch: {model: seconds}} as one table, and each target's extra inference time over the CNN's, in %."
    bs = list(inf)
    rows = ['| model | ' + ' | '.join(f'batch {b} ms | x CNN' for b in bs) + ' |', '|---|' + '--:|--:|' * len(bs)]
    rows += [f'| {n} | ' + ' | '.join(f'{ms(inf[b][n])} | {inf[b][n] / inf[b]["CNN"]:.2f}' for b in bs) + ' |'
             for n in inf[bs[0]]]
    extra = '; '.join(f'{n} ' + ', '.join(f'{100 * (inf[b][n] / inf[b]["CNN"] - 1):+.0f}% (batch {b})' for b in bs)
                      for n in TARGETS if n != 'CNN')
    return rows + ['', f"Extra inference time over the CNN's (the paper: under 5%): {extra}."]

def train_wall(model: str, profile: str, data, dev, deadline: float) -> dict:
    """Train `model` on MNIST `data` (train, test) with `profile` from scratch in a temporary folder on `dev`, timing
    the whole `fit`; stop at the first step past `deadline` (time.monotonic()). Returns the epochs done, wall seconds
    and the history."""
    prof = get_profile(profile).train
    with tempfile.TemporaryDirectory() as root:
        def check(epoch, step, m):
            if time.monotonic() > deadline: raise OutOfTime
        t0 = time.perf_counter(); stopped = False
        try: _, ck = fit(Run('mnist', profile, 0, root), model, progress=True, callback=check, data=data, device=dev)
        except OutOfTime: stopped = True
        wall = time.perf_counter() - t0
        if stopped:
            last = Run('mnist', profile, 0, root).model_dir(model) / 'last.pt'
            ck = load_checkpoint(last) if last.exists() else {'epoch': 0, 'history': []}
    return dict(model=model, profile=profile, epochs=prof.epochs, done=ck['epoch'], stopped=stopped, wall=wall,
                n_train=len(data[0]), n_test=len(data[1]), history=ck['history'])

def training_lines(t: dict, step_ratio: dict) -> list:
    h = t['history']
    if not h: return [f"Stopped at the time limit before the first epoch ended ({t['wall']:.0f} s): no epoch time."]
    epochs = sorted(r['seconds'] for r in h); med = epochs[len(epochs) // 2]
    head = (f"{t['model']}, profile `{t['profile']}`: MNIST, {t['n_train']:,} training images, batch 250, "
            f"{t['epochs']} epochs, seed 0, test accuracy on {t['n_test']:,} images and two checkpoint writes after "
            f"each epoch.")
    if t['stopped']:
        proj = sum(r['seconds'] for r in h) / len(h) * t['epochs']   # the finished epochs' own times
        lines = [head, '', f"**Stopped at the time limit after {t['done']} of {t['epochs']} epochs** "
                 f"({dur(t['wall'])}); median epoch {med:.2f} s; projected {t['epochs']}-epoch wall time {dur(proj)} "
                 f"(their mean epoch times {t['epochs']}), an estimate, not a measurement."]
    else:
        lines = [head, '', f"**{t['epochs']}-epoch training wall time: {dur(t['wall'])}**, "
                 f"measured around the whole run; median epoch {med:.2f} s (fastest {epochs[0]:.2f}, slowest "
                 f"{epochs[-1]:.2f}); final test accuracy {h[-1]['test_acc']:.4f}."]
        proj = t['wall']
    if proj:
        est = ', '.join(f'{n} {dur(proj * r / step_ratio[t["model"]])}' for n, r in step_ratio.items())
        lines += ['', f"Estimated {t['epochs']}-epoch wall time of every model, this run's scaled by the train-step "
                  f"times above (estimates, not runs): {est}."]
    return lines

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--device', default='cuda', help='cuda (default), cuda:N, cpu, mps or auto')
    p.add_argument('--quick', action='store_true', help='a minute-long check of the script: few repetitions, the '
                   'smoke profile (1,000 images, 2 epochs) instead of 200 epochs; not a measurement')
    p.add_argument('--train-model', default='C-JS-IE', help='the model trained for the wall time (default: C-JS-IE, '
                   'the slowest train step on the CPU)')
    p.add_argument('--limit', type=float, default=450, help='seconds the whole run may take (default: 450)')
    p.add_argument('--out', default=str(HERE), help='folder of the report (default: benchmarks/)')
    a = p.parse_args(argv)
    start = time.monotonic()
    try: dev = get_device(a.device); check_model(a.train_model)
    except ValueError as e: p.error(str(e))
    if a.limit <= 0: p.error('--limit must be positive')
    if dev.type == 'cuda': torch.backends.cudnn.benchmark = False   # the same kernels as `fit` uses
    reps, warmup, batches, profile = (3, 1, (500,), 'smoke') if a.quick else (50, 5, (1000, 10000), 'paper')
    try: data = training_data(Run('mnist', profile))   # read before any clock starts
    except DataError as e: print(f'error: {e}', file=sys.stderr); return 1
    name = device_name(dev)
    out = Path(a.out) / f"gpu_{slug(name)}{'_quick' if a.quick else ''}.md"
    cmd = shlex.join(['python', 'benchmarks/gpu.py'] + (sys.argv[1:] if argv is None else list(argv)))
    doc = [f'# GPU performance: {name}' + (' (--quick: a check that the script runs, not a measurement)'
                                           if a.quick else ''), '',
           f"`{cmd}` at commit "
           f"{commit()}, {time.strftime('%Y-%m-%d %H:%M')}; torch {torch.__version__}"
           + (f", CUDA {torch.version.cuda}, {torch.cuda.get_device_properties(dev).total_memory / 2**30:.0f} GiB"
              if dev.type == 'cuda' else '') + '.']
    def write(): atomic_write_text(out, '\n'.join(doc) + '\n'); print(f'wrote {out}', file=sys.stderr)
    write()

    res = measure(dev, reps, 250, warmup=warmup)
    doc += ['', f'## Train step and inference, batch 250', '',
            f'Random MNIST-shaped inputs, medians of {reps} interleaved repetitions after {warmup} warm-up round(s); '
            'the device synchronized around each timed call.', ''] + step_table(res)
    write()
    inf = {250: {n: r[1] for n, r in res.items()}}
    for b in batches: inf[b] = time_inference(dev, b, reps, warmup)
    doc += ['', '## Inference at larger batches', '',
            f'No gradients, eval mode, medians of {reps} interleaved repetitions (batch 250 from the table above).', '']
    doc += inference_table(inf)
    write()

    deadline = start + a.limit - 10                       # leave time to write the report
    t = train_wall(a.train_model, profile, data, dev, deadline)
    step_ratio = {n: res[n][0] / res['CNN'][0] for n in MODELS}
    doc += ['', f"## {get_profile(profile).train.epochs}-epoch training wall time", ''] + training_lines(t, step_ratio)
    doc += ['', f'Whole run: {time.monotonic() - start:.0f} s.']
    write()
    print('\n'.join(doc))
    return 0

if __name__ == '__main__':
    sys.exit(main())

"""Benchmark: training-step and inference time of every model relative to the baseline CNN, batch 250, on one device.

Run: .venv/bin/python benchmarks/train_step.py [--reps 15] [--threads 2] [--device cpu|cuda|mps|auto] [--batch 250]
All models are timed in one run, interleaved round-robin (so machine noise hits them alike); medians are reported
with each model's ratio to the CNN, beside the multiply-add ratio of the forward pass. On a GPU each timed call is
followed by a synchronization, so a time is the kernels' and not only their launch. benchmarks/gpu.py uses
`measure` and `time_inference` for its GPU report."""
import argparse, statistics, time
import torch
from guessfirst_nb.command import get_device
from guessfirst_nb.models import MODELS, make_model
from guessfirst_nb.train import make_optimizer, train_step

def macs(model, x):
    "Multiply-adds of one forward pass, counted with hooks on conv and linear layers (the broadcast head counted as run)."
    total = 0
    def hook(m, i, o):
        nonlocal total
        if isinstance(m, torch.nn.Conv2d): total += o.numel() * m.in_channels * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, torch.nn.Linear): total += o.numel() // o.shape[-1] * m.in_features * m.out_features
        elif type(m).__name__ == 'HypothesisLinear': total += i[0].shape[0] * m.in_features * m.out_features  # W_h h once per sample
    hs = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad(): model.eval()(x)
    for h in hs: h.remove()
    return total

def synchronizer(dev: torch.device):
    "A function that waits for `dev` to finish its queued work (nothing to wait for on the CPU)."
    if dev.type == 'cuda': return lambda: torch.cuda.synchronize(dev)
    if dev.type == 'mps': return torch.mps.synchronize
    return lambda: None

def measure(dev, reps: int = 15, batch: int = 250, warmup: int = 2, names=None, seed: int = 0) -> dict:
    """Median train-step and inference seconds of each model on `dev` (random inputs of `batch` MNIST-shaped images),
    `reps` interleaved rounds after `warmup` rounds, and the forward multiply-adds: {model: (step, inference, macs)}."""
    torch.manual_seed(seed); sync = synchronizer(dev)
    check = dev.type == 'cpu'   # as `fit`: on a GPU the loss is not read back every step (that would wait for it)
    x, y = torch.rand(batch, 1, 28, 28, device=dev), torch.randint(0, 10, (batch,), device=dev)
    names = list(names or MODELS)
    models = {n: make_model(n).to(dev) for n in names}
    opts = {n: make_optimizer(m) for n, m in models.items()}
    t_step = {n: [] for n in names}; t_inf = {n: [] for n in names}
    for r in range(reps + warmup):
        for n in names:
            m = models[n]
            sync(); t0 = time.perf_counter()
            train_step(m, opts[n], x, y, check_finite=check); sync(); t1 = time.perf_counter()
            m.eval()
            with torch.no_grad(): m(x)
            sync(); t2 = time.perf_counter()
            if r >= warmup: t_step[n].append(t1 - t0); t_inf[n].append(t2 - t1)
    return {n: (statistics.median(t_step[n]), statistics.median(t_inf[n]), macs(models[n], x)) for n in names}

def time_inference(dev, batch: int, reps: int = 15, warmup: int = 2, names=None, seed: int = 0) -> dict:
    "Median inference seconds of each (untrained) model on `batch` random images, interleaved: {model: seconds}."
    torch.manual_seed(seed); sync = synchronizer(dev)
    x = torch.rand(batch, 1, 28, 28, device=dev)
    names = list(names or MODELS)
    models = {n: make_model(n).to(dev).eval() for n in names}
    t = {n: [] for n in names}
    with torch.no_grad():
        for r in range(reps + warmup):
            for n in names:
                sync(); t0 = time.perf_counter(); models[n](x); sync()
                if r >= warmup: t[n].append(time.perf_counter() - t0)
    return {n: statistics.median(v) for n, v in t.items()}

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--reps', type=int, default=15); p.add_argument('--threads', type=int, default=2)
    p.add_argument('--device', default='cpu', help='cpu (default), cuda, cuda:N, mps or auto')
    p.add_argument('--batch', type=int, default=250, help='batch size (default: 250, the paper\'s)')
    a = p.parse_args()
    try: dev = get_device(a.device)
    except ValueError as e: p.error(str(e))
    if a.reps < 1 or a.batch < 1: p.error('--reps and --batch must be positive')
    torch.set_num_threads(a.threads)
    res = measure(dev, a.reps, a.batch, warmup=2 if dev.type == 'cpu' else 5)
    base_s, base_i, base_m = res['CNN']
    where = (f'{a.threads} threads' if dev.type == 'cpu' else
             f'{dev} ({torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type})')
    print(f'torch {torch.__version__}, {where}, batch {a.batch}, {a.reps} interleaved repetitions, medians')
    print(f"{'model':8s} {'train step ms':>13s} {'x CNN':>6s} {'inference ms':>12s} {'x CNN':>6s} {'fwd MACs x CNN':>14s}")
    d = 1 if dev.type == 'cpu' else 3   # decimals of the milliseconds: a GPU step takes a few
    for n, (s, i, m) in res.items():
        print(f'{n:8s} {s*1e3:13.{d}f} {s/base_s:6.2f} {i*1e3:12.{d}f} {i/base_i:6.2f} {m/base_m:14.2f}')
    steps = 60000 // a.batch
    print(f'\nestimated epoch time on the full training set ({steps} steps), from the medians:')
    for n, (s, _, _) in res.items(): print(f'  {n:8s} {s * steps:6.1f} s')

if __name__ == '__main__':
    main()

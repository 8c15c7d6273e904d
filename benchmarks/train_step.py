"""Benchmark: training-step and inference time of every model relative to the baseline CNN, batch 250, this CPU.

Run: .venv/bin/python benchmarks/train_step.py [--reps 15] [--threads 2]
All models are timed in one run, interleaved round-robin (so machine noise hits them alike); medians are reported
with each model's ratio to the CNN, beside the multiply-add ratio of the forward pass."""
import argparse, statistics, time
import torch
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

def main():
    p = argparse.ArgumentParser(); p.add_argument('--reps', type=int, default=15); p.add_argument('--threads', type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads); torch.manual_seed(0)
    x, y = torch.rand(250, 1, 28, 28), torch.randint(0, 10, (250,))
    names = [n for n in MODELS]
    models = {n: make_model(n) for n in names}
    opts = {n: make_optimizer(m) for n, m in models.items()}
    t_step = {n: [] for n in names}; t_inf = {n: [] for n in names}
    for r in range(a.reps + 2):
        for n in names:
            m = models[n]
            t0 = time.perf_counter(); train_step(m, opts[n], x, y); t1 = time.perf_counter()
            m.eval()
            with torch.no_grad(): m(x)
            t2 = time.perf_counter()
            if r >= 2: t_step[n].append(t1 - t0); t_inf[n].append(t2 - t1)   # 2 warm-up rounds
    base_s, base_i, base_m = statistics.median(t_step['CNN']), statistics.median(t_inf['CNN']), macs(models['CNN'], x)
    print(f'torch {torch.__version__}, {a.threads} threads, batch 250, {a.reps} interleaved repetitions, medians')
    print(f"{'model':8s} {'train step ms':>13s} {'x CNN':>6s} {'inference ms':>12s} {'x CNN':>6s} {'fwd MACs x CNN':>14s}")
    for n in names:
        s, i = statistics.median(t_step[n]), statistics.median(t_inf[n])
        print(f'{n:8s} {s*1e3:13.1f} {s/base_s:6.2f} {i*1e3:12.1f} {i/base_i:6.2f} {macs(models[n], x)/base_m:14.2f}')
    steps = 60000 // 250
    print(f'\nestimated epoch time on the full training set ({steps} steps), from the medians:')
    for n in names: print(f'  {n:8s} {statistics.median(t_step[n]) * steps:6.1f} s')

if __name__ == '__main__':
    main()

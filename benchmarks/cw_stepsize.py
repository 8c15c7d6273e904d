"""How big a step does C&W need with 100 steps per binary-search step? Against the paper-lite MNIST CNN, 200 test images.
Run: .venv/bin/python benchmarks/cw_stepsize.py  (needs runs/mnist/paper-lite/seed0/CNN from `make reproduce-paper-lite`)"""
import torch, time, foolbox as fb
from guessfirst_nb.train import load_model
from guessfirst_nb.run import Run
from guessfirst_nb.data import load
from guessfirst_nb.attacks import cw_advs, predict
from guessfirst_nb.profiles import AttackConfig
torch.set_num_threads(1)
te = load('mnist','test').subset(200, seed=0); x, y = te.images(), te.y
m, _ = load_model(Run('mnist', 'paper-lite'), 'CNN')
f = fb.PyTorchModel(m.eval(), bounds=(0,1))
_, _, s = fb.attacks.L2PGD(steps=50)(f, x, y, epsilons=[2.0]); print('L2PGD 2.0 acc', 1 - s.float().mean().item(), flush=True)
for st, steps, bss, c0 in [(0.01, 100, 5, 1.0), (0.1, 100, 5, 1.0), (0.05, 200, 5, 1.0), (0.1, 100, 5, 0.01)]:
    t0 = time.time()
    adv, d = cw_advs(m, x, y, AttackConfig(cw_steps=steps, cw_binary_search_steps=bss, cw_stepsize=st, cw_initial_const=c0, batch_size=200))
    print(st, steps, bss, c0, 'acc at 2.0', (d > 2.0).float().mean().item(), 'median', d.median().item(), f'{time.time()-t0:.0f}s', flush=True)

"""Mutation testing of the notebooks (issue 13): do the tests catch plausible bugs?

Each mutant is a small, plausible bug: one or more exact substitutions in the source of *exported* code cells of
one notebook, and the notebooks whose tests should catch it. For each mutant in turn the tool

1. applies the substitutions to the notebook's JSON (every `old` text must occur exactly once in the notebook's
   exported code cells; otherwise the mutant is INVALID: the list below is stale and must be updated),
2. runs `nbdev_export` so that the package `guessfirst_nb` holds the bug,
3. runs `OMP_NUM_THREADS=1 nbdev_test --path <nb>` for each covering notebook (stopping at the first failure unless
   `--all-covering`), and `pytest tests` with `--pytest`: KILLED if some test fails, SURVIVED if all pass,
4. restores the notebook byte for byte from an in-memory copy and re-exports, also on Ctrl-C, SIGTERM or an error.

It refuses to start unless `git status --porcelain nbs guessfirst_nb` is clean, so the committed state is the
original: after a hard kill (SIGKILL, power loss) `git checkout nbs guessfirst_nb` restores it. Before the mutants it
runs the covering notebooks unmutated (skip with `--skip-baseline`): a notebook failing already would kill every
mutant and make the score meaningless.

    python tools/mutants.py --list                  # the mutants, nothing run
    python tools/mutants.py --only ie-beta-off-C-DV-IE theta-r-plus-fc3
    python tools/mutants.py                         # all of them: `make mutants`

Exit status: 0 if every mutant was killed (or `--allow-survivors`), 1 if one survived, 2 if a mutant is invalid
(stale list) or the baseline fails, 130 on Ctrl-C. The package imported by the notebooks is the one in this
checkout (PYTHONPATH is set to it), so the tool can be run in a scratch copy of the repository too.
"""
from __future__ import annotations
import argparse, hashlib, json, os, signal, subprocess, sys, time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NB05, NB06, NB01, NB02, NB03 = 'nbs/05_models.ipynb', 'nbs/06_train.ipynb', 'nbs/01_broadcast.ipynb', 'nbs/02_objectives.ipynb', 'nbs/03_mmd.ipynb'
NB07, NB08, NB09, NB10 = 'nbs/07_attacks.ipynb', 'nbs/08_reproduce.ipynb', 'nbs/09_audit.ipynb', 'nbs/10_stability.ipynb'
NB14, NB15, NB18 = 'nbs/14_results.ipynb', 'nbs/15_claims.ipynb', 'nbs/18_substitutes.ipynb'
NB17 = 'nbs/17_autoattack.ipynb'
NB11, NB12, NB13 = 'nbs/11_grid.ipynb', 'nbs/12_pretrained.ipynb', 'nbs/13_forensics.ipynb'
NB00B, NB00C, NB00D = 'nbs/00b_io.ipynb', 'nbs/00c_stats.ipynb', 'nbs/00d_run.ipynb'
NB19 = 'nbs/19_pipelines.ipynb'
NB07A = 'nbs/07a_store.ipynb'
# the machinery's tests live in pytest files: a `covers` entry ending in .py runs `pytest` on that file (slow tests too)
T_REPRO = 'tests/test_reproduce.py'
T_STAB = 'tests/test_stability.py'
T_SUBS = 'tests/test_substitutes.py'
T_AUDIT = 'tests/test_audit.py'
T_AA = 'tests/test_autoattack.py'
T_FOR = 'tests/test_forensics.py'
T_GRID = 'tests/test_grid.py'
T_PIPE = 'tests/test_pipelines.py'
T_PRE, T_RES, T_CLAIMS, T_CLI = 'tests/test_pretrained.py', 'tests/test_results.py', 'tests/test_claims.py', 'tests/test_cli.py'

@dataclass(frozen=True)
class Mutant:
    "A plausible bug: `edits` = ((old, new), ...) in the exported code cells of `notebook`; `covers`: notebooks whose tests should kill it."
    name: str
    notebook: str
    edits: tuple
    covers: tuple
    why: str = ''

def M(name, notebook, old, new, covers, why='', more=()):
    "A mutant replacing `old` by `new` (plus the `more` (old, new) pairs) in `notebook`."
    return Mutant(name, notebook, ((old, new), *more), tuple(covers), why)

# ---------------------------------------------------------------------------------------------------------------
# The mutants. `old` is copied from the current source of the notebook; a refactoring that changes it makes the
# mutant INVALID (reported loudly), and the entry must then be updated to the new text.
# ---------------------------------------------------------------------------------------------------------------
MUTANTS = [
    # --- 05 models: the information-elimination regularizer's configuration (Appendix F, Algorithm 1) ---
    M('ie-beta-off-C-DV-IE', NB05, "'C-DV-IE': dict(arch=Conditioned, objective='dv',     ie_beta=1e-3,",
      "'C-DV-IE': dict(arch=Conditioned, objective='dv',     ie_beta=0.0,", [NB05, NB06],
      'C-DV-IE trains without its regularizer: silently C-DV'),
    M('ie-beta-off-C-JS-IE', NB05, "'C-JS-IE': dict(arch=Conditioned, objective='js',     ie_beta=1e-3,",
      "'C-JS-IE': dict(arch=Conditioned, objective='js',     ie_beta=0.0,", [NB05, NB06],
      'C-JS-IE trains without its regularizer: silently C-JS'),
    M('ie-beta-1e-2', NB05, "'C-DV-IE': dict(arch=Conditioned, objective='dv',     ie_beta=1e-3,",
      "'C-DV-IE': dict(arch=Conditioned, objective='dv',     ie_beta=1e-2,", [NB05, NB06],
      'beta = 0.01 instead of Appendix F\'s 0.001'),
    M('make-model-ie-beta-from-vib', NB05,
      "model.ie_beta, model.vib_beta = (name, spec['objective'], spec['ie_beta'],",
      "model.ie_beta, model.vib_beta = (name, spec['objective'], spec['vib_beta'],",
      [NB05, NB06], 'copy-paste: the built models carry the VIB weight as their IE weight'),
    M('theta-r-plus-fc3', NB05, 'return list(self.fc1.parameters()) + list(self.fc2.parameters())',
      'return list(self.fc1.parameters()) + list(self.fc2.parameters()) + list(self.fc3.parameters())', [NB05, NB06],
      'theta_r includes the third FC layer'),
    M('theta-r-without-fc2', NB05, 'return list(self.fc1.parameters()) + list(self.fc2.parameters())',
      'return list(self.fc1.parameters())', [NB05, NB06], 'theta_r is only the first FC layer'),
    M('theta-r-fc2-fc3', NB05, 'return list(self.fc1.parameters()) + list(self.fc2.parameters())',
      'return list(self.fc2.parameters()) + list(self.fc3.parameters())', [NB05, NB06], 'theta_r shifted by one layer'),
    M('theta-r-with-convs', NB05, 'return list(self.fc1.parameters()) + list(self.fc2.parameters())',
      'return list(self.features.parameters()) + list(self.fc1.parameters()) + list(self.fc2.parameters())', [NB05, NB06],
      'the regularizer also updates the convolutions'),
    M('h-r-from-fc1', NB05, 'h_r = F.relu(self.fc2(F.relu(self.fc1(h))))', 'h_1 = F.relu(self.fc1(h)); h_r = F.relu(self.fc2(h_1))',
      [NB05, NB06], 'the regularizer reads the first FC layer\'s output (512 units)',
      more=[("return (T, {'h_r': h_r}) if with_aux else T", "return (T, {'h_r': h_1}) if with_aux else T")]),
    M('h-r-from-fc3', NB05, 'T = self.out(F.relu(self.fc3(h_r))).squeeze(-1)', 'h_3 = F.relu(self.fc3(h_r)); T = self.out(h_3).squeeze(-1)',
      [NB05, NB06], 'the regularizer reads the third FC layer\'s output (128 units)',
      more=[("return (T, {'h_r': h_r}) if with_aux else T", "return (T, {'h_r': h_3}) if with_aux else T")]),
    M('h-r-before-relu', NB05, 'h_r = F.relu(self.fc2(F.relu(self.fc1(h))))', 'h_r = self.fc2(F.relu(self.fc1(h)))',
      [NB05, NB06], 'the regularizer reads fc2 before its ReLU',
      more=[('T = self.out(F.relu(self.fc3(h_r))).squeeze(-1)', 'T = self.out(F.relu(self.fc3(F.relu(h_r)))).squeeze(-1)')]),
    M('h-r-detached', NB05, "return (T, {'h_r': h_r}) if with_aux else T", "return (T, {'h_r': h_r.detach()}) if with_aux else T",
      [NB05, NB06], 'the regularizer\'s input is cut from the graph: L_r has no gradient'),
    M('ie-sigma2-2', NB05, 'IE_SIGMA2 = 1.0', 'IE_SIGMA2 = 2.0', [NB05, NB06], 'kernel sigma^2 = 2 instead of 1'),
    # --- 05 models: objectives and the VIB ---
    M('objective-C-JS-uses-dv', NB05, "'C-JS':    dict(arch=Conditioned, objective='js',", "'C-JS':    dict(arch=Conditioned, objective='dv',",
      [NB05, NB06], 'C-JS trains with the DV objective'),
    M('objective-C-DV-IE-uses-js', NB05, "'C-DV-IE': dict(arch=Conditioned, objective='dv',", "'C-DV-IE': dict(arch=Conditioned, objective='js',",
      [NB05, NB06], 'C-DV-IE trains with the JS objective'),
    M('vib-beta-1e-2', NB05, "'Alemi':   dict(arch=VIB,         objective='energy', ie_beta=0.0,  vib_beta=1e-3)",
      "'Alemi':   dict(arch=VIB,         objective='energy', ie_beta=0.0,  vib_beta=1e-2)", [NB05, NB06], 'VIB beta = 0.01'),
    M('vib-beta-off', NB05, "'Alemi':   dict(arch=VIB,         objective='energy', ie_beta=0.0,  vib_beta=1e-3)",
      "'Alemi':   dict(arch=VIB,         objective='energy', ie_beta=0.0,  vib_beta=0.0)", [NB05, NB06], 'the VIB trains without its KL term'),
    M('vib-K-128', NB05, 'def __init__(self, M: int = 10, K: int = 256):', 'def __init__(self, M: int = 10, K: int = 128):', [NB05],
      'VIB bottleneck K = 128'),
    # --- 05 models: layer sizes (Appendix F) ---
    M('cnn-fc1-500', NB05, 'nn.Linear(N_FEATURES, 512), nn.ReLU(), nn.Linear(512, 256)', 'nn.Linear(N_FEATURES, 500), nn.ReLU(), nn.Linear(500, 256)',
      [NB05], 'CNN FC 500 instead of 512'),
    M('conditioned-fc1-500', NB05, 'self.fc1 = HypothesisLinear(N_FEATURES, 512, M, embedding=embedding)',
      'self.fc1 = HypothesisLinear(N_FEATURES, 500, M, embedding=embedding)', [NB05], 'conditioned FC 500 instead of 512',
      more=[('self.fc2 = nn.Linear(512, 256)', 'self.fc2 = nn.Linear(500, 256)')]),
    M('conditioned-fc3-100', NB05, 'self.fc3 = nn.Linear(256, 128)', 'self.fc3 = nn.Linear(256, 100)', [NB05],
      'conditioned FC 100 instead of 128', more=[('self.out = nn.Linear(128, 1)', 'self.out = nn.Linear(100, 1)')]),
    M('conv1-stride-1', NB05, 'nn.Conv2d(1, 32, 4, stride=2)', 'nn.Conv2d(1, 32, 4, stride=1)', [NB05],
      'first conv stride 1 (feature count adjusted so that everything runs)',
      more=[('N_FEATURES = 64 * 5 * 5', 'N_FEATURES = 64 * 11 * 11')]),
    M('conv-filters-16', NB05, 'nn.Conv2d(1, 32, 4, stride=2), nn.BatchNorm2d(32)', 'nn.Conv2d(1, 16, 4, stride=2), nn.BatchNorm2d(16)', [NB05],
      'first conv 16 filters instead of 32', more=[('nn.Conv2d(32, 64, 4, stride=2)', 'nn.Conv2d(16, 64, 4, stride=2)')]),
    M('conv-no-batchnorm', NB05, 'nn.BatchNorm2d(64), nn.ReLU(), nn.Flatten()', 'nn.Identity(), nn.ReLU(), nn.Flatten()', [NB05],
      'no batch norm after the second conv'),
    M('cnn-missing-relu', NB05, 'nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, M)', 'nn.Linear(256, 128), nn.Linear(128, M)', [NB05],
      'CNN: no ReLU after the third FC layer'),
    M('conditioned-fc3-no-relu', NB05, 'T = self.out(F.relu(self.fc3(h_r))).squeeze(-1)', 'T = self.out(self.fc3(h_r)).squeeze(-1)', [NB05],
      'conditioned: no ReLU after the third FC layer'),
    M('lenet-fc-64', NB05, 'nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, M)', 'nn.Linear(120, 64), nn.ReLU(), nn.Linear(64, M)', [NB05],
      'LeNet-5 FC 64 instead of 84'),
    # --- 01 broadcast ---
    M('broadcast-repeat-view', NB01, 'h.unsqueeze(1).expand(B, M, D)', 'h.repeat(M, 1).view(B, M, D)', [NB01, NB05],
      'pairs built hypothesis-major and viewed sample-major: samples mixed up'),
    M('hypothesis-off-by-one', NB01, 'if self.one_hot: c = self.weight_y.t()', 'if self.one_hot: c = self.weight_y.t().roll(1, 0)', [NB01, NB05],
      'hypothesis y scored with the column of y - 1'),
    # --- 02 objectives ---
    M('js-loss-sign-flip', NB02, '_avg(-log_sigmoid(-T).mean(1), w)', '_avg(-log_sigmoid(T).mean(1), w)', [NB02, NB05],
      'JS loss: marginal term log(sigma(T)) instead of log(1 - sigma(T))'),
    M('js-bound-sign-flip', NB02, 'return LOG2 + 0.5 * (EJ + EM)', 'return LOG2 + 0.5 * (EJ - EM)', [NB02],
      'JS bound with Eq. 2\'s printed sign'),
    M('objectives-registry-swap', NB02, "OBJECTIVES = {'js': js_loss, 'dv': dv_loss, 'energy': energy_loss}",
      "OBJECTIVES = {'js': dv_loss, 'dv': js_loss, 'energy': energy_loss}", [NB02, NB05], 'names resolve to the wrong losses'),
    # --- 03 MMD ---
    M('mmd-kernel-no-2', NB03, 'torch.exp(-d2.clamp_min(0) / (2 * sigma2))', 'torch.exp(-d2.clamp_min(0) / sigma2)', [NB03],
      'Gaussian kernel exp(-d^2/sigma^2) instead of exp(-d^2/(2 sigma^2))'),
    M('mmd-kernel-laplacian', NB03, 'torch.exp(-d2.clamp_min(0) / (2 * sigma2))', 'torch.exp(-d2.clamp_min(0).sqrt() / (2 * sigma2))', [NB03],
      'distance instead of squared distance in the kernel'),
    M('ie-reg-over-M', NB03, 'return beta / M**2 * terms.sum()', 'return beta / M * terms.sum()', [NB03],
      'regularizer normalized by M instead of M^2'),
    # --- 06 train: the routing of the gradients and the losses ---
    M('train-step-lr-leak', NB06, 'if objective_weight != 0: (objective_weight * L_o).backward()',
      'if objective_weight != 0: (objective_weight * L_o + (0 if L_r is None else L_r)).backward()', [NB06],
      'L_r backpropagated into every parameter too (only when the objective is on)'),
    M('train-step-lr-backward-everywhere', NB06, 'if objective_weight != 0: (objective_weight * L_o).backward()',
      '(objective_weight * L_o + (0 if L_r is None else L_r)).backward()', [NB06],
      'one backward of L_o + L_r instead of routing: the regularizer updates the convolutions',
      more=[('g_r = torch.autograd.grad(L_r, theta_r, retain_graph=objective_weight != 0)', 'g_r = ()')]),
    M('train-step-drops-lr-grad', NB06, 'p.grad = g if p.grad is None else p.grad + g', 'p.grad = g if p.grad is None else p.grad', [NB06],
      'the regularizer\'s gradient is dropped whenever L_o has one'),
    M('losses-sigma2-doubled', NB06, 'sigma2=IE_SIGMA2)', 'sigma2=2 * IE_SIGMA2)', [NB06], 'the kernel gets 2 sigma^2'),
    M('losses-ie-gated-by-vib', NB06, 'if model.ie_beta else None', 'if model.vib_beta else None', [NB06],
      'the regularizer switched on by the wrong coefficient'),
    M('losses-vib-kl-sign', NB06, "L_o = L_o + model.vib_beta * aux['kl']", "L_o = L_o - model.vib_beta * aux['kl']", [NB06],
      'the VIB maximizes its KL term'),
    # --- 07/08 attack bookkeeping ---
    M('pgd-no-random-start', NB07, 'random_start=True', 'random_start=False', [NB07, NB08],
      'PGD without random start (Appendix F enables it)'),
    M('broken-at-exactly-eps', NB07, 'return np.logical_or.accumulate(torch.stack(wrong).numpy(), axis=0)',
      'return torch.stack(wrong).numpy()', [NB07, NB08], "broken at eps = fooled at exactly eps, not at some eps' <= eps"),
    M('white-eps-grid-shift', NB07, "res[(atk, 'white')] = dict(eps=[0, *eps]", "res[(atk, 'white')] = dict(eps=[*eps]", [NB07, NB08],
      'white-box curves lose the clean point: every accuracy is labelled with the next eps'),
    M('l2-clean-wrong-not-broken', NB07, 'rows = [wrong0.numpy()] + [wrong0.numpy() | (fooled.numpy() & (d <= e)) for e in eps]',
      'rows = [wrong0.numpy()] + [(fooled.numpy() & (d <= e)) for e in eps]', [NB07, NB08],
      'C&W: a misclassified clean image counts as unbroken at eps > 0'),
    M('table-eps-lookup-shift', NB08, "return self.acc[self.eps.index(eps)]", "return self.acc[self.eps.index(eps) - 1]", [NB08],
      'the table reports the accuracy of the previous eps'),
    # --- 07 attacks: the known-answer tests (linear closed forms, the some-eps' <= eps rule, random start) ---
    M('fixed-advs-eps-shift', NB07, "for k, c in enumerate(clipped): out[k, s] = c.detach().cpu()",
      "for k, c in enumerate(clipped): out[k - 1, s] = c.detach().cpu()", [NB07, NB08],
      'each eps gets the adversarial examples crafted for the next eps'),
    M('broken-fixed-rows-rolled', NB07, "[predict(target, a) != y for a in advs]", "[predict(target, a) != y for a in advs.roll(1, 0)]",
      [NB07, NB08], 'the fooled rows are rolled by one eps'),
    M('broken-l2-strict', NB07, "(fooled.numpy() & (d <= e))", "(fooled.numpy() & (d < e))", [NB07, NB08],
      'C&W: an example at exactly distance eps does not count'),
    M('broken-l2-exactly-eps-bin', NB07, "(fooled.numpy() & (d <= e))", "(fooled.numpy() & (d <= e) & (d > e - 0.5))", [NB07, NB08],
      'C&W: only examples in the last eps bin count (no some-eps\' <= eps rule)'),
    M('broken-l2-ignores-target', NB07, "wrong0.numpy() | (fooled.numpy() & (d <= e))", "wrong0.numpy() | (d <= e)", [NB07, NB08],
      'C&W: an example counts whether or not it fools the target'),
    M('l2-curve-ge', NB07, "return [float((d > e).mean()) for e in grid]", "return [float((d >= e).mean()) for e in grid]", [NB07, NB08],
      'the l2 accuracy curve counts an example at exactly distance eps as unbroken'),
    M('accuracy-curve-drops-clean-row', NB07, "return list(entry['eps']), (1 - entry['broken'].mean(1)).tolist()",
      "return list(entry['eps']), (1 - np.vstack([entry['broken'][1:], entry['broken'][-1:]]).mean(1)).tolist()", [NB07, NB08],
      'the accuracy curve loses its clean (eps = 0) point'),
    M('black-eps-without-0', NB07, "res[name][(atk, 'black')] = dict(eps=[0, *eps],", "res[name][(atk, 'black')] = dict(eps=[*eps, eps[-1]],",
      [NB07, NB08], 'black-box curves lose the clean point: every accuracy labelled with the next eps'),
    M('cw-failure-dist-0', NB07, "return adv, torch.where(fooled, dist, torch.full_like(dist, math.inf))",
      "return adv, torch.where(fooled, dist, torch.zeros_like(dist))", [NB07, NB08], 'C&W: a failed attack has distance 0 (broken at every eps)'),
    M('cw-linf-norm', NB07, "dist = (adv - x).flatten(1).norm(dim=1)", "dist = (adv - x).flatten(1).abs().amax(1)", [NB07, NB08],
      'C&W distance measured in l-inf instead of l2'),
    M('transfer-dist-ignores-fooled', NB07, "torch.where(fooled, dist, torch.full_like(dist, math.inf))).tolist()", "dist).tolist()",
      [NB07, NB08], 'black-box C&W: an example that does not fool the target still counts at its distance'),
    M('black-broken-on-substitute', NB07, "broken=broken_fixed(m, x, y, advs, eps))", "broken=broken_fixed(substitute, x, y, advs, eps))",
      [NB07, NB08], 'black-box accuracy measured on the substitute instead of the target'),
    M('clean-acc-of-substitute', NB07, "res[name]['clean'] = (predict(m, x) == y)", "res[name]['clean'] = (predict(substitute, x) == y)",
      [NB07, NB08], 'the clean accuracy is the substitute\'s'),
    M('pgd-half-steps', NB07, "steps=cfg.pgd_steps, random_start=True)", "steps=cfg.pgd_steps // 2, random_start=True)", [NB07, NB08],
      'PGD runs half its configured steps'),
    # --- 09 audit: its PGD (tested by notebook 07's random-start test) ---
    M('audit-pgd-no-random-start', NB09, "steps=steps, random_start=True)", "steps=steps, random_start=False)", [NB07, NB09],
      'the audit\'s PGD without random start'),
    # --- 09 audit: one stage per model, keyed on the checkpoint and the reproduction; AutoAttack in the stage ---
    M('audit-stage-key-no-reproduction', NB09,
      "    return dict(audit=cfg, reproduction=dict(attack_config=repro.attack_config, entries=read))",
      "    return dict(audit=cfg, reproduction=dict(attack_config=repro.attack_config))", [T_AUDIT],
      "a resumed audit takes a model's stage made from another reproduction (its entries join the worst case)"),
    M('audit-stage-key-no-checkpoint', NB09, "stage_key(stage_config(repro, name, cfg), images, {name: run.checkpoint(name)})",
      "stage_key(stage_config(repro, name, cfg), images, {})", [T_AUDIT],
      'a resumed audit takes a model\'s stage made on other weights saved under the same file name'),
    M('audit-stages-kept', NB09, "    Store(run.stages('audit')).clear(names)   # another call's stages stay\n", "", [T_AUDIT],
      'a finished audit leaves its stages behind, so that --force after a code change takes them again'),
    M('audit-clears-others-stages', NB09, "    Store(run.stages('audit')).clear(names)   # another call's stages stay\n",
      "    Store(run.stages('audit')).clear()\n", [T_AUDIT],
      "an audit of some models deletes the finished stages of the others (hours of work)"),
    M('already-present-redone', NB17, "    skip = [] if force else [m for m in names if present(m)]\n",
      "    skip = []\n", [T_AA],
      "AutoAttack and Square run again for hours, and rewrite the committed documents, where they are already in them"),
    M('audit-without-autoattack', NB09, "        if autoattack: r = autoattack(model, x, y, r, cfg, say)\n", "",
      [T_AUDIT], "the audit's configuration asks for AutoAttack, its results have none"),
    M('stages-force-ignored', NB09, "    if force: store.clear(names)\n", "", [T_AA],
      '--force of guessfirst autoattack takes the finished stages instead of attacking again'),
    # --- 08 reproduce: the table, the figure and the claims read every cell at its eps ---
    M('first-broken-plus-1', NB08, "return np.where(anyb, broken.argmax(0), -1).tolist()",
      "return np.where(anyb, broken.argmax(0) + 1, -1).tolist()", [NB08], 'the first breaking eps index is off by one'),
    M('first-broken-never-0', NB08, "return np.where(anyb, broken.argmax(0), -1).tolist()", "return broken.argmax(0).tolist()", [NB08],
      'an image never broken is recorded as broken at the clean point'),
    M('to-json-acc-shifted', NB08, "d = dict(eps=eps, acc=acc,", "d = dict(eps=eps, acc=acc[:1] + acc[:-1],", [NB08],
      'the saved accuracies are shifted by one eps'),
    M('acc-index-plus-1', NB08, "        c = self.curve(model, attack, side)\n        if c is None: raise",
      "        c = self.curve(model, attack, 'white')\n        if c is None: raise", [NB08],
      "a document's cell reads the white-box curve whatever the side (was: _acc reads the next eps)"),
    M('table-clean-row-from-curve', NB08, "acc, n = (doc.clean(m), doc.n) if c is None",
      "acc, n = (doc.curve(m, 'FGSM', 'white').acc[1], doc.n) if c is None", [NB08], 'the clean row reads FGSM at eps 0.15'),
    M('table-rows-cw-1.5', NB08, "('CW', 'black', 2.0),\n              ('FGSM', 'white', 0.15)",
      "('CW', 'black', 1.5),\n              ('FGSM', 'white', 0.15)", [NB08],
      'the table\'s black-box C&W row at eps 1.5 instead of 2.0'),
    M('table-always-white', NB08, "doc.curve(m, atk, 'query' if mode == 'queries' else mode)",
      "doc.curve(m, atk, 'query' if mode == 'queries' else 'white')", [NB08],
      'black-box rows show white-box accuracies'),
    M('masking-white-black-swapped', NB08, "w, b = doc.curve(m, atk, 'white').at(eps), doc.curve(m, atk, 'black').at(eps)",
      "b, w = doc.curve(m, atk, 'white').at(eps), doc.curve(m, atk, 'black').at(eps)", [NB08],
      'the masking check swaps white- and black-box'),
    M('figure-curve-shifted', NB08, "ax.plot(e.eps, 100 * np.array(e.acc), '-',", "ax.plot(e.eps[1:], 100 * np.array(e.acc[:-1]), '-',",
      [NB08], 'the figure plots each accuracy at the next eps'),
    M('dist-inf-as-0', NB08, "d['dist'] = [None if math.isinf(t) else t for t in v['dist']]",
      "d['dist'] = [0.0 if math.isinf(t) else t for t in v['dist']]", [NB08], 'a failed C&W attack is saved as distance 0'),
    # --- 06 train: devices and damaged checkpoints ---
    M('fit-cpu-sync-every-50', NB06, "sync_every = sync_every or (1 if dev.type == 'cpu' else 50)", "sync_every = sync_every or 50", [NB06],
      'the CPU reads the loss back every 50 steps too: a NaN is reported late (not at the step it appears)'),
    M('fallback-oldest-epoch', NB06, "for p in reversed(epoch_files(d).values()):",
      "for p in epoch_files(d).values():", [NB06],
      'a damaged last.pt: resume from the oldest loadable epoch checkpoint, not the newest'),
    M('load-checkpoint-unsafe-fallback', NB06, "try: return torch.load(path, map_location='cpu', weights_only=True)\n    except Exception as e:",
      "try: return torch.load(path, map_location='cpu', weights_only=True)\n    except Exception as e:\n"
      "        try: return torch.load(path, map_location='cpu', weights_only=False)\n        except Exception: pass", [NB06],
      'a checkpoint the safe loader refuses is loaded unsafely (arbitrary code in a pickle)'),
    M('damage-empty-as-truncated', NB06, "    if size == 0: return 'empty (0 bytes)'\n", "", [NB06],
      'an empty checkpoint is reported as truncated'),
    # --- 10 stability: score_stats and the 10- vs 200-epoch table ---
    M('score-stats-grad-tiny', NB10, "grad_all_zero=float((g['max_abs'] == 0).mean())",
      "grad_all_zero=float((g['norm_f32'] == 0).mean())", [NB10],
      'gradients below 1e-30 count as exactly zero'),
    M('grad-max-zero-where-norm-underflows', NB09, "out.append((g.abs().amax(1),",
      "out.append((g.abs().amax(1) * (g.pow(2).sum(1) > 0),", [NB09],
      'a tiny gradient whose float32 norm underflows is recorded as an all-zero one'),
    M('score-stats-other-includes-true', NB10, "other = Ts.masked_fill(F.one_hot(y, Ts.shape[1]).bool(), -math.inf).amax(1)",
      "other = Ts.amax(1)", [NB10], 'the best other score may be the true class\'s'),
    M('protocol-table-long-always-white', NB10, "acc, n = long_doc.cell(m, atk, mode, eps)",
      "acc, n = long_doc.cell(m, atk, 'white' if atk != 'clean' else mode, eps)", [NB10],
      'the 200-epoch column reads the white-box cell for black-box rows'),
    M('stability-subset-writes-study', NB10, "    if missing := [m for m in TARGETS if m not in curves]:\n",
      "    if missing := []:\n", [NB10, T_STAB], 'a run given some models writes a study that lacks the others'),
    M('stability-order-of-finishing', NB10, "curves={m: curves[m] for m in TARGETS}, environment",
      "curves=curves, environment", [NB10, T_STAB],
      "a shared study lists the models in the order the processes finished, not the targets' order"),
    # the key is stage_key's (it always hashes what it is given): the bug is a substitute stage keyed without its checkpoint
    M('stability-crafted-key-ignores-checkpoint', NB10, "key(files(SUBSTITUTE, [e])), lambda: craft_on(e)",
      "key({}), lambda: craft_on(e)", [NB10, T_STAB],
      "a resumed study takes examples crafted on other substitute weights saved under the same file name"),
    M('stability-model-key-ignores-checkpoints', NB10,
      "target_key = lambda m, epochs: key(files(m, epochs) | files(SUBSTITUTE, subs))",
      "target_key = lambda m, epochs: key(files(SUBSTITUTE, subs))", [NB10, T_STAB],
      "a resumed study takes a model's measurements made on other weights saved under the same file name"),
    # --- 15 claims: the one evaluator's bookkeeping ---
    M('claims-tie-goes-claimed-way', NB15, "won=d > 0, clear=clear", "won=d >= 0, clear=clear", [NB15],
      'a tie counts as going the claimed way'),
    M('claims-audit-reads-single', NB15,
      "return ms.get(sl, 'audit', model, 'audit-worst', 'all', norm, cell.eps) if study != 'stability' else None",
      "return ms.get(sl, 'reproduction', model, 'white', cell.attack, norm, cell.eps) if study != 'stability' else None",
      [NB15], "an audit slice's white-box cells read the reproduction's single attack, not the worst case"),
    M('claims-substitute-ignored', NB15, "return ms.get(sl, kind, model, 'transfer', cell.attack, norm, cell.eps, sub)",
      "return ms.get(sl, kind, model, 'transfer', cell.attack, norm, cell.eps, sl.epochs[0])", [NB15],
      "a slice's substitute length is ignored: transfer always from the substitute as long-trained as the targets"),
    M('claims-transfer-attacker-ignored', NB15, "kind = 'substitutes' if sl.transfer == 'substitutes' else study",
      "kind = study", [NB15], "a slice that asks for the worst of three substitutes reads the LeNet5 rows instead"),
    M('substitutes-worst-includes-targets', NB18, "worst=_worst({s: per[s] for s in substitutes}, n)",
      "worst=_worst(per, n)", [NB18], "the attacker's worst case over its substitutes also counts the other targets"),
    M('results-substitutes-variants-swapped', NB14,
      "out += [row(c.worst.correct, ''), row(c.worst_all.correct, 'with other targets')]",
      "out += [row(c.worst_all.correct, ''), row(c.worst.correct, 'with other targets')]", [NB14],
      "the table's worst-of-substitutes row (the one claims read) holds the worst case with the other targets"),
    M('claims-dedup-by-value', NB15, "key=(ma.key, mb.key))", "key=(ma[:2], mb[:2]))", [NB15],
      'two comparisons with equal counts in different cells are counted once'),
    M('wilson-normal-approximation', NB00C, "c = (p + z * z / (2 * n)) / d; h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d",
      "c = p; h = z * math.sqrt(p * (1 - p) / n)", [NB00C, NB08],
      "Wald's interval for Wilson's: every cell's interval, and which paper values fall inside, change"),
    M('run-seed0-suffixed', NB00D, "stem = self.dataset + ('' if self.seed == 0 else f'_seed{self.seed}')",
      "stem = self.dataset + f'_seed{self.seed}'", [NB00D],
      "seed 0's results are looked for under names that the committed results do not have"),
    M('atomic-write-keeps-tmp-mode', NB00B, "        os.chmod(tmp, _MODE)\n", "", [NB00B],
      "results are written readable by their owner only (mkstemp's 0600)"),
    M('newcombe-bounds-swapped', NB00C, "d - math.hypot(pa - la, ub - pb), d + math.hypot(ua - pa, pb - lb)",
      "d - math.hypot(ua - pa, pb - lb), d + math.hypot(pa - la, ub - pb)", [NB00C, NB15],
      "the difference's interval takes each side's half-width from the wrong side"),
    M('claims-paper-effect-reversed', NB15,
      "d = [P[k][a] - P[k][b] for k, (a, b, c) in zip(keys, claim.comparisons())]",
      "d = [P[k][b] - P[k][a] for k, (a, b, c) in zip(keys, claim.comparisons())]", [NB15],
      "the paper's effect is b - a"),
    M('pgd-starts-unseeded', NB07, "        torch.random.default_generator.manual_seed(seed)\n", "", [NB07, T_SUBS],
      "PGD's random starts come from whatever random state the caller is in (a resumed run differs)"),
    # --- 18 substitutes: one stage per source, keyed on the checkpoints that source reads ---
    M('substitutes-key-ignores-checkpoints', NB18, "if k in members or k in targets}", "if k in targets}", [T_SUBS],
      "a source's stage is resumed after its own checkpoint changed (the CNN of another seed retrained)"),
    M('substitutes-key-ignores-targets', NB18, "if k in members or k in targets}", "if k in members}", [T_SUBS],
      "a source's stage is resumed after a target it attacked was retrained"),
    M('substitutes-stages-kept', NB18, "atomic_write_text(path, substitutes_json(doc)); store.clear()",
      "atomic_write_text(path, substitutes_json(doc))", [T_SUBS],
      "a finished study leaves its stage files behind"),
    M('substitutes-ensemble-first-member-only', NB18, "Ensemble(*(models[k] for k in members)).eval()",
      "Ensemble(models[members[0]]).eval()", [T_SUBS],
      "the ensemble source is LeNet5 alone: the CNN of the other seed never contributes"),
    # --- 17 autoattack: seeding, what a stage is keyed on, what AutoAttack attacks, the audit's step ---
    M('autoattack-seeds-global', NB17, "            with _seeded(dev, cfg.seed): adv = atk.perturb(xb, yb)",
      "            torch.random.manual_seed(cfg.seed); adv = atk.perturb(xb, yb)", [NB17],
      "AutoAttack's gradient attacks leave the caller's global random state reseeded"),
    M('autoattack-key-ignores-survivors', NB17, "attacked=left), {name: run.checkpoint(name)})",
      "attacked=None), {name: run.checkpoint(name)})", [T_AA],
      "AutoAttack's stage is taken for an audit whose own attacks left other images"),
    M('autoattack-key-ignores-checkpoint', NB17, "attacked=left), {name: run.checkpoint(name)})",
      "attacked=left), {})", [T_AA], "AutoAttack's stage is taken after the model was retrained"),
    M('autoattack-base-keeps-cascade', NB17, "if not isinstance(e, CascadeEntry)})", "if True})", [T_AA],
      "extending an audit that has AutoAttack counts AutoAttack's own entries among the audit's attacks"),
    M('square-key-ignores-checkpoint', NB17, "images, {name: run.checkpoint(name)})", "images, {})", [T_AA],
      "Square's stage is taken after the model was retrained"),
    M('cascade-attacks-everything', NB17, "left = survivors(res, norm, grid) & ~clean_wrong",
      "left = np.ones_like(survivors(res, norm, grid)) & ~clean_wrong", [T_AA],
      "AutoAttack attacks every image, not only what the audit's attacks left (its counts are then not the cascade's)"),
    M('survivors-any-attack', NB17, "return (np.stack(S) > np.asarray(grid, float)[:, None, None]).all(1)",
      "return (np.stack(S) > np.asarray(grid, float)[:, None, None]).any(1)", [NB17],
      'an image counts as left by the audit if any one of its attacks failed on it'),
    M('autoattack-step-time-lost', NB17, "    return replace(r, seconds=r.seconds + time.time() - t0)",
      "    return r", [NB17],
      "AutoAttack's time in the audit is not counted in the model's seconds"),
    M('attack-broken-training-mode', NB17, "    model.eval()\n    dev = x.device\n", "    dev = x.device\n",
      [T_AUDIT], 'AutoAttack runs a BatchNorm model in training mode: batch statistics, running statistics moved'),
    # --- 08 reproduce: the stage keys (stage_key hashes every checkpoint it is given), the store, the results ---
    M('reproduce-partial-ignores-checkpoints', NB08,
      "{m: run.checkpoint(m) for m in ([*TARGETS, SUBSTITUTE] if s == 'black' else [s])}", "{}", [T_REPRO],
      "a resumed reproduction takes attacks made on other weights"),
    M('reproduce-white-stage-key-no-checkpoint', NB08,
      "[*TARGETS, SUBSTITUTE] if s == 'black' else [s])", "[*TARGETS, SUBSTITUTE] if s == 'black' else [])",
      [T_REPRO], "a target's white-box stage is resumed after its checkpoint changed"),
    M('reproduce-black-key-misses-substitute', NB08, "[*TARGETS, SUBSTITUTE] if s == 'black'", "TARGETS if s == 'black'",
      [T_REPRO], "the transfer attacks are resumed after the substitute's checkpoint changed"),
    M('check-finished-admits-unfinished', NB06, "    if ck['epoch'] < n:\n", "    if False:\n", [NB06, T_REPRO, T_STAB],
      'a reproduction or stability run given models attacks a model still in training'),
    # Store.run reads a stage's file just before computing it: the bug is stages read once, at the start
    M('reproduce-stage-not-rechecked', NB08,
      "    for s, key in attack_stages(run, only).items():\n        done[s] = st = store.run(s, key, lambda: compute(s))\n",
      "    first = {s: store.get(s, key) for s, key in attack_stages(run, only).items()}   # read once, at the start\n"
      "    for s, key in attack_stages(run, only).items():\n"
      "        done[s] = st = first[s] or store.put(s, key, compute(s))\n",
      [T_REPRO], 'a reproduction runs again a stage another process finished while it ran'),
    M('reproduce-stages-clear-all', NB08, "Store(run.stages(), log).clear(STAGES)", "Store(run.stages(), log).clear()",
      [T_REPRO], 'a finished reproduction deletes the stage file another process is still writing'),
    M('reproduce-stages-kept', NB08,
      "    Store(run.stages(), log).clear(STAGES)   # the folder stays if another process still writes into it\n", "",
      [T_REPRO], 'the stage files outlive the results they were written for'),
    M('reproduce-resumed-every-stage', NB08, "resumed = {s: st.commit for s, st in stages.items() if st.resumed}",
      "resumed = {s: st.commit for s, st in stages.items()}", [T_REPRO],
      'the results document says stages computed now were taken from an earlier run'),
    M('reproduce-attack-seconds-this-run', NB08, "attack_seconds=sum(st.seconds for st in stages.values())",
      "attack_seconds=sum(st.seconds for st in stages.values() if not st.resumed)", [T_REPRO],
      "a resumed run's attack time leaves out the stages finished before the kill"),
    M('attack-images-run-seed', NB08, "te = load(run.dataset, 'test').subset(cfg.n_test, seed=cfg.seed)",
      "te = load(run.dataset, 'test').subset(cfg.n_test, seed=run.seed)", [NB08],
      'each training seed is attacked on other test images (and the stage key describes images it did not read)'),
    M('reproduce-models-attack-unfinished', NB08, "        for m in models: check_finished(run, m)\n", "", [T_REPRO],
      'a process given models attacks a model still in training'),
    # --- 10 stability: the stage store (Run + Store) ---
    M('stability-others-not-reread', NB10,
      "    for m in TARGETS:   # measured by others, on the checkpoints now on disk\n"
      "        if m not in curves and store.path(m).exists():\n"
      "            if r := store.get(m, target_key(m, _epochs(run, m, cfg.epochs))): curves[m] = r.value\n",
      "", [NB10, T_STAB], 'two processes sharing a study both stop without writing it'),
    # was stability-model-not-rechecked: each target goes through Store.run, which reads its stage again just before
    # computing it; the bug is a target stage computed without asking the store
    M('stability-target-stage-never-taken', NB10,
      "        r = store.run(m, target_key(m, epochs), lambda: [row(m, e) for e in epochs])\n",
      "        r = store.put(m, target_key(m, epochs), [row(m, e) for e in epochs])\n",
      [NB10, T_STAB], 'a study measures again a model another process measured while it ran, or a killed run '
      'measured before it was killed'),
    M('stability-measures-unfinished', NB10,
      "    for name in [SUBSTITUTE, *(TARGETS if models is None else models)]:   # one may still be training\n",
      "    for name in [SUBSTITUTE, *models] if models is not None else []:\n", [NB10, T_STAB],
      'guessfirst stability --curves measures a run still in training and writes it as the study'),
    M('stability-markdown-common-epochs', NB10,
      "            eps = [r.epoch for r in rs]; t = curve_table(replace(stab, curves={m: rs}), eps)\n",
      "            eps = stab.epochs\n            t = curve_table(replace(stab, curves={m: rs}), eps)\n", [NB10, T_STAB],
      'the per-epoch markdown fails when the models were measured at different epochs'),
    M('stability-target-key-ignores-substitutes', NB10, "key(files(m, epochs) | files(SUBSTITUTE, subs))",
      "key(files(m, epochs))", [NB10, T_STAB],
      "a target's black-box rows are taken after the substitute they were transferred from was retrained"),
    M('stability-clear-takes-others-files', NB10,
      "store.clear([*TARGETS, *(f'{SUBSTITUTE}-epoch{e}' for e in subs)])", "store.clear()", [NB10, T_STAB],
      "the process that writes the study deletes another process's stage file in progress"),
    M('stability-epochs-read-twice', NB10,
      "want = list(dict.fromkeys(have[-1] if e == 0 else e for e in wanted)) or have",
      "want = [have[-1] if e == 0 else e for e in wanted] or have", [NB10, T_STAB],
      'substitute_epochs (1, 3, 0) on a 3-epoch run crafts on epoch 3 twice; a target epoch asked twice is measured '
      'twice'),
    M('stability-white-on-every-image', NB10, "white=white(model, x[:cfg.n_white], y[:cfg.n_white], cfg, seed=seed)",
      "white=white(model, x, y, cfg, seed=seed)", [NB10],
      'the white-box attacks run on every test image, not the first n_white the study reports'),
    M('seeds-audits-read-reproductions', NB10, "    return _by_seed(run, 'audit', audit_doc)\n", "    return _by_seed(run, '', reproduction)\n", [NB10, T_STAB],
      "audit_results returns each seed's reproduction instead of its audit"),
    M('plot-epochs-audit-star-one-eps', NB10,
      "cell_key('linf', WHITE_EPS[WHITE_CELLS.index(c)])", "cell_key('linf', 0.15)", [T_STAB],
      "the audit's worst case at 0.15 is drawn in the white-box 0.30 panel too"),
    # --- 11 grid: the plan's graph, the scheduling, what a done job is, what a job asks SLURM for ---
    M('grid-stability-not-after-audits', NB11, "after=tuple(ds_after)))", "after=()))", [NB11],
      'the stability study may start before the audits it tabulates have finished'),
    M('grid-stages-in-order', NB11, "pending = [j for st in reversed(stages) for j in st if j.key not in res]",
      "pending = [j for st in stages for j in st if j.key not in res]", [T_GRID],
      'every training goes first: no (dataset, seed) is finished early'),
    M('grid-done-ignores-epoch', NB11, "try: return bool(check_finished(job.run, job.model))",
      "try: return job.run.checkpoint(job.model).exists()", [T_GRID],
      'a training stopped halfway counts as done, so the grid never resumes it'),
    M('grid-failed-need-waits', NB11, "bad = [n for n in j.needs if n in res and not res[n].ok]",
      "bad = [n for n in j.needs if n in res and res[n].state == 'not sent']", [T_GRID],
      'a job whose need failed is neither refused nor sent: the grid stops with "the plan cannot go on"'),
    M('grid-masking-figure-forgotten', NB11, "stability=('epochs', 'masking', 'substitutes', 'seeds')",
      "stability=('epochs', 'substitutes', 'seeds')", [NB11],
      'a stability study without its masking figure counts as done and is never re-run'),
    M('grid-train-gets-out', NB11, "*([] if self.kind == 'train' else ['--out', str(r.out)])", "'--out', str(r.out)",
      [NB11], 'the training jobs get --out, which guessfirst-train refuses: every training job fails'),
    M('grid-exit0-trusted', NB11, "if not done(j): raise JobFailed(", "if False: raise JobFailed(", [T_GRID],
      'a command that exits 0 without its work on disk counts as completed'),
    M('grid-max-jobs-ignored', NB11, "elif ((not max_jobs or len(running) < max_jobs)", "elif (True", [T_GRID],
      '--jobs is ignored: every ready job runs at once on this machine'),
    M('grid-after-ignored', NB11, "and all(n not in keys or n in res for n in j.after)", "and True", [T_GRID],
      'the `after` edges are ignored: the stability study runs before the audits end'),
    M('grid-mem-mb-1000', NB11, "round(float(mem_gb) * 1024)", "round(float(mem_gb) * 1000)", [T_GRID],
      '--mem-gb 1.5 asks SLURM for 1500MB instead of 1536MB'),
    M('grid-why-swapped', NB11, "why = 'failed' if res[bad[0]].state == 'failed' else 'was not sent'",
      "why = 'was not sent' if res[bad[0]].state == 'failed' else 'failed'", [T_GRID],
      "a job not sent names the wrong reason (its need 'was not sent' when it failed)"),
    # --- 12 pretrained: what publish copies, the names of the published files, the sum check ---
    M('publish-earlier-epoch', NB12, "run.checkpoint(model, run.profile.train.epochs)",
      "run.checkpoint(model, run.profile.train.epochs - 1)", [T_PRE],
      'the weights of the next-to-last epoch are published as the final ones'),
    M('publish-newest-checkpoint', NB12, "run.checkpoint(model, run.profile.train.epochs)", "run.checkpoint(model)",
      [T_PRE], "last.pt (with Adam's moments and random states) is published instead of the last epoch's checkpoint"),
    M('pretrained-sum-unchecked', NB12, "    if got != want:", "    if False:", [NB12, T_PRE],
      'a damaged or foreign weights file is loaded without a word'),
    M('weight-name-with-runs-folder', NB12, "run.model_dir(check_model(model)).relative_to(run.runs).as_posix()",
      "run.model_dir(check_model(model)).as_posix()", [NB12],
      "the published names carry the runs folder ('runs/mnist/paper/...'): no manifest entry is found"),
    M('publish-manifest-replaced', NB12, "files = read_manifest(path) if path.exists() else {}",
      "files = {}", [T_PRE], 'publishing one run drops every other file from the manifest'),
    # --- 13 forensics: the output-layer variants, the stage keys, the closest variant ---
    M('forensics-fixed-eps-unseeded', NB13,
      "advs = fixed_eps_advs(atk, m, x, y, (0.15, 0.3), replace(cfg, seed=seed))",
      "advs = fixed_eps_advs(atk, m, x, y, (0.15, 0.3), cfg)", [T_FOR],
      "the white-box output-layer variants use the configuration's seed, not the forensics seed"),
    M('forensics-cw-kappa-ignored', NB13, "confidence=k)", "confidence=0)", [T_FOR],
      "every 'C&W kappa k' variant is C&W of confidence 0"),
    M('forensics-white-key-without-weights', NB13, "stage(w, {m: file(m)},", "stage(w, {},",
      [T_FOR], "a model's white-box stage is resumed after its published weights changed"),
    M('forensics-stages-kept', NB13, "json.dumps(plain(res), indent=1)); store.clear()", "json.dumps(plain(res), indent=1))",
      [T_FOR], "a finished forensics run leaves its stage files behind"),
    M('forensics-closest-by-signed-diff', NB13, "v = min(found, key=lambda v: (abs(found[v].pct - pv), v))",
      "v = min(found, key=lambda v: (found[v].pct - pv, v))", [NB13],
      "the 'closest' variant is the one furthest below the paper's value"),
    M('forensics-existing-recomputed', NB13, "    if (path := run.result('forensics')).exists() and not force:",
      "    if False:", [T_FOR], "rerunning guessfirst forensics recomputes an hour-long study whose document is written"),
    M('forensics-force-ignored', NB13, "force=a.force)", "force=False)", [T_FOR],
      "--force does not recompute an existing forensics document"),
    M('forensics-variant-name-keeps-empty', NB13, "return ' + '.join(t for t in tags if t)", "return ' + '.join(tags)",
      [NB13, T_FOR], "variant names with empty tags (' + foolbox 2 search'): no variant matches its pipelines' choices"),
    M('forensics-stage-renamed', NB13, "return f'white {model}'", "return f'white-box {model}'", [T_FOR],
      "the white-box stages renamed: every stage already on disk is recomputed"),
    M('stability-cell-name-fixed-decimals', NB10, "    return f'{attack} {eps:g}'\n", "    return f'{attack} {eps:.2f}'\n",
      [NB10, T_STAB], "a study's cells named 'CW 2.00': the committed studies' keys ('CW 2', 'FGSM 0.3') are no longer found"),
    M('stability-checkpoint-name-without-epoch', NB10, "    return f'{model} epoch {epoch}'\n", "    return f'{model}'\n",
      [NB10, T_STAB], "every epoch of a model keyed under one name: the stage key hashes only one checkpoint"),
    M('seed-worst-table-one-eps', NB10, "for norm, eps in (('linf', 0.15), ('linf', 0.3), ('l2', 2)):",
      "for norm, eps in (('linf', 0.15), ('linf', 0.15), ('l2', 2)):", [NB10, T_STAB],
      "the audits' worst case at l-inf 0.15 shown as the 0.30 row"),
    M('pgd-name-weak-is-strong', NB09, "    return '-'.join(('PGD', loss, run) if run else ('PGD', loss))",
      "    return '-'.join(('PGD', loss))", [NB09],
      "the weak and unbounded PGDs stored under the strong PGD's key: check (c) compares the strong attack with itself"),
    M('row-label-swapped', NB09, "    return f'{group}: {row}'", "    return f'{row}: {group}'", [NB09, T_AUDIT],
      "the HopSkipJump and PGD-gradient rows labelled 'without HSJ: l-inf 0.15': the committed markdown changes"),
    M('add-gradients-keeps-grad-norms', NB09,
      "results = doc.results | {name: replace(doc.results[name], grad_norms=None,",
      "results = doc.results | {name: replace(doc.results[name],", [T_AUDIT],
      "an audit given its gradients keeps the old float32 norms it replaces"),
    M('substitutes-seeded-name', NB18, "def seeded(model: str, seed: int) -> str: return f'{model} seed {seed}'",
      "def seeded(model: str, seed: int) -> str: return f'{model} seed{seed}'", [NB18, T_SUBS],
      "the attacker's CNN and the checkpoints get another name: the committed files' sources no longer match"),
    M('substitutes-ensemble-name-order', NB18, "return [SUBSTITUTE, cnn, ' + '.join((SUBSTITUTE, cnn))]",
      "return [SUBSTITUTE, cnn, ' + '.join((cnn, SUBSTITUTE))]", [NB18],
      "the ensemble source named 'CNN seed 1 + LeNet5': the committed documents' sources no longer match"),
    M('rederive-not-restated', NB17, "    write_json(path, replace(doc, restated=RESTATED))", "    write_json(path, doc)", [T_AA],
      "an audit restated from the earlier format does not say so"),
    M('cascade-chain-unchecked', NB17, "            if left is not None and t != left:", "            if False:", [T_AA],
      "an AutoAttack entry that did not attack what the attack before it left is accepted"),
    M('cascade-table-wrong-label', NB17, "rows[(m, cell_key(norm, eps).replace('linf', 'l-inf'))] = row",
      "rows[(m, cell_key(norm, eps))] = row", [NB17, T_AA], "the cascade table's rows labelled 'linf 0.15'"),
    M('publish-keeps-retrained', NB12,
      "if h == old and dst.exists() and sha256_file(dst) == old: continue",
      "if old: continue", [T_PRE],
      'a run trained again is never re-published, not even with overwrite: make weights keeps the old files and sums'),
    M('publish-replaces-silently', NB12,
      "if old and h != old and not overwrite: other.append(", "if False: other.append(", [T_PRE],
      'a run trained again silently replaces the published file that committed results were measured on'),
    M('publish-recopies-identical', NB12,
      "if h == old and dst.exists() and sha256_file(dst) == old: continue", "pass", [T_PRE],
      'make weights copies and logs again a checkpoint that is the published file already'),
    M('publish-skips-untrained', NB12,
      "            ck, h = load_checkpoint(src), sha256_file(src)",
      "            if not src.exists(): continue\n            ck, h = load_checkpoint(src), sha256_file(src)", [T_PRE],
      'make weights silently leaves out a listed run that is not trained, instead of saying how to train it'),
    M('publish-manifest-at-end', NB12, "        save(); log(f'published {name}')\n    if not todo: save()",
      "        log(f'published {name}')\n    save()", [T_PRE],
      'a copy that fails halfway leaves copied files that the manifest does not describe'),
    M('pretrained-unpublished-message-lost', NB12,
      "    if any(weight_name(r, 'CNN') == weight_name(run, 'CNN') for r in PUBLISHED):", "    if False:",
      [NB12, T_PRE], "a listed run not yet published reads as 'no published weights' with no word of when it comes"),
    M('is-published-any-file', NB12, "return all(weight_name(run, m) in files for m in MODELS)",
      "return any(weight_name(run, m) in files for m in MODELS)", [NB12],
      'a run with one file in the manifest counts as published'),
    M('claims-trend-columns-swapped', NB15, "for e in (a, b) for what in ('epoch', 'effect')",
      "for what in ('epoch', 'effect') for e in (a, b)", [NB15],
      "claim_trend's 'effect 10' column shows the verdict at epoch 200"),
    M('cli-unknown-command-runs', 'nbs/16_cli.ipynb', "if argv[0] not in SUBCOMMANDS:", "if False:", [T_CLI],
      'an unknown command is a KeyError traceback instead of one line and exit status 2'),
    M('redo-drops-kept-curves', NB08, "results={m: doc.results[m] | new[m] for m in TARGETS}",
      "results={m: new[m] for m in TARGETS}", [T_REPRO],
      "--redo CW throws away the clean accuracy and every other attack's curves of the existing results"),
    # --- 19 pipelines: counts from the results table's records, the typed document ---
    M('pipelines-transfer-read-as-white', NB19,
      "_SIDE = {'clean': '', 'white': 'white', 'transfer': 'black'}",
      "_SIDE = {'clean': '', 'white': 'white', 'transfer': 'white'}", [NB19],
      "the table's transfer rows are read as white-box cells: every transferred cell of the table gets a wrong count"),
    M('pipelines-rows-of-every-run', NB19,
      "table[table.source.isin([src.reproduction, src.forensics])]", "table", [NB19],
      "rows of other runs (paper-lite, other seeds, audits) overwrite the reproduction's counts"),
    M('pipelines-variants-in-table-order', NB19,
      "variants = {v: found.pop(v, {}) for v in foren.variants}",
      "variants = {v: found.pop(v, {}) for v in sorted(foren.variants)}", [NB19],
      "the variants in the table's (sorted) order: the grid's rows and chance's draws change; the committed file no longer matches"),
    M('pipelines-inside-open-interval', NB19,
      "return lo <= paper / 100 <= hi", "return lo < paper / 100 < hi", [NB19],
      "a paper value at an end of the interval (0.0 at 0 of 1,000) counted outside"),
    M('pipelines-discrepant-inverted', NB19,
      "discrepant=not inside(pv, k, n)", "discrepant=inside(pv, k, n)", [NB19],
      "reproduced cells counted as discrepant and the other way round"),
    M('pipelines-variant-count-of-any-model', NB19,
      "if (got := variants.get(tag, {}).get((c.cell, c.model))) is not None:",
      "if (got := next((v for (cell, _), v in variants.get(tag, {}).items() if cell == c.cell), None)) is not None:",
      [NB19], "a variant's count of another model at the same cell used for this model"),
    M('pipelines-output-layer-fallback-for-all', NB19,
      "if 'output layer' in parts and OUTPUT_LAYER.get(c.model, 0) is None:", "if 'output layer' in parts:", [NB19],
      "a cell the output-layer variant did not evaluate reads the variant without it, for models that have an output layer"),
    M('pipelines-chance-draws-reproduced-cells', NB19,
      "for c in (c for c in cells if c.discrepant):", "for c in cells:", [NB19],
      "chance counts reproduced cells as explained"),
    M('pipelines-consistent-ignores-output-layer', NB19,
      "            and ('output layer' in white) == ('output layer' in white_cw))", "            )", [NB19],
      "a grid pipeline with the output layer on white-box FGSM/PGD but not C&W counted as consistent"),
    M('pipelines-rank-by-explained', NB19,
      "return (s.inside, -s.mad)", "return (s.explained, -s.mad)", [NB19, T_PIPE],
      "the best pipeline picked by another criterion than the one fixed in advance"),
    M('pipelines-write-ignores-table', NB19,
      "if runs and table is None else table", "if runs else table", [T_PIPE],
      "write_pipelines rebuilds the table instead of using the one passed (tests/test_pipelines.py "
      "test_counts_come_from_the_table_passed)"),
    # --- 09/17: the audit's typed document ---
    M('audit-plain-writes-absent-keys', NB09, "    return finite(plain(obj, drop_none=True))", "    return finite(plain(obj))",
      [NB09, T_AUDIT], "an audit written back gains null keys it never had: the committed files stop round-tripping"),
    M('plain-drops-required-none', NB07A, "and drop_none\n                                                          and f.default is None)}",
      "and drop_none)}", [NB18, NB07A],
      "writing a document leaves out a field that must be given when it is None (a substitutes cell's best_target)"),
    M('cascade-single-kept', NB17, "None if isinstance(r.attacks[a], CascadeEntry) else v", "v", [T_AA],
      "an AutoAttack entry's 'accuracy' (what it left of what it attacked) is stored as if it were its own"),
    M('cascade-table-swapped', NB17, 'f"{e.broken_among_attacked[i]} of {e.attacked[i]}"',
      'f"{e.attacked[i]} of {e.broken_among_attacked[i]}"', [NB17, T_AA],
      "the cascade table reports attacked of broken"),
    # --- 10/14: the stability study's typed document, the results table's header ---
    M('stability-plain-writes-unmeasured', NB10, '    atomic_write_text(path, json.dumps(plain(doc, drop_none=True), indent=1))',
      '    atomic_write_text(path, json.dumps(plain(doc), indent=1))', [NB10, T_STAB],
      'a study written back gains null keys for what it did not measure: the committed studies stop round-tripping'),
    M('stability-row-by-position', NB10, '        if r := next((r for r in self.curves[model] if r.epoch == epoch), None): return r',
      '        if r := self.curves[model][min(epoch, len(self.curves[model])) - 1]: return r', [NB10],
      "a study's row read by its position, not its epoch"),
    M('stability-longest-substitute-by-text', NB10, '        return max(self.substitute, key=int)',
      '        return max(self.substitute)', [NB10],
      "the longest substitute compared as text ('3' > '10')"),
    M('stability-curve-table-shortest-substitute', NB10, '    sub, nan = stab.longest, lambda v: math.nan if v is None else v',
      '    sub, nan = min(stab.substitute, key=int), lambda v: math.nan if v is None else v', [NB10, T_STAB],
      'the curve table transfers from the shortest substitute'),
    M('results-header-seed-from-profile-run', NB14, 'return Header(doc.dataset, doc.profile, doc.seed)',
      'return Header(doc.dataset, doc.profile, 0)', [NB14],
      "a typed document's rows are named by seed 0 whatever its run"),
    M('results-stability-white-of-n', NB14, "out.append(make_row(doc, source, ep, m, mode, count(acc, nw), nw, atk, 'linf', float(eps)))",
      "out.append(make_row(doc, source, ep, m, mode, count(acc, n), n, atk, 'linf', float(eps)))", [NB14],
      'white-box counts of the stability study taken of all n images, not n_white'),
    # --- 13/18: the forensics and substitutes documents typed ---
    M('forensics-merge-keeps-last-stage', NB13, "out.setdefault(v, {}).setdefault(c, {}).update(per)",
      "out.setdefault(v, {})[c] = per", [T_FOR],
      "merging the stages keeps one stage's models per variant and cell: the other white-box models' counts vanish"),
    M('forensics-row-ci-is-ours', NB13, "ci=(100 * l, 100 * h),", "ci=(100 * lo, 100 * hi),", [NB13],
      "the closest variant is shown with the reproduction's interval instead of its own"),
    M('substitutes-counts-of-first-source', NB18, "correct = {s: int(n - v.sum()) for s, v in per.items()}",
      "correct = {s: int(n - per[substitutes[0]].sum()) for s in per}", [NB18],
      "every source's count is LeNet5's: the sources' counts are not kept apart"),
    M('substitutes-json-writes-null', NB18, "return json.dumps(plain(doc, drop_none=True), indent=1)",
      "return json.dumps(plain(doc), indent=1)", [NB18],
      "a document without checkpoints/environment gains null keys: the committed files stop matching"),
    M('audit-key-typed-entries', NB09, "read = {entry(*k): plain(repro.results[name][entry(*k)], drop_none=True)",
      "read = {entry(*k): plain(repro.results[name][entry(*k)])", [T_AUDIT],
      "the audit's stage key holds the typed curves' absent fields as nulls: every stage saved before is recomputed"),
    M('rederive-restates-every-entry', NB17, "restated_entry(e, r['clean'], k) if e.get('cascade') else e",
      "restated_entry(e, r['clean'], k)", [T_AA],
      "restating an audit treats the audit's own FGSM and PGD entries as AutoAttack's and fails on every real audit"),
    # --- 14/15: the results table and the claims read typed records ---
    M('results-audit-hsj-subset-ignored', NB14, "if (v := getattr(w, sub) if sub else w) is None: continue",
      "if (v := w) is None: continue", [NB14],
      "the audit's worst cases on HopSkipJump's subset carry the full worst case's count"),
    M('results-audit-epochs-from-profile', NB14, "else (epochs.get(header(doc)),)", "else (None,)", [T_RES],
      "audit, forensics and substitutes rows take the profile's training length, not the reproduction's"),
    M('claims-dedup-keeps-last', NB15, "comps.setdefault(c.key, c)", "comps[c.key] = c", [NB15],
      "of two comparisons of the same two measurements, the later one is reported"),
    M('claims-trend-epochs-swapped', NB15, "for e in (a, b))", "for e in (b, a))", [NB15],
      "claim_trend reads the trend from the later epoch back to the earlier"),
    M('claims-evaluation-by-name-wrong', NB15, "def __getitem__(self, name: str): return getattr(self, name)",
      "def __getitem__(self, name: str): return getattr(self, 'n')", [NB15],
      "the README reads an evaluation's field by name and gets another"),
    M('typed-tuple-from-list', NB07A, "if cls is tuple and isinstance(data, list): return tuple(data)",
      "if False: return tuple(data)", [NB07A, NB09],
      "a configuration's grid written as a list is refused: no stored attack or audit configuration can be read back"),
]

# ---------------------------------------------------------------------------------------------------------------
def is_exported(cell) -> bool:
    "A code cell whose source carries an nbdev `#| export` (or `exports`, `exporti`) directive."
    if cell.get('cell_type') != 'code': return False
    for line in ''.join(cell.get('source', [])).splitlines():
        s = line.strip().replace(' ', '')
        if s.startswith(('#|export', '#export')): return True
    return False

def mutate_source(nb_text: str, edits) -> tuple[str | None, str]:
    "The mutated notebook text, or (None, reason) when an `old` text is missing or ambiguous in the exported code cells."
    nb = json.loads(nb_text)
    cells = [c for c in nb['cells'] if is_exported(c)]
    for old, new in edits:
        hits = [(c, ''.join(c['source']).count(old)) for c in cells]
        n = sum(k for _, k in hits)
        if n != 1:
            return None, (f'{"not found" if n == 0 else f"found {n} times"} in the exported code cells: {old!r}')
        c = next(c for c, k in hits if k)
        c['source'] = ''.join(c['source']).replace(old, new).splitlines(keepends=True)
    return json.dumps(nb, indent=1, ensure_ascii=False) + '\n', ''

class Stop(Exception):
    "SIGTERM, turned into an exception so that the `finally` that restores the notebook runs."

def _sigterm(signum, frame): raise Stop(f'signal {signum}')

def tool_bin() -> Path:
    "The folder of the project's console scripts (nbdev_export, nbdev_test): this Python's, else .venv/bin."
    for b in (Path(sys.executable).parent, ROOT / '.venv' / 'bin'):
        if (b / 'nbdev_test').exists() and (b / 'nbdev_export').exists(): return b
    sys.exit('error: nbdev_test / nbdev_export not found beside this Python nor in .venv/bin; run `make setup` and use .venv/bin/python')

def env() -> dict:
    e = dict(os.environ, OMP_NUM_THREADS='1')
    e['PYTHONPATH'] = os.pathsep.join([str(ROOT)] + ([e['PYTHONPATH']] if e.get('PYTHONPATH') else []))
    return e

def run(cmd, timeout) -> tuple[int, str, float]:
    "(exit status, the output's tail, seconds); a timeout counts as a failure (status 124)."
    t0 = time.time()
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=timeout)
        rc, out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out = 124, f'timed out after {timeout}s\n' + ((e.stdout or b'').decode(errors='replace') if isinstance(e.stdout, bytes) else (e.stdout or ''))
    return rc, out, time.time() - t0

def package_digest() -> str:
    "A hash of every file of the package, to check that a restore gave back exactly the original export."
    h = hashlib.sha256()
    for f in sorted((ROOT / 'guessfirst_nb').rglob('*.py')):
        h.update(str(f.relative_to(ROOT)).encode()); h.update(f.read_bytes())
    return h.hexdigest()

def export(b: Path):
    rc, out, _ = run([str(b / 'nbdev_export')], 600)
    if rc: raise RuntimeError(f'nbdev_export failed:\n{out[-2000:]}')

def failure_line(out: str) -> str:
    "What failed, in one line: the notebook cell, the cell's failing line of code, and the exception's first line."
    lines = [l.strip() for l in out.splitlines() if l.strip()]
    cell = next((l.split('Cell')[-1].strip(' #:') for l in reversed(lines) if l.startswith('While Executing Cell')), '')
    code = next((lines[i + 1] for i in range(len(lines) - 2, -1, -1) if '<ipython-input' in lines[i]), '')
    err = next((l for l in reversed(lines) if (l.split(':')[0].endswith(('Error', 'Exception', 'Interrupt')) or l.startswith('timed out'))
                and not l.startswith(('File ', 'nbdev'))), lines[-1] if lines else '')
    return ' | '.join(s for s in (f'cell {cell}' if cell else '', code[:90], err[:110]) if s)

def test_notebook(b: Path, nb: str, timeout: int):
    "A notebook's tests, or (a path ending in .py) a pytest file's, slow tests included."
    if nb.endswith('.py'): return run([sys.executable, '-m', 'pytest', '-q', '-x', '-p', 'no:cacheprovider', nb], timeout)
    return run([str(b / 'nbdev_test'), '--path', nb], timeout)

def git_dirty() -> str:
    p = subprocess.run(['git', 'status', '--porcelain', 'nbs', 'guessfirst_nb'], cwd=ROOT, capture_output=True, text=True)
    if p.returncode: sys.exit(f'error: `git status` failed in {ROOT}: {p.stderr.strip()}')
    return p.stdout

def run_mutant(m: Mutant, b: Path, a, clean_digest: str) -> dict:
    "Apply, export, test, and always restore. Returns the mutant's record."
    path = ROOT / m.notebook
    rec = dict(name=m.name, notebook=m.notebook, why=m.why, status='invalid', by='', detail='', seconds=0.0)
    if not path.exists(): rec['detail'] = f'notebook {m.notebook} does not exist'; return rec
    original = path.read_bytes()
    mutated, reason = mutate_source(original.decode('utf-8'), m.edits)
    if mutated is None: rec['detail'] = reason; return rec
    t0 = time.time()
    try:
        path.write_text(mutated, encoding='utf-8')
        export(b)
        if package_digest() == clean_digest:
            rec['detail'] = 'the export did not change the package: is the cell exported?'; return rec
        rec['status'] = 'survived'
        checks = [(nb, lambda nb=nb: test_notebook(b, nb, a.timeout)) for nb in m.covers]
        if a.pytest: checks.append(('pytest tests', lambda: run([sys.executable, '-m', 'pytest', '-q', '-x', 'tests'], a.timeout)))
        ran = []
        for what, check in checks:
            rc, out, s = check()
            ran.append(f'{Path(what).stem} {s:.0f}s')
            if what.endswith('.py') and rc not in (0, 1, 124):   # pytest: 1 is a failed test; 2-5 mean it did not test
                rec.update(status='invalid', detail=f'pytest {what} exited {rc} without testing: {failure_line(out)}')
                break
            if rc:
                first = rec['status'] != 'killed'
                rec.update(status='killed', by=(rec['by'] + ',' if rec['by'] else '') + Path(what).stem,
                           detail=failure_line(out) if first else rec['detail'])
                if not a.all_covering: break
        if rec['status'] == 'survived': rec['detail'] = 'passed: ' + ', '.join(ran)
    finally:
        path.write_bytes(original)        # byte for byte, whatever happened
        export(b)
        rec['seconds'] = round(time.time() - t0, 1)
    if package_digest() != clean_digest:
        raise RuntimeError(f'after restoring {m.notebook} the package differs from the original export; '
                           f'run `git status` and `git checkout nbs guessfirst_nb`')
    return rec

def table(recs) -> str:
    w = max(len(r['name']) for r in recs)
    lines = [f"{'mutant':{w}s}  {'notebook':18s}  {'status':8s}  {'by':14s}  {'s':>5s}  detail", '-' * (w + 70)]
    for r in recs:
        lines.append(f"{r['name']:{w}s}  {Path(r['notebook']).stem:18s}  {r['status'].upper():8s}  {r['by']:14s}  {r['seconds']:5.0f}  {r['detail']}")
    return '\n'.join(lines)

def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='mutants', description=__doc__.split('\n\n')[0])
    p.add_argument('--list', action='store_true', help='list the mutants (and whether each still applies) and exit')
    p.add_argument('--only', nargs='+', metavar='NAME', help='run only these mutants')
    p.add_argument('--allow-survivors', action='store_true', help='exit 0 even if some mutant survives')
    p.add_argument('--all-covering', action='store_true', help="run every covering notebook, not only up to the first that fails")
    p.add_argument('--pytest', action='store_true', help='also run `pytest tests` against each mutant that the notebooks let survive')
    p.add_argument('--skip-baseline', action='store_true', help='do not check first that the covering notebooks pass unmutated')
    p.add_argument('--timeout', type=int, default=900, help='seconds allowed to one notebook test (default 900); a timeout counts as killed')
    p.add_argument('--json', metavar='PATH', help='also write the records as JSON')
    a = p.parse_args(argv)

    names = [m.name for m in MUTANTS]
    if len(set(names)) != len(names): sys.exit('error: duplicate mutant names')
    chosen = MUTANTS
    if a.only:
        unknown = [n for n in a.only if n not in names]
        if unknown: sys.exit(f"error: unknown mutant(s) {', '.join(unknown)}; valid: {', '.join(names)}")
        chosen = [m for m in MUTANTS if m.name in a.only]

    if a.list:
        for m in chosen:
            path = ROOT / m.notebook
            ok = path.exists() and mutate_source(path.read_text(encoding='utf-8'), m.edits)[0] is not None
            print(f"{m.name:34s} {Path(m.notebook).stem:15s} {'ok     ' if ok else 'INVALID'} covers {','.join(Path(c).stem[:2] for c in m.covers):8s} {m.why}")
        return 0

    dirty = git_dirty()
    if dirty:
        print(f'error: refusing to mutate: `git status --porcelain nbs guessfirst_nb` is not clean in {ROOT}:\n{dirty}'
              'Commit or stash these changes first (the tool restores what it changes, but the committed state is the '
              'fallback if it is killed hard), or run it in a clean copy of the repository.', file=sys.stderr)
        return 2
    b = tool_bin()
    signal.signal(signal.SIGTERM, _sigterm)
    clean_digest = package_digest()
    t_start, recs = time.time(), []
    try:
        if not a.skip_baseline:
            for nb in dict.fromkeys(c for m in chosen for c in m.covers):
                rc, out, s = test_notebook(b, nb, a.timeout)
                print(f'baseline {nb}: {"ok" if rc == 0 else "FAILED"} ({s:.0f}s)', flush=True)
                if rc:
                    print(f'error: {nb} fails without any mutant, so no mutant can be judged by it:\n{out[-3000:]}', file=sys.stderr)
                    return 2
        for i, m in enumerate(chosen, 1):
            print(f'[{i}/{len(chosen)}] {m.name} ({m.notebook}) ...', end=' ', flush=True)
            rec = run_mutant(m, b, a, clean_digest)
            recs.append(rec)
            print(f"{rec['status'].upper()} {rec['by']} ({rec['seconds']:.0f}s) {rec['detail'] if rec['status'] != 'killed' else ''}", flush=True)
    except (KeyboardInterrupt, Stop):
        print('\ninterrupted: the notebook was restored and re-exported', file=sys.stderr)
        if recs: print(table(recs))
        return 130
    finally:
        if git_dirty(): print(f'WARNING: nbs/ or guessfirst_nb/ differ from git after the run:\n{git_dirty()}', file=sys.stderr)

    print('\n' + table(recs))
    killed = [r for r in recs if r['status'] == 'killed']
    survived = [r for r in recs if r['status'] == 'survived']
    invalid = [r for r in recs if r['status'] == 'invalid']
    valid = len(recs) - len(invalid)
    print(f'\nkilled {len(killed)} of {valid}' + (f' ({len(survived)} survived: {", ".join(r["name"] for r in survived)})' if survived else '')
          + f'; {time.time() - t_start:.0f}s in all')
    if invalid:
        print(f"\n!!! {len(invalid)} INVALID mutant(s): the mutant list in tools/mutants.py is stale, update their source text:", file=sys.stderr)
        for r in invalid: print(f"!!!   {r['name']} ({r['notebook']}): {r['detail']}", file=sys.stderr)
    if a.json: Path(a.json).write_text(json.dumps(dict(records=recs, killed=len(killed), valid=valid), indent=1))
    if invalid: return 2
    return 0 if not survived or a.allow_survivors else 1

if __name__ == '__main__':
    sys.exit(main())

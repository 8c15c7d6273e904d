"""The forensics (notebook 13): that each variant's settings reach the attack its name describes, on constructed models
with every attack replaced by a stand-in that records what it is given; and a small real run, killed after its
white-box stages, that resumes them and recomputes nothing (slow)."""
import inspect, json, shutil
from dataclasses import asdict, replace
from pathlib import Path
from types import SimpleNamespace
import foolbox as fb
import pytest
import torch
import torch.nn.functional as F
from torch import nn
import guessfirst_nb.attacks as A
from guessfirst_nb.io import sha256_file
from guessfirst_nb.run import Run
import guessfirst_nb.forensics as FO
from guessfirst_nb.pretrained import pretrained_file
from guessfirst_nb.profiles import PROFILES, AttackConfig
from guessfirst_nb.store import Store, plain, typed

ROOT = Path(__file__).resolve().parent.parent
from conftest import committed, label as file_label

# --- each variant's settings reach the attack it names ---------------------------------------------------------------
N, MORE = 100, 45    # images; a stand-in's answer breaks `code` images at eps 0.15 and `code + MORE` at 0.3
SEED = 3             # the forensics seed: not the configuration's, so that a variant passing the wrong one shows
CFG = AttackConfig(n_test=N, fgsm_eps=(0.05, 0.15, 0.2, 0.3, 0.5), pgd_eps=(0.1, 0.15, 0.3), pgd_steps=7,
                   pgd_rel_stepsize=0.05, cw_steps=11, cw_binary_search_steps=3, cw_stepsize=0.07, cw_initial_const=0.5)
Y = torch.arange(N) % 10
X = torch.zeros(N, 1, 28, 28); X[:, 0, 0, 1] = Y / 10
# the attacks themselves, kept before the tests replace them
REAL = dict(fgsm_search=FO.fgsm_search, pgd_bisect=FO.pgd_bisect, fb2_pgd_white=FO.fb2_pgd_white,
            fixed_eps_advs=FO.fixed_eps_advs, cw_advs=A.cw_advs, CW=fb.attacks.L2CarliniWagnerAttack.__init__)


class Marked(nn.Module):
    """A classifier with known answers: it reads the label off pixel (0, 1) (label / 10) and answers the next class
    once pixel (0, 0) carries a mark (> 0.05). `tag` names it in the records."""
    def __init__(self, tag): super().__init__(); self.tag = tag; self.w = nn.Parameter(torch.ones(()))
    def forward(self, x):
        c = (x[:, 0, 0, 1] * 10).round().long() + (x[:, 0, 0, 0] > 0.05).long()
        return F.one_hot(c % 10, 10).to(x.dtype) * self.w


def marked(k):
    "The images with a mark of 0.1 (l-inf and l2 size 0.1) on the first k: they fool every `Marked` model."
    a = X.clone(); a[:k, 0, 0, 0] = 0.1; return a


def label(m) -> str:
    "What a model given to an attack is: a constructed model's tag, or an output layer over one."
    if isinstance(m, FO.OutputLayer): return f'{label(m.model)} through {m.act}'
    return getattr(m, 'tag', type(m).__name__)


def settings(fn, *a, **k) -> tuple:
    """The call of `fn` as a hashable record: every argument (defaults included) but the images, models by `label`, a
    generator by its seed, a configuration by its fields."""
    b = inspect.signature(fn).bind(*a, **k); b.apply_defaults()
    out = [fn.__name__]
    for name, v in b.arguments.items():
        if name in ('x', 'y'):
            assert torch.equal(v, X if name == 'x' else Y), f'{fn.__name__} was given other images'
            continue
        if name in ('self', 'batch_size'): continue
        if isinstance(v, nn.Module): v = label(v)
        elif isinstance(v, torch.Generator): v = ('seed', v.initial_seed())
        elif isinstance(v, AttackConfig): v = tuple(sorted(asdict(v).items()))
        elif isinstance(v, list): v = tuple(v)
        out.append((name, v))
    return tuple(out)


@pytest.fixture
def codes(monkeypatch):
    """Every attack the variants call, replaced by a stand-in that records its settings and answers with counts unique
    to them: {settings: code}, the code of a call breaking `code` images at 0.15 and `code + MORE` at 0.3."""
    codes = {}
    def code(key):
        c = codes.setdefault(key, len(codes) + 1); assert c + MORE < N; return c
    def size(c):
        s = torch.full((N,), float('inf')); s[:c] = 0.15; s[c:c + MORE] = 0.3; return s
    def search(name):   # fgsm_search, pgd_bisect: (examples, their sizes)
        def f(*a, **k): c = code(settings(REAL[name], *a, **k)); return marked(c + MORE), size(c)
        f.__name__ = name; return f
    def fb2_pgd_white(*a, **k):
        c = code(settings(REAL['fb2_pgd_white'], *a, **k))
        return {0.15: (torch.arange(N) < c).numpy(), 0.3: (torch.arange(N) < c + MORE).numpy()}
    def fixed_eps_advs(*a, **k):
        key = settings(REAL['fixed_eps_advs'], *a, **k); c, eps = code(key), dict(key[1:])['eps']
        return torch.stack([marked(c + MORE) if e >= 0.3 - 1e-9 else marked(c) if e >= 0.15 - 1e-9 else X for e in eps])
    def cw_advs(*a, **k):
        c = code(settings(REAL['cw_advs'], *a, **k))
        d = torch.full((N,), float('inf')); d[:c] = 1.0; return marked(c), d
    class CW:
        def __init__(self, *a, **k): self.init = tuple(sorted(settings(REAL['CW'], self, *a, **k)[1:]))
        def __call__(self, fm, x, y, epsilons):
            assert torch.equal(x, X) and torch.equal(y, Y)
            c = code(('CW', *self.init, ('model', label(fm.model)), ('bounds', tuple(fm.bounds)),
                      ('epsilons', tuple(epsilons))))
            return None, [marked(c)], None
    for f in (search('fgsm_search'), search('pgd_bisect'), fb2_pgd_white, fixed_eps_advs):
        monkeypatch.setattr(FO, f.__name__, f)
    monkeypatch.setattr(A, 'cw_advs', cw_advs)   # white_variants imports it from guessfirst_nb.attacks when it runs
    monkeypatch.setattr(fb.attacks, 'L2CarliniWagnerAttack', CW)
    monkeypatch.setattr(fb, 'PyTorchModel', lambda model, bounds, device=None: SimpleNamespace(model=model,
                                                                                                  bounds=bounds))
    return codes


def key(fn, **kw):
    "The record of a call of `fn` as a variant's definition says it is made (models by their labels)."
    return settings(fn, x=X, y=Y, **kw)


def counts(codes, k, eps):
    "The counts a variant reports at eps for the attack call `k`, if the call was made."
    assert k in codes, f'no call with the settings {k}; calls made: {list(codes)}'
    broken = codes[k] + (MORE if eps == 0.3 else 0)
    return FO.Count(N - broken, N)


# the definitions of the text: foolbox 2.x's searches (steps of 0.001 up to 0.3, what the cells need; PGD from 0.3,
# x1.5 and 20 bisections, 40 steps of eps/30 from a random start) seeded by the forensics seed
SEEDED = ('seed', SEED)
FGSM_SEARCH = lambda model: key(REAL['fgsm_search'], model=model, eps_max=0.3, grid=1000)
PGD_SEARCH = lambda model: key(REAL['pgd_bisect'], model=model, eps0=0.3, k=20, steps=40, rel_stepsize=0.01 / 0.3,
                               random_start=True, generator=SEEDED)
FB2_PGD_WHITE = lambda model: key(REAL['fb2_pgd_white'], model=model, generator=SEEDED)
OURS = lambda atk, model, eps: key(REAL['fixed_eps_advs'], attack=atk, model=model, eps=eps,
                                   cfg=replace(CFG, seed=SEED))


# the output activations of Appendix F and Section 2.2: softmax for the classifiers, sigmoid for JS, none for DV
ACT = {'CNN': 'softmax', 'C-DV': None, 'C-JS': 'sigmoid', 'C-DV-IE': None, 'C-JS-IE': 'sigmoid', 'Alemi': 'softmax'}


@pytest.mark.parametrize('name', list(ACT))
def test_white_variants_attack_what_their_names_say(codes, name):
    model = Marked(f'target {name}')
    out = FO.white_variants(name, model, X, Y, CFG, seed=SEED)
    lay = f'target {name} through {ACT[name]}'
    want = {'foolbox 2 search': {**{f'FGSM/white {e:g}': (FGSM_SEARCH(f'target {name}'), e) for e in (0.15, 0.3)},
                                 **{f'PGD/white {e:g}': (FB2_PGD_WHITE(f'target {name}'), e) for e in (0.15, 0.3)}}}
    if ACT[name]:   # the variants on the output layer, where the model has one
        want['output layer + foolbox 2 search'] = {
            **{f'FGSM/white {e:g}': (FGSM_SEARCH(lay), e) for e in (0.15, 0.3)},
            **{f'PGD/white {e:g}': (FB2_PGD_WHITE(lay), e) for e in (0.15, 0.3)}}
        want['output layer'] = {**{f'{a}/white {e:g}': (OURS(a, lay, (0.15, 0.3)), e)
                                   for a in ('FGSM', 'PGD') for e in (0.15, 0.3)},
                                'CW/white 2': (key(REAL['cw_advs'], model=lay, cfg=CFG), 0.15)}
    assert {v: sorted(c) for v, c in out.items()} == {v: sorted(c) for v, c in want.items()}
    for v, cells in want.items():
        for cell, (k, e) in cells.items(): assert out[v][cell] == {name: counts(codes, k, e)}, (v, cell)


def test_transfer_variants_attack_what_their_names_say(codes):
    targets = {m: Marked(f'target {m}') for m in ('CNN', 'C-JS')}
    subs = {'': Marked('LeNet5 200 epochs'), 'substitute 10 epochs': Marked('LeNet5 10 epochs')}
    out = FO.black_variants(targets, subs, X, Y, CFG, seed=SEED)
    want = {}
    for stag, sub in [('', 'LeNet5 200 epochs'), ('substitute 10 epochs', 'LeNet5 10 epochs')]:
        for otag, s in [('', sub), ('substitute output layer', f'{sub} through softmax')]:
            for sem in ('', 'foolbox 2 search'):
                v = ' + '.join(t for t in [stag, otag, sem] if t)
                if not v: continue   # the reproduction's own attacks, read from its results
                want[v] = {f'{a}/black {e:g}': (
                    (FGSM_SEARCH(s) if a == 'FGSM' else PGD_SEARCH(s)) if sem
                    else OURS(a, s, CFG.fgsm_eps if a == 'FGSM' else CFG.pgd_eps), e)
                    for a in ('FGSM', 'PGD') for e in (0.15, 0.3)}
        for k in FO.KAPPAS:   # C&W of confidence k on the substitute itself, the reproduction's C&W settings, l2 <= 2
            cw = ('CW', *sorted(dict(binary_search_steps=CFG.cw_binary_search_steps, steps=CFG.cw_steps,
                                     stepsize=CFG.cw_stepsize, confidence=k, initial_const=CFG.cw_initial_const,
                                     abort_early=True).items()),
                  ('model', sub), ('bounds', (0, 1)), ('epsilons', (2.0,)))
            want[' + '.join(t for t in [stag, f'C&W kappa {k}'] if t)] = {'CW/black 2': (cw, 0.15)}
    assert sorted(out) == sorted(want)
    for v, cells in want.items():
        assert sorted(out[v]) == sorted(cells), v
        for cell, (k, e) in cells.items():
            assert out[v][cell] == {m: counts(codes, k, e) for m in targets}, (v, cell)


# --- a small real run, killed and resumed ---------------------------------------------------------------------------
@pytest.mark.slow
def test_a_killed_run_resumes_its_stages_and_recomputes_nothing(tmp_path, monkeypatch):
    """Two models, 40 images, the published weights: killed in its transfer stage, the run resumes its two white-box
    stages (keyed on the weight file each reads) and computes only the transfer variants."""
    (tmp_path / 'paper').mkdir()
    shutil.copy(ROOT / 'results/paper/mnist.json', tmp_path / 'paper' / 'mnist.json')
    cfg_small = AttackConfig(n_test=40, cw_steps=10, cw_binary_search_steps=1)
    monkeypatch.setitem(PROFILES, 'paper', replace(PROFILES['paper'], attack=cfg_small))
    run, calls = Run('mnist', 'paper', out=tmp_path), []
    def boom(*a, **k): raise RuntimeError('killed')
    with monkeypatch.context() as m:
        m.setattr(FO, 'black_variants', boom)
        with pytest.raises(RuntimeError, match='killed'): FO.forensics(run, models=['C-JS', 'CNN'], log=calls.append)
    assert [c.split(':')[0] for c in calls] == ['mnist white C-JS', 'mnist white CNN']
    store = Store(run.stages('forensics'))
    assert sorted(p.name for p in store.folder.iterdir()) == ['white C-JS.json', 'white CNN.json']
    key = json.loads(store.path('white C-JS').read_text())['key']
    assert key['checkpoints'] == {'C-JS': sha256_file(pretrained_file(run, 'C-JS'))}
    assert key['images'] == dict(n=40, seed=cfg_small.seed)
    res = FO.forensics(run, models=['C-JS', 'CNN'], log=calls.append)
    # resumed: only the transfer variants ran
    assert calls[2:4] == ['mnist white C-JS: resumed', 'mnist white CNN: resumed'] and len(calls) == 5
    assert calls[4].startswith('mnist black: computed in')
    assert res.n == 40 and not store.folder.exists()
    assert typed(FO.Forensics, json.loads(run.result('forensics').read_text())) == res   # the file is the document
    assert sorted(res.seconds) == ['black', 'white C-JS', 'white CNN']
    assert sorted(res.variants['output layer']['PGD/white 0.15']) == ['C-JS', 'CNN']
    assert 'C&W kappa 40' in res.variants and 'substitute 10 epochs + C&W kappa 0' in res.variants
    for v in res.variants.values():
        for c in v.values():
            for cnt in c.values(): assert cnt.n == 40
    assert FO.forensics_markdown(res).startswith('| cell | model | paper |')


# --- the document and its stages -------------------------------------------------------------------------------------
def test_merge_variants_keeps_every_stages_models():
    "Two white-box stages (one model each) and the transfer stage: every model's counts kept, each under its own name."
    w = lambda m, k: {'output layer': {'PGD/white 0.15': {m: dict(correct=k, n=10)}}}
    got = FO.merge_variants([w('C-JS', 3), w('CNN', 5), {'C&W kappa 0': {'CW/black 2': {'CNN': dict(correct=9, n=10)}}}])
    assert got == {'output layer': {'PGD/white 0.15': {'C-JS': FO.Count(3, 10), 'CNN': FO.Count(5, 10)}},
                   'C&W kappa 0': {'CW/black 2': {'CNN': FO.Count(9, 10)}}}
    with pytest.raises(ValueError, match="Count has no field 'acc'"):   # an unknown key: one clear error
        FO.merge_variants([{'v': {'c': {'CNN': dict(correct=1, n=2, acc=0.5)}}}])


def test_stage_and_weight_names():
    "The names the stages and their keys have always had: renaming them recomputes every stage already on disk."
    assert (FO.white_stage('C-JS'), FO.weights_name('LeNet5', 'paper-lite')) == ('white C-JS', 'LeNet5 paper-lite')


FORENSICS = committed('*/*_forensics.json')

def test_the_committed_forensics_are_found():
    "The round trip below is parametrized by a glob: an empty glob would skip it without a word."
    assert {'paper/mnist_forensics.json', 'paper/fashion_mnist_forensics.json'} <= set(map(file_label, FORENSICS))


@pytest.mark.parametrize('path', FORENSICS, ids=file_label)
def test_committed_document_round_trips_byte_for_byte(path):
    "The schema is the file's: read and written back, the same bytes; its markdown is the committed one."
    raw = json.loads(path.read_text())
    res = typed(FO.Forensics, raw)
    assert json.dumps(plain(res), indent=1) == path.read_text()
    assert FO.forensics_markdown(res) + '\n' == path.with_suffix('.md').read_text()
    with pytest.raises(ValueError, match="Forensics has no field 'row'"):   # one clear error
        typed(FO.Forensics, dict(raw, row=[]))


# --- the command line ------------------------------------------------------------------------------------------------
def cli(capsys, *args):
    "Run main(args): (exit status, stdout, stderr)."
    rc = FO.main([str(a) for a in args]); out, err = capsys.readouterr()
    return rc, out, err


def test_cli_bad_input_is_one_line_before_anything_is_computed(tmp_path, capsys):
    "A bad value, a missing reproduction and a missing weights file: each one line and exit status 2, nothing written."
    (tmp_path / 'paper').mkdir(); empty = tmp_path / 'empty'; empty.mkdir()
    for args, msg in [(['--dataset', 'all'], "unknown dataset 'all'; valid datasets: mnist, fashion_mnist"),
                      (['--profile', 'full'], "unknown profile 'full'; valid profiles: smoke, quick, paper-lite, paper"),
                      (['--out', tmp_path],
                       f"no reproduction at {Run('mnist', 'paper', out=tmp_path).result()}: run guessfirst-reproduce first")]:
        assert cli(capsys, *args) == (2, '', f'error: {msg}\n')
    shutil.copy(ROOT / 'results/paper/mnist.json', tmp_path / 'paper' / 'mnist.json')
    rc, o, e = cli(capsys, '--out', tmp_path, '--weights', empty, '--device', 'cpu')
    assert (rc, o, e.count('\n')) == (2, '', 1)
    assert e.startswith(f'error: {empty}/') and 'does not exist' in e and 'Fix:' in e, e
    assert sorted(p.name for p in (tmp_path / 'paper').iterdir()) == ['mnist.json']   # nothing written


def made_document(run: Run) -> FO.Forensics:
    "A hand-made forensics document of `run`: one discrepant cell, explained by one variant."
    row = FO.Row('PGD/white 0.15', 'C-JS', 50.0, 10.0, (8.3, 12.0), 'near', 49.5, (46.4, 52.6), True, 1)
    return FO.Forensics(run.dataset, run.profile.name, run.seed, 1000, ['C-JS'], {}, {}, {'white C-JS': 1.0},
                        {'near': {'PGD/white 0.15': {'C-JS': FO.Count(495, 1000)}}}, [row])


def test_an_existing_document_is_rendered_not_recomputed(tmp_path, capsys):
    """Like the other studies' commands: an existing document is read and rendered, and its markdown written, without
    loading a model (the weights folder is empty); --force recomputes it, and here stops at the missing weights."""
    run, empty = Run('mnist', 'paper', out=tmp_path), tmp_path / 'empty'
    empty.mkdir(); (tmp_path / 'paper').mkdir()
    run.result().write_text('{}')   # the reproduction: only that it exists is checked before the document is read
    doc = made_document(run)
    text = json.dumps(plain(doc), indent=1); run.result('forensics').write_text(text)
    rc, out, err = cli(capsys, '--out', tmp_path, '--weights', empty, '--device', 'cpu')
    md = FO.forensics_markdown(doc)
    assert (rc, out, err) == (0, md + '\n', f"exists: {run.result('forensics')} (use --force to recompute)\n")
    assert run.result('forensics').with_suffix('.md').read_text() == md + '\n'
    assert run.result('forensics').read_text() == text   # not rewritten
    assert FO.forensics(run, log=lambda *m: None) == doc   # the function too: the document read back
    rc, out, err = cli(capsys, '--out', tmp_path, '--weights', empty, '--device', 'cpu', '--force')
    assert (rc, out, err.count('\n')) == (2, '', 1) and f'error: {empty}/' in err and 'does not exist' in err, err
    assert run.result('forensics').read_text() == text

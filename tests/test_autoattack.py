"""AutoAttack's machinery (notebook 17): the command's error paths; the earlier format of the entries restated as counts,
and the committed audits in the stored format; extending an audit on disk and adding Square to a reproduction, one
stage per model (its own budgets, the stored format; a stage taken only under its own key: the budgets, the images
attacked, the checkpoint; `force`, `models`); no attack breaking an image beyond its boundary distance at the standard
budgets."""
import contextlib, copy, io, json, shutil
from dataclasses import asdict, replace
from pathlib import Path
import pytest
import torch
import torch.nn as nn
from guessfirst_nb.audit import (attack_key, attacked_images, audit_doc, audit_model, model_result, to_plain, worst_cases,
                                 write_json, AuditDoc, CascadeEntry, GivenEntry, Images, ModelResult, Source, Subset)
from guessfirst_nb.store import plain
from guessfirst_nb.autoattack import (AUTOATTACK, AutoAttackConfig, add_autoattack, add_square, attack_broken,
                                      audit_autoattack_config, boundary_distance, cascade_table, main,
                                      rederive_audit, restate_cascade, restated_entry, survivors, RESTATED)
from guessfirst_nb.models import TARGETS
from guessfirst_nb.profiles import AuditConfig
from guessfirst_nb.run import Run
from guessfirst_nb.train import fit, load_model

ROOT = Path(__file__).resolve().parent.parent


def test_command_errors_are_one_line(tmp_path):
    err = io.StringIO()
    with contextlib.redirect_stderr(err): assert main(['--dataset', 'svhn']) == 2
    assert 'unknown dataset' in err.getvalue() and 'Traceback' not in err.getvalue()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(['--dataset', 'mnist', '--profile', 'smoke', '--out', str(tmp_path), '--into', 'audit']) == 1
    assert 'no audit at' in err.getvalue() and 'guessfirst-audit --dataset mnist --profile smoke' in err.getvalue()
    assert 'Traceback' not in err.getvalue()


# --- AutoAttack's entries in an audit made by hand (fast) ------------------------------------------------------

ONE = AuditConfig(linf_eps=(0.15,), l2_eps=())

def cascade(fb, attacked, broken):
    "An AutoAttack entry at l-inf 0.15 on four images: it attacked `attacked` of them and broke `broken`."
    return CascadeEntry(kind='white', norm='linf', eps=[0.0, 0.15], n=4, first_broken=fb, attacked=[attacked],
                        broken_among_attacked=[broken], cascade=True, config={})

def made_result(**aa) -> ModelResult:
    """PGD breaks image 0 at 0.15; of the three it left, APGD-CE breaks image 1, FAB-T image 2 (`aa` replaces
    entries); the worst case computed and restated as `with_autoattack` does."""
    attacks = {'PGD-ce/linf': GivenEntry(kind='white', norm='linf', eps=[0, 0.15], first_broken=[1, -1, -1, -1]),
               'APGD-CE/linf': cascade([-1, 1, -1, -1], 3, 1), 'APGD-T/linf': cascade([-1] * 4, 2, 0),
               'FAB-T/linf': cascade([-1, -1, 1, -1], 2, 1), 'Square/linf': cascade([-1] * 4, 1, 0)} | aa
    r = ModelResult(n=4, clean=1.0, attacks=attacks, checks={}, worst_case={}, seconds=0.0)
    return restate_cascade(replace(r, worst_case=worst_cases(r, ONE)))

def test_autoattack_entries_count_in_the_worst_case_but_have_no_accuracy_of_their_own():
    r = made_result()
    w = r.worst('linf', 0.15)
    assert (w.k, w.n, w.acc) == (1, 4, 0.25)   # image 3 alone survives every attack
    assert w.single == {'PGD-ce/linf': 0.75, 'APGD-CE/linf': None, 'APGD-T/linf': None, 'FAB-T/linf': None,
                        'Square/linf': None}   # 0.75 left by APGD-CE alone would not be its accuracy
    assert w.only == {'PGD-ce/linf': 1, 'APGD-CE/linf': 1, 'APGD-T/linf': 0, 'FAB-T/linf': 1, 'Square/linf': 0}
    doc = AuditDoc(dataset='mnist', profile='made-up', seed=0, audit_config=plain(ONE), attack_config={},
                   images=Images(Subset(4, 0), [0, 1, 2, 3], None, Subset(2, 1)), reproduction=Source('', None),
                   environment={}, seconds={}, total_seconds=0.0, results={'CNN': r}, compression={})
    assert cascade_table(doc).loc[('CNN', 'l-inf 0.15')].tolist() == ['1 of 3', '0 of 2', '1 of 2', '0 of 1', '25.0']
    data = to_plain(doc); data['results']['CNN']['attacks']['Square/linf']['acc'] = [1.0, 1.0]
    with pytest.raises(ValueError, match=r"attacks\['Square/linf'\]: CascadeEntry has no field 'acc'"): audit_doc(data)

def test_a_cascade_that_does_not_chain_is_refused():
    with pytest.raises(ValueError, match=r"APGD-CE/linf: broken \[4\] of attacked \[3\]"):
        made_result(**{'APGD-CE/linf': cascade([-1, 1, -1, -1], 3, 4)})
    with pytest.raises(ValueError, match=r"FAB-T/linf: attacked \[3\], but the attack before it left \[2\]"):
        made_result(**{'FAB-T/linf': cascade([-1, -1, 1, -1], 3, 1)})
    with pytest.raises(ValueError, match='APGD-CE/linf: broken \\[2\\] disagrees with first_broken'):
        made_result(**{'APGD-CE/linf': cascade([-1, 1, -1, -1], 3, 2)})

def test_an_entry_of_the_earlier_format_is_restated_as_counts():
    old = dict(kind='white', norm='linf', eps=[0.0, 0.15], acc=[1.0, 0.75], n=4, first_broken=[-1, 1, -1, -1],
               attacked=[3], cascade=True, config={})
    new = restated_entry(old, clean=1.0)
    assert list(new) == ['kind', 'norm', 'eps', 'n', 'first_broken', 'attacked', 'broken_among_attacked', 'cascade',
                         'config'] and new['broken_among_attacked'] == [1]
    assert restated_entry(new, clean=1.0) == new
    with pytest.raises(ValueError, match='not whole counts'): restated_entry(dict(old, acc=[1.0, 0.7]), 1.0)
    with pytest.raises(ValueError, match='is not clean'): restated_entry(old, 0.5, 'APGD-CE/linf')


def earlier(r: ModelResult) -> dict:
    "Model result `r` as JSON data in the earlier format: each AutoAttack entry with an `acc` for its counts."
    old = to_plain(r)
    for e in old['attacks'].values():
        if e.get('cascade'): e['acc'] = [r.clean] + [1 - v / e['n'] for v in e.pop('broken_among_attacked')]
    return old

def restate(r: dict) -> dict: return {k: restated_entry(e, r['clean'], k) for k, e in r['attacks'].items()}

def test_a_result_of_the_earlier_format_restated_is_the_stored_one():
    "Moved from notebook 17: written back in the earlier format and restated, a model's result is the same."
    new = to_plain(made_result())
    old = earlier(made_result())
    assert restate(old) == new['attacks']
    assert list(restate(old)['Square/linf']) == list(new['attacks']['Square/linf'])   # in the same key order
    assert restate(new) == new['attacks']   # the stored format is left as it is
    def damaged(f, restated=False):
        d = copy.deepcopy(old); f(d['attacks'])
        if not restated: return lambda: restate(d)
        return lambda: restate_cascade(model_result(dict(d, attacks=restate(d), checks={}, worst_case={}, seconds=0.0)))
    def unbreak(fb): fb[fb.index(1)] = -1   # an image the attack broke, marked as never broken
    for f, restated, msg in [(lambda A: A['Square/linf']['acc'].__setitem__(1, 0.75 + 1e-4), False, 'not whole counts'),
                             (lambda A: A['APGD-CE/linf']['acc'].__setitem__(0, 0.9), False, 'is not clean'),
                             (lambda A: A['APGD-CE/linf']['attacked'].__setitem__(0, 0), True, r'broken \[1\] of attacked'),
                             (lambda A: unbreak(A['APGD-CE/linf']['first_broken']), True, 'disagrees with first_broken'),
                             (lambda A: A['FAB-T/linf']['attacked'].__setitem__(0, 5), True, 'the attack before it left')]:
        with pytest.raises(ValueError, match=msg): damaged(f, restated)()

MADE_UP = dict(dataset='mnist', profile='made-up', seed=0, audit_config={}, attack_config={},
               images=dict(test_subset=dict(n=1, seed=0), positions=[0], hsj_positions=None, held_out=dict(n=1, seed=1)),
               reproduction=dict(path='', git_commit=None), environment={}, seconds={}, total_seconds=0.0, compression={})

def test_rederive_audit_restates_an_earlier_file_once(tmp_path):
    "Moved from notebook 17: an audit file of the earlier format is rewritten once, in the stored format."
    r = made_result()
    old = earlier(r) | dict(worst_case=to_plain(worst_cases(r, ONE)))   # the worst case with the cascade's 'accuracies'
    assert old['worst_case']['linf 0.15']['single']['Square/linf'] == 1.0   # Square broke none of what it was given
    p = tmp_path / 'mnist_audit.json'
    p.write_text(json.dumps(MADE_UP | dict(results={'toy': old}), indent=1))
    assert rederive_audit(p)
    d = json.loads(p.read_text())
    assert (d['results']['toy']['attacks'], d['restated']) == (to_plain(r)['attacks'], RESTATED)
    assert d['results']['toy']['worst_case']['linf 0.15']['single']['Square/linf'] is None
    text = p.read_text()
    assert (rederive_audit(p), p.read_text()) == (False, text)   # a second call changes nothing

@pytest.mark.slow
def test_rederive_audit_leaves_the_committed_audits_as_they_are(tmp_path):
    "Their own FGSM and PGD entries have an `acc` too: only AutoAttack's (`cascade`) are restated."
    for f in sorted((ROOT / 'results').glob('*/*_audit.json')):
        q = tmp_path / f.name; q.write_text(f.read_text())
        assert (rederive_audit(q), q.read_text()) == (False, f.read_text()), f

RESTATED_AUDITS = ['paper/mnist', 'paper-lite/mnist', 'paper-lite/fashion_mnist']   # made before the stored format

@pytest.mark.slow
def test_the_committed_audits_hold_autoattack_as_counts():
    """Moved from notebook 17: every AutoAttack entry of a committed audit passes `restate_cascade`'s checks with nothing
    left to change; its worst case leaves at most what AutoAttack's last attack left, and gives its attacks no accuracy."""
    with_aa = []
    for p in sorted((ROOT / 'results').glob('*/*_audit.json')):
        doc = audit_doc(json.loads(p.read_text()))
        name = f'{p.parent.name}/{p.name[:-len("_audit.json")]}'
        for m, r in doc.results.items():
            cascade = {k: e for k, e in r.attacks.items() if isinstance(e, CascadeEntry)}
            if not cascade: continue
            with_aa.append((name, m))
            assert restate_cascade(r) == r
            for key, w in r.worst_case.items():
                norm = key.split()[0]
                sq = cascade[attack_key('Square', norm)]; i = sq.eps.index(w.eps) - 1
                assert w.k <= sq.attacked[i] - sq.broken_among_attacked[i], (p, m, key)
                assert all(w.single[k] is None for k in cascade if k.endswith(norm))
                assert attack_key('APGD-CE', norm) in w.only
        if name in RESTATED_AUDITS: assert doc.restated == RESTATED, p
    assert {n for n, _ in with_aa} >= set(RESTATED_AUDITS)
    assert all(sum(n == a for n, _ in with_aa) == 6 for a in RESTATED_AUDITS)   # the six models of each


@pytest.fixture(scope='module')
def cnn(tmp_path_factory):
    "A smoke CNN (a few seconds) and its audit by notebook 09's own attacks on 20 images: an audit without AutoAttack."
    tmp = tmp_path_factory.mktemp('autoattack')
    run = Run('mnist', 'smoke', 0, tmp / 'runs', tmp / 'results')
    fit(run, 'CNN', progress=False)
    acfg = replace(run.profile.audit, n_hsj=0)
    images = Images(Subset(100, 0), list(range(0, 100, 5)), None, Subset(100, 1))
    res = audit_model(load_model(run, 'CNN')[0], *attacked_images('mnist', images), acfg, log=lambda *a: None)
    base = AuditDoc(dataset='mnist', profile='smoke', seed=0, audit_config=plain(acfg), attack_config={}, images=images,
                    reproduction=Source('', None), environment={}, results={'CNN': res}, seconds={'CNN': res.seconds},
                    total_seconds=1.0, compression={})
    return run, acfg, base

def here(run, tmp_path) -> Run:
    "`run` with its checkpoints copied under `tmp_path`, its results there."
    shutil.copytree(run.runs, tmp_path / 'runs')
    return Run(run.dataset, run.profile, run.seed, tmp_path / 'runs', tmp_path / 'results')

class Log(list):
    "The messages of one call; `resumed`: whether it took a stage from the store."
    def __call__(self, *a): self.append(' '.join(map(str, a)))
    @property
    def resumed(self): return any('resumed' in m for m in self)

def retrain(run, model):
    "The checkpoint of `model` rewritten with other bytes (a key more), as a retrained one would be."
    ck = torch.load(run.checkpoint(model), weights_only=True)
    torch.save(dict(ck, note='retrained'), run.checkpoint(model))


@pytest.mark.slow
def test_extending_an_audit_takes_only_its_own_stages(cnn, tmp_path):
    "AutoAttack at the smoke budgets, six times on 20 images (about 20 s)."
    run0, acfg, base = cnn
    run = here(run0, tmp_path)
    ap = run.result('audit')
    def go(audit=base, **kw):   # add AutoAttack to a fresh copy of `audit` on disk
        write_json(ap, audit); log = Log()
        return add_autoattack(run, log=log, **kw), log

    doc1, log = go()
    assert not log.resumed and (run.stages('autoattack') / 'CNN.json').exists()
    want = asdict(audit_autoattack_config(acfg))   # cfg=None: the audit's own (smoke) budgets
    assert (doc1.autoattack_config, want['apgd_iter'], want['square_queries']) == (want, 5, 50)
    r = doc1.results['CNN']
    assert [r.attacks[f'{a}/linf'].config for a in AUTOATTACK] == [want] * 4
    for a in AUTOATTACK:   # stored as counts of survivors, with no accuracy of their own, in the file as returned
        e = r.attacks[f'{a}/linf']
        assert isinstance(e, CascadeEntry) and len(e.broken_among_attacked) == len(e.attacked) == len(acfg.linf_eps)
        assert all(w.single[f'{a}/linf'] is None for k, w in r.worst_case.items() if k.startswith('linf'))
    assert json.loads(ap.read_text()) == to_plain(doc1) and audit_doc(json.loads(ap.read_text())) == doc1
    assert doc1.seconds['CNN AutoAttack'] > 0 and ap.with_suffix('.md').exists()
    left = survivors(base.results['CNN'], 'linf', acfg.linf_eps)   # the first attacks what the audit's left
    assert r.attacks['APGD-CE/linf'].attacked == left.sum(1).tolist()
    aa = {k: v for k, v in r.attacks.items() if isinstance(v, CascadeEntry)}

    again, log = go(doc1)   # the extended audit already holds AutoAttack: nothing is attacked, nothing taken
    assert any('AutoAttack already in the audit' in m for m in log) and not log.resumed
    assert again.results['CNN'].attacks == r.attacks
    again, log = go()        # the audit without it, again: the same images are attacked, the stage is taken
    assert log.resumed and again.results['CNN'].attacks == r.attacks
    again, log = go(doc1, force=True)   # forced on the extended audit: AutoAttack attacks what the audit's own
    assert again.results['CNN'].attacks['APGD-CE/linf'].attacked == left.sum(1).tolist()   # attacks left

    stage = run.stages('autoattack') / 'CNN.json'
    def plant():   # mark the stage's entries (in their free-form config), to see whether they are taken
        rec = json.loads(stage.read_text())
        rec['value'] = {k: dict(e, config=dict(e['config'], marker=True)) for k, e in rec['value'].items()}
        stage.write_text(json.dumps(rec))
    marked = lambda doc: [e.config.get('marker', False) for k, e in doc.results['CNN'].attacks.items() if k in aa]
    plant(); doc, log = go()   # killed after the stage, before the audit was rewritten: taken as it is
    assert log.resumed and all(marked(doc))

    other = copy.deepcopy(base); res = other.results['CNN']   # the audit's attacks left image 0 at 0.15 or not
    alive = survivors(res, 'linf', acfg.linf_eps)[0, 0]
    for e in res.attacks.values():   # its own FGSM and PGD, on the grid (no HopSkipJump, no transfer)
        if e.norm == 'linf': e.first_broken[0] = 0 if alive else -1
    assert survivors(res, 'linf', acfg.linf_eps)[0, 0] != alive
    doc, log = go(other)   # other survivors: attacked again
    assert not log.resumed and not any(marked(doc))

    doc, log = go(cfg=replace(audit_autoattack_config(acfg), square_queries=60))   # other budgets
    assert not log.resumed and doc.autoattack_config['square_queries'] == 60
    doc3, log = go()   # the stage is of other budgets: computed again, the same seeded attacks, the same result
    assert not log.resumed
    assert {k: doc3.results['CNN'].attacks[k].first_broken for k in aa} == {k: v.first_broken for k, v in aa.items()}

    plant(); doc, log = go(force=True)
    assert not log.resumed and not any(marked(doc))
    plant(); retrain(run, 'CNN'); doc, log = go()   # another checkpoint
    assert not log.resumed and not any(marked(doc))

    two = replace(base, results=base.results | {'C-DV': base.results['CNN']})   # no C-DV checkpoint
    doc, log = go(two, models=['CNN'])
    assert log.resumed and to_plain(doc.results['C-DV']) == to_plain(base.results['CNN'])


@pytest.mark.slow
def test_square_takes_its_stages(cnn, tmp_path):
    "Square at 20 queries on 30 images of a copy of a committed reproduction, for the smoke CNN (a few seconds)."
    run = here(cnn[0], tmp_path)
    repro = json.loads((ROOT / 'results' / 'paper-lite' / 'mnist.json').read_text())
    repro['attack_config']['n_test'] = 30
    for m in TARGETS: repro['results'][m].pop('Square/query', None)   # a reproduction without Square
    fresh = lambda: run.result().write_text(json.dumps(repro, indent=1))
    run.result().parent.mkdir(parents=True); fresh()
    cfg = AutoAttackConfig(square_queries=20, batch_size=30)
    def go(**kw):
        log = Log(); return add_square(run, cfg, models=['CNN'], log=log, **kw), log
    doc1, log = go()
    e = doc1['results']['CNN']['Square/query']
    assert not log.resumed and (e['n'], e['config'], len(e['queries'])) == (30, asdict(cfg), 2)
    assert json.loads(run.result().read_text()) == doc1 and run.result().with_suffix('.md').exists()
    assert all(doc1['results'][m] == repro['results'][m] for m in TARGETS if m != 'CNN')   # the others as they were
    assert doc1['seconds']['CNN Square'] > 0
    doc, log = go()             # Square is in the reproduction now: nothing attacked, nothing taken
    assert any('Square already in the reproduction' in m for m in log) and not log.resumed and doc == doc1
    fresh(); doc, log = go()    # the reproduction without it again: the stage is taken
    assert log.resumed and doc['results']['CNN']['Square/query'] == e
    doc, log = go(force=True)   # computed again: the same seeded attack, the same entry
    assert not log.resumed and doc['results']['CNN']['Square/query'] == e
    fresh(); retrain(run, 'CNN'); doc, log = go()
    assert not log.resumed


@pytest.mark.slow
def test_no_attack_breaks_beyond_the_boundary_at_standard_budgets():
    "Notebook 17 checks this at a tenth of the budgets; here at the standard ones (about 30 s)."
    torch.manual_seed(0)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    W, b = lin[1].weight.detach(), lin[1].bias.detach()
    xs = (0.5 + 0.02 * torch.randn(24, 1, 8, 8)).clamp(0, 1)
    ys = lin(xs).argmax(1)
    cfg = AutoAttackConfig(batch_size=12)
    assert (cfg.apgd_iter, cfg.fab_iter, cfg.square_queries) == (100, 100, 5000)
    for norm in ('linf', 'l2'):
        d = boundary_distance(W, b, xs, ys, norm)
        e = float(d.median())
        for name in AUTOATTACK:
            below, _ = attack_broken(name, lin, xs, ys, norm, e, cfg)
            assert not below[(d > e / 0.95).numpy()].any(), (norm, name)

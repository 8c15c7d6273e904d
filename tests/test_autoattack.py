"""AutoAttack's machinery (notebook 17): the command's error paths; extending an audit on disk (its own budgets, the
stored format, resuming a partial file only of the same audit and budgets); no attack breaking an image beyond its
boundary distance at the standard budgets."""
import contextlib, io, json
from dataclasses import asdict, replace
from pathlib import Path
import numpy as np
import pytest
import torch
import torch.nn as nn
from guessfirst_nb.audit import _json_safe, audit_model
from guessfirst_nb.run import Run
from guessfirst_nb.autoattack import (AUTOATTACK, AutoAttackConfig, add_autoattack, attack_broken,
                                      audit_autoattack_config, boundary_distance, main)
from guessfirst_nb.data import load
from guessfirst_nb.io import atomic_write_text
from guessfirst_nb.profiles import get_profile
from guessfirst_nb.train import fit, load_model


def test_command_errors_are_one_line(tmp_path):
    err = io.StringIO()
    with contextlib.redirect_stderr(err): assert main(['--dataset', 'svhn']) == 2
    assert 'unknown dataset' in err.getvalue() and 'Traceback' not in err.getvalue()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(['--dataset', 'mnist', '--profile', 'smoke', '--out', str(tmp_path), '--into', 'audit']) == 1
    assert 'no audit at' in err.getvalue() and 'guessfirst-audit' in err.getvalue()
    assert 'Traceback' not in err.getvalue()


@pytest.mark.slow
def test_extending_an_audit_resumes_only_its_own_progress(tmp_path):
    "A smoke CNN, audited on 20 images and written to disk, then extended with AutoAttack (about 15 s)."
    fit(Run('mnist', 'smoke', 0, tmp_path / 'runs'), 'CNN', progress=False)
    acfg = replace(get_profile('smoke').audit, n_hsj=0)
    pos = list(range(0, 100, 5))
    te = load('mnist', 'test').subset(100, seed=0)
    cnn = load_model(Run('mnist', 'smoke', 0, tmp_path / 'runs'), 'CNN')[0]
    res = audit_model(cnn, te.images()[pos], te.y[pos], acfg, log=lambda *a: None)
    base = dict(dataset='mnist', profile='smoke', seed=0, audit_config=asdict(acfg),
                images=dict(test_subset=dict(n=100, seed=0), positions=pos), results={'CNN': res},
                seconds={'CNN': res['seconds']}, total_seconds=1.0)
    ap = Run('mnist', 'smoke', out=tmp_path / 'results').result('audit'); ap.parent.mkdir(parents=True)
    def fresh_audit(): atomic_write_text(ap, json.dumps(_json_safe(base)))
    def run(**kw):
        return add_autoattack(Run('mnist', 'smoke', runs=tmp_path / 'runs', out=tmp_path / 'results'), log=lambda *a: None, **kw)

    fresh_audit(); doc1 = run()
    want = asdict(audit_autoattack_config(acfg))   # cfg=None: the audit's own (smoke) budgets
    assert (doc1['autoattack_config'], want['apgd_iter'], want['square_queries']) == (want, 5, 50)
    r = doc1['results']['CNN']
    assert [r['attacks'][f'{a}/linf']['config'] for a in AUTOATTACK] == [want] * 4
    for a in AUTOATTACK:   # stored as counts of survivors, with no accuracy of their own, in the file as returned
        e = r['attacks'][f'{a}/linf']
        assert 'acc' not in e and len(e['broken_among_attacked']) == len(e['attacked']) == len(acfg.linf_eps)
        assert all(w['single'][f'{a}/linf'] is None for k, w in r['worst_case'].items() if k.startswith('linf'))
    assert json.loads(ap.read_text())['results']['CNN']['attacks'] == json.loads(json.dumps(r['attacks']))
    partial = ap.with_name(ap.stem + '.autoattack.partial.json')
    assert not partial.exists()

    aa = {k: v for k, v in r['attacks'].items() if k.split('/')[0] in AUTOATTACK}
    marked = {k: dict(v, marker=True) for k, v in aa.items()}
    audit_id = dict(audit_config=base['audit_config'], images=base['images'], total_seconds=1.0)
    def left_behind(audit, config=want):   # what a killed run of `audit` at budgets `config` leaves after the CNN
        atomic_write_text(partial, json.dumps(_json_safe(dict(key=dict(config=config, audit=audit),
                                                              entries={'CNN': marked}, seconds={'CNN': 0.0}))))
    fresh_audit(); left_behind(audit_id)
    assert all(e.get('marker') for k, e in run()['results']['CNN']['attacks'].items() if k in aa)   # resumed
    fresh_audit(); left_behind(dict(audit_id, total_seconds=2.0))    # another audit's progress: started afresh
    doc3 = run()
    assert not any(e.get('marker') for e in doc3['results']['CNN']['attacks'].values())
    fresh_audit(); left_behind(audit_id, dict(want, square_queries=60))   # this audit, other budgets: started afresh
    assert not any(e.get('marker') for e in run()['results']['CNN']['attacks'].values())
    # recomputed: the same seeded attacks, the same result
    assert {k: doc3['results']['CNN']['attacks'][k]['first_broken'] for k in aa} == \
        {k: v['first_broken'] for k, v in aa.items()}
    msgs = []
    add_autoattack(Run('mnist', 'smoke', runs=tmp_path / 'runs', out=tmp_path / 'results'), log=msgs.append)
    assert any('already in the audit' in m for m in msgs), msgs


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

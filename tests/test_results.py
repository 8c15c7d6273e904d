"""The results table's readers refuse what is not a measurement (notebook 14): a row with an unknown mode or norm, a
count outside its images, a curve whose eps-0 point is not the clean count, an accuracy that is not a whole count, a
cell or substitute a reader does not know, a document under another run's name; and a whole table written, read back
and rebuilt in a temporary folder gives the same text. The documents are the notebook's hand-made ones."""
import copy, json
from pathlib import Path
import pytest
from conftest import ROOT
from guessfirst_nb.results import (build_table, csv_text, make_row, read_table, rows_from_audit, rows_from_forensics,
                                   rows_from_reproduction, rows_from_stability, rows_from_substitutes, table_frame,
                                   write_table)
from guessfirst_nb.audit import audit_doc
from guessfirst_nb.forensics import Forensics
from guessfirst_nb.reproduce import reproduction
from guessfirst_nb.stability import StabilityDoc
from guessfirst_nb.store import typed
from guessfirst_nb.substitutes import Substitutes

_d = dict(dataset='mnist', profile='smoke', seed=1)
repro_rows = lambda d, source='s': rows_from_reproduction(reproduction(d), source)   # JSON data, typed (notebook 08)
_curve = lambda eps, acc: dict(eps=eps, acc=acc, n=4, first_broken=[-1] * 4)
_repro = dict(dataset='mnist', profile='smoke', seed=1, train_profile=dict(epochs=2),
              substitute=dict(name='LeNet5', clean=0.75),
              results={'CNN': {'clean': 0.75,
                               'FGSM/white': _curve([0, 0.15, 0.3], [0.75, 0.25, 0.0]),
                               'FGSM/black': _curve([0, 0.15, 0.3], [0.75, 0.5, 0.25]),
                               'CW/white': _curve([0, 2.0], [0.75, 0.0])}})

audit_rows = lambda d, source='s', **kw: rows_from_audit(audit_doc(d), source, **kw)   # JSON data, typed (notebook 09)
_grid = lambda eps, acc, norm: dict(eps=eps, seconds=1.0, norm=norm, loss='ce', steps=1, restarts=1, kind='white',
                                    acc=acc, n=4, first_broken=[-1] * 4)
_worst = lambda eps, acc, k, n, single, **kw: dict(eps=eps, acc=acc, k=k, n=n, lo=0.0, hi=1.0, single=single, only={},
                                                   **kw)
_audit = dict(dataset='mnist', profile='smoke', seed=0, audit_config={}, attack_config={}, environment={}, seconds={},
              images=dict(test_subset=dict(n=4, seed=0), positions=[0, 1, 2, 3], hsj_positions=[1, 3],
                          held_out=dict(n=4, seed=1)),
              reproduction=dict(path='smoke/mnist.json', git_commit=None), total_seconds=1.0, compression={},
              results={'C-JS': dict(n=4, clean=0.75, checks={}, seconds=1.0, attacks={
    'PGD-margin/linf': _grid([0, 0.15, 0.3], [0.75, 0.5, 0.25], 'linf'),
    'PGD-ce/l2': _grid([0, 2.0], [0.75, 0.5], 'l2'),
    'HSJ/linf': dict(dist=[0.1, None], index=[1, 3], norm='linf', seconds=1.0, steps=1, init_evals=1, max_evals=1,
                     no_start=0, kind='decision'),
    'repro PGD/linf': dict(eps=[0, 0.15, 0.3], first_broken=[1, 2, -1, 0], norm='linf', kind='white')},
    worst_case={'linf 0.3': _worst(0.3, 0.25, 1, 4, {'PGD-margin/linf': 0.25},
                                   hsj_subset=_worst(0.3, 0.5, 1, 2, {'HSJ/linf': 0.5}),
                                   hsj_subset_without_hsj=_worst(0.3, 1.0, 2, 2, {})),
                'l2 2': _worst(2.0, 0.5, 2, 4, {})})})

_raw = dict(dataset='fashion_mnist', profile='smoke', seed=2, config={}, attack_config={}, n=4, n_white=2,
            substitute={'1': dict(epoch=1, clean=0.5, seconds=1.0), '2': dict(epoch=2, clean=0.75, seconds=1.0)},
            curves={'C-DV': [dict(epoch=2, clean=1.0, grad_norm_f32_zero=0.0, seconds=1.0,
                                  black={'1': {'FGSM 0.15': 0.75, 'CW 2': 0.5}, '2': {'FGSM 0.15': 0.5}},
                                  white={'ce 0.15': 0.5, 'margin 0.15': 1.0, 'worst 0.15': 0.5})]},
            environment={}, total_seconds=1.0)

_foren = dict(dataset='mnist', profile='paper', seed=0, n=4, models=['C-JS', 'CNN', 'C-DV'], attack_config={},
              environment={}, seconds={}, rows=[], variants={
    'output layer': {'FGSM/white 0.15': {'C-JS': dict(correct=1, n=4), 'CNN': dict(correct=0, n=4)},
                     'CW/white 2': {'C-JS': dict(correct=2, n=4)}},
    'substitute 10 epochs + foolbox 2 search': {'PGD/black 0.3': {'C-DV': dict(correct=3, n=4)}},
    'C&W kappa 20': {'CW/black 2': {'C-DV': dict(correct=4, n=4)}}})

subs_rows = lambda d, source='s.json', **kw: rows_from_substitutes(typed(Substitutes, d), source, **kw)   # notebook 18
_subs = dict(dataset='mnist', profile='paper', seed=0, other_seed=1, n=4, attack_config={}, images=dict(n=4, seed=0),
             sources=['LeNet5', 'CNN seed 1', 'CNN'], seconds={}, broken={}, results={'C-JS': {'PGD 0.15': dict(
    n=4, correct={'LeNet5': 3, 'CNN seed 1': 2, 'CNN': 2}, min=dict(source='CNN seed 1', correct=2),
    worst=dict(correct=1, ci=[0.0, 1.0]), best_target=None, worst_all=dict(correct=0, ci=[0.0, 1.0]))}})


def fails(f, contains):
    with pytest.raises(Exception) as e: f()
    assert contains in str(e.value), str(e.value)


def test_make_row_refuses_bad_rows():
    fails(lambda: make_row(_d, 's', 2, 'CNN', 'black', 1, 4, 'FGSM', 'linf', 0.15), 'unknown mode')
    fails(lambda: make_row(dict(_d, seed='1'), 'x.json', 2, 'CNN', 'clean', 1, 4), 'x.json.seed: expected int')
    fails(lambda: make_row(_d, 's', 2, 'CNN', 'white', 5, 4, 'FGSM', 'linf', 0.15), '5 correct of 4')
    fails(lambda: make_row(_d, 's', 2, 'CNN', 'white', 1, 4, 'FGSM', 'l1', 0.15), 'unknown norm')
    fails(lambda: make_row(_d, 's', 2, 'CNN', 'white', 1, 4, 'FGSM', '', 0.15), 'have a norm')


def test_reproduction_refuses_bad_curves():
    assert len(repro_rows(_repro)) == 7
    bad = copy.deepcopy(_repro); bad['results']['CNN']['FGSM/black']['acc'][0] = 0.5
    fails(lambda: repro_rows(bad, 's'), 'at eps 0: 2 correct, clean 3')
    bad = copy.deepcopy(_repro); bad['results']['CNN']['FGSM/white']['acc'][1] = 0.3
    fails(lambda: repro_rows(bad, 's'), 'not a whole count')
    bad = copy.deepcopy(_repro); bad['results']['CNN']['CW/white']['n'] = 5
    fails(lambda: repro_rows(bad, 's'), 'different image counts')
    bad = copy.deepcopy(_repro); bad['results']['CNN']['HSJ/white'] = bad['results']['CNN']['CW/white']
    fails(lambda: repro_rows(bad, 's'), "unknown entry 'HSJ/white'")


def test_audit_refuses_bad_worst_cases():
    assert len(audit_rows(_audit)) == 9
    bad = copy.deepcopy(_audit); bad['results']['C-JS']['worst_case']['l2 2']['k'] = 3
    fails(lambda: audit_rows(bad), 'l2 2 all: accuracy 0.5 is not 3/4')
    bad = copy.deepcopy(_audit); bad['results']['C-JS']['attacks']['HSJ/linf']['index'] = [1]
    fails(lambda: audit_rows(bad), 'ran on 1 images, its subset has 2')


def test_stability_refuses_unknown_cells():
    def bad(change):
        "`_raw` changed in place by `change`, typed."
        d = copy.deepcopy(_raw); change(d); return typed(StabilityDoc, d)
    assert len(rows_from_stability(typed(StabilityDoc, _raw), 's')) == 9
    fails(lambda: rows_from_stability(bad(lambda d: d['curves']['C-DV'][0]['black'].update({'3': {}})), 's'),
          "unknown substitute '3'")
    fails(lambda: rows_from_stability(bad(lambda d: d['curves']['C-DV'][0]['white'].update({'hsj 0.15': 0.5})), 's'),
          "unknown white-box cell 'hsj 0.15'")
    fails(lambda: rows_from_stability(bad(lambda d: d['substitute']['1'].update(epoch=3)), 's'),
          "substitute '1' is of epoch 3")
    fails(lambda: bad(lambda d: d['curves']['C-DV'][0].update(whte={})), "EpochRow has no field 'whte'")


def test_forensics_refuses_unknown_cells():
    only = lambda v: rows_from_forensics(typed(Forensics, dict(_foren, variants=v)), 's')
    assert len(only(_foren['variants'])) == 5
    fails(lambda: only({'v': {'HSJ/white 2': {}}}), "unknown cell 'HSJ/white 2'")
    fails(lambda: only({'v': {'FGSM/grey 2': {}}}), 'unknown cell')
    fails(lambda: only({'': {}}), 'without a name')


def test_substitutes_refuses_unknown_cells():
    assert len(subs_rows(_subs)) == 5
    _bad = dict(_subs, results={'C-JS': {'HSJ 0.15': _subs['results']['C-JS']['PGD 0.15']}})
    fails(lambda: subs_rows(_bad), "unknown transfer cell 'HSJ 0.15'")


def test_a_row_measured_twice_is_refused():
    rows = repro_rows(_repro, 'smoke/mnist_seed1.json')
    fails(lambda: table_frame(rows + rows[:1]), '2 rows measure the same thing')


def test_table_written_read_and_rebuilt(tmp_path):
    """A results folder with a reproduction (trained 7 epochs, not the profile's 200), a forensics file, a partial
    file and a test profile's file: the table holds the first two (the forensics rows with the reproduction's training
    length), reads back as the same text, and a file under another run's name is refused."""
    d = tmp_path; (d / 'paper').mkdir(); (d / 'quick').mkdir()
    rep = json.loads((ROOT / 'results/paper/mnist.json').read_text())
    (d / 'paper/mnist.json').write_text(json.dumps(dict(rep, train_profile=dict(rep['train_profile'], epochs=7))))
    (d / 'paper/mnist_forensics.json').write_text(json.dumps(_foren))
    (d / 'paper/mnist_audit.partial.json').write_text('{}')   # an interrupted run: skipped
    (d / 'quick/mnist.json').write_text('{}')                 # a test profile: skipped
    p = write_table(d)
    assert p == d / 'results.csv'
    t = read_table(p)
    assert sorted(set(t.source)) == ['paper/mnist.json', 'paper/mnist_forensics.json']
    assert set(t.train_epochs) == {7}                                  # the reproduction's training length, for all
    assert csv_text(t) == p.read_text()                                # read back, written again: the same text
    assert csv_text(build_table(d)) == p.read_text()
    (d / 'paper/mnist_forensics.json').rename(d / 'paper/mnist_seed3_forensics.json')
    fails(lambda: build_table(d), 'whose forensics file is paper/mnist_forensics.json')

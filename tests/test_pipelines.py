"""`write_pipelines` (notebook 19) on files: which forensics files it reads, what it writes and how it refuses damaged
or unmatched inputs. Built on a hand-made reproduction and forensics document, whose counts reach it as rows of the
results table (`results.build_table`); nothing is trained or attacked."""
import json
import pytest
from guessfirst_nb.models import TARGETS
from guessfirst_nb.run import Run
from guessfirst_nb.pipelines import write_pipelines

PAPER = {('mnist', 'clean', '', 0.0): dict.fromkeys(TARGETS, 99.0),
         ('mnist', 'CW', 'black', 2.0): dict.fromkeys(TARGETS, 70.0)}


def entry(acc): return dict(eps=[0, 2.0], acc=[0.99, acc], n=1000, first_broken=[-1] * 1000)


def repro(dataset='mnist', profile='paper', seed=0):
    return dict(dataset=dataset, profile=profile, seed=seed, train_profile=dict(epochs=200),
                results={m: {'clean': 0.99, 'FGSM/white': entry(0.5), 'CW/black': entry(0.98)} for m in TARGETS})


def foren(dataset='mnist', profile='paper', seed=0):
    return dict(dataset=dataset, profile=profile, seed=seed, n=1000, models=TARGETS, attack_config={'n_test': 1000},
                environment={}, seconds={}, rows=[],
                variants={'C&W kappa 0': {'CW/black 2': {m: dict(correct=700, n=1000) for m in TARGETS}}})


@pytest.fixture
def results(tmp_path):
    "A results folder with one reproduction and its forensics file (profile paper)."
    (tmp_path / 'paper').mkdir()
    (tmp_path / 'paper' / 'mnist.json').write_text(json.dumps(repro()))
    (tmp_path / 'paper' / 'mnist_forensics.json').write_text(json.dumps(foren()))
    return tmp_path


def test_writes_beside_each_forensics_file_and_nothing_else(results):
    (results / 'paper' / 'mnist_forensics.partial.json').write_text('{')   # an interrupted forensics run: skipped
    (results / 'paper-lite').mkdir()
    (results / 'paper-lite' / 'mnist_seed2.json').write_text(json.dumps(repro(profile='paper-lite', seed=2)))
    (results / 'paper-lite' / 'mnist_seed2_forensics.json').write_text(json.dumps(foren(profile='paper-lite', seed=2)))
    before = {p.relative_to(results) for p in results.rglob('*')}
    paths = write_pipelines(results, draws=200, paper=PAPER)
    assert paths == [results / 'paper/mnist_pipelines.json', results / 'paper/mnist_pipelines.md',
                     results / 'paper-lite/mnist_seed2_pipelines.json', results / 'paper-lite/mnist_seed2_pipelines.md']
    assert {p.relative_to(results) for p in results.rglob('*')} == before | {p.relative_to(results) for p in paths}
    doc = json.loads(Run('mnist', 'paper-lite', 2, out=results).result('pipelines').read_text())
    assert (doc['profile'], doc['seed'], doc['sources']) == ('paper-lite', 2, dict(
        forensics='paper-lite/mnist_seed2_forensics.json', reproduction='paper-lite/mnist_seed2.json'))
    assert doc['attack_config'] == {'n_test': 1000}   # carried from the forensics file (tests/test_profiles.py reads it)
    # C&W kappa 0 reaches the paper in all six transferred C&W cells; clean is reproduced
    assert (doc['grid']['best']['score']['explained'], doc['grid']['best']['score']['inside']) == (6, 12)


def test_rerun_gives_the_same_files(results):
    first = [p.read_bytes() for p in write_pipelines(results, draws=200, paper=PAPER)]
    assert [p.read_bytes() for p in write_pipelines(results, draws=200, paper=PAPER)] == first


def test_missing_reproduction_is_one_clear_error(results):
    (results / 'paper' / 'mnist.json').unlink()
    with pytest.raises(ValueError, match=r'mnist_forensics.json: no reproduction at .*paper/mnist.json; run '
                                         r'guessfirst-reproduce for it first'):
        write_pipelines(results, paper=PAPER)
    assert not Run('mnist', 'paper', out=results).result('pipelines').exists()


def test_damaged_forensics_file_is_one_clear_error(results):
    (results / 'paper' / 'mnist_forensics.json').write_text('{"dataset": "mn')
    with pytest.raises(ValueError, match=r'mnist_forensics.json: unreadable .*rerun guessfirst-forensics'):
        write_pipelines(results, paper=PAPER)
    assert not Run('mnist', 'paper', out=results).result('pipelines').exists()


def test_forensics_of_another_run_is_refused(results):
    (results / 'paper' / 'mnist.json').write_text(json.dumps(repro(seed=1)))   # a reproduction under the wrong name
    with pytest.raises(ValueError, match=r'paper/mnist\.json: its document says mnist, profile paper, seed 1'):
        write_pipelines(results, paper=PAPER)


def test_a_failed_write_leaves_the_old_file(results, monkeypatch):
    write_pipelines(results, draws=200, paper=PAPER)
    path = Run('mnist', 'paper', out=results).result('pipelines'); old = path.read_bytes()
    import os
    monkeypatch.setattr(os, 'replace', lambda *a: (_ for _ in ()).throw(OSError('disk full')))
    with pytest.raises(OSError, match='disk full'):
        write_pipelines(results, draws=100, paper=PAPER)
    assert path.read_bytes() == old and not list(results.glob('paper/.*.tmp'))


def test_forensics_file_of_another_schema_is_one_clear_error(results):
    doc = dict(foren(), rows=[dict(cell='CW/black 2', model='CNN', explained=True)])   # a row without its paper value
    (results / 'paper' / 'mnist_forensics.json').write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"mnist_forensics.json: unreadable \(document.rows\[0\]: \w+ lacks 'paper'"):
        write_pipelines(results, paper=PAPER)
    assert not Run('mnist', 'paper', out=results).result('pipelines').exists()


def test_counts_come_from_the_table_passed(results):
    "A table whose rows differ from the files is what the document reports: the counts are the table's records."
    from guessfirst_nb.results import build_table
    table = build_table(results)
    kappa0 = (table.variant == 'C&W kappa 0') & (table.model == 'CNN')
    assert kappa0.sum() == 1
    table.loc[kappa0, 'correct'] = 980   # the CNN's C&W under kappa 0 as ours: no longer inside the paper's 70.0
    write_pipelines(results, draws=200, paper=PAPER, table=table)
    doc = json.loads(Run('mnist', 'paper', out=results).result('pipelines').read_text())
    assert (doc['grid']['best']['score']['explained'], doc['grid']['best']['score']['inside']) == (5, 11)


# --- the committed files and the file's layout -------------------------------------------------------------------------
import re
from dataclasses import replace
from pathlib import Path
from guessfirst_nb.forensics import Forensics
from guessfirst_nb.pipelines import Pipelines, Sources, _dumps, evidence, pipelines_markdown, pipelines_report
from guessfirst_nb.results import build_table, read_table
from guessfirst_nb.store import typed

ROOT = Path(__file__).resolve().parent.parent
from conftest import committed, label
PIPELINES = committed('*/*_pipelines.json')


def test_the_committed_pipelines_are_found():
    "The test below is parametrized by a glob: an empty glob would skip it without a word. Both tables at 200 epochs."
    assert {'paper/mnist_pipelines.json', 'paper/fashion_mnist_pipelines.json'} <= set(map(label, PIPELINES))


@pytest.mark.parametrize('path', PIPELINES, ids=label)
def test_committed_pipelines_are_recomputed_byte_for_byte(path):
    "From the committed results table and the forensics file beside it: the JSON and its markdown, byte for byte."
    foren = typed(Forensics, json.loads(path.with_name(path.name.replace('_pipelines', '_forensics')).read_text()))
    doc = pipelines_report(read_table(ROOT / 'results' / 'results.csv'), foren)
    assert _dumps(doc) == path.read_text()
    assert pipelines_markdown(doc) + '\n' == path.with_suffix('.md').read_text()


def test_the_file_reads_back_exactly_and_keeps_lists_on_one_line(results):
    "typed reads back exactly what plain wrote; a grid row is one line; an unavailable pipeline has its `missing`."
    path = write_pipelines(results, draws=200, paper=PAPER)[0]
    text = path.read_text(); doc = typed(Pipelines, json.loads(text))
    assert _dumps(doc) == text
    assert '"missing"' in text and text.count('"score"') == 1 + 2   # one named available, the grid's best two
    assert json.dumps(doc.grid.rows[0]) in text and doc.grid.rows[0][:7] == [0, 0, 0, 0, 6, 0, 6]
    assert not re.search(r'\[\n\s*\d', text)   # no list of plain values spread over lines


def test_result_paths():
    assert Run('mnist', 'paper').result('pipelines') == Path('results/paper/mnist_pipelines.json')
    assert Run('fashion_mnist', 'paper-lite', 2, out='r').result('pipelines') == Path(
        'r/paper-lite/fashion_mnist_seed2_pipelines.json')


def test_evidence_refuses_a_stale_table(results):
    "A variant the table lacks, one the file does not name, or no rows of the reproduction: one error each."
    table, foren = build_table(results), typed(Forensics, json.loads((results / 'paper/mnist_forensics.json').read_text()))
    src, ours, variants = evidence(table, foren)
    assert src == Sources('paper/mnist_forensics.json', 'paper/mnist.json') and list(variants) == ['C&W kappa 0']
    with pytest.raises(ValueError, match='the table has other variants: rebuild it'):
        evidence(table, replace(foren, variants={}))
    with pytest.raises(ValueError, match='the table has other variants'):
        evidence(table, replace(foren, variants=dict(foren.variants, new={})))
    with pytest.raises(ValueError, match='no rows of paper/mnist_seed1.json in the table'):
        evidence(table, replace(foren, seed=1))


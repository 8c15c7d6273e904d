"""The claims' files (notebook 15): `write_claims` gives the committed results/claims.md byte for byte (and a
scoreboard), with the AutoAttack note where the audits count it; `autoattack_seeds` on hand-made audits."""
import json
import pytest
from conftest import ROOT
from guessfirst_nb.claims import autoattack_seeds, write_claims

AA4 = ['APGD-CE/linf', 'APGD-T/l2', 'FAB-T/linf', 'Square/linf']


def _audit(seed, attacks, *more) -> str:
    "An audit document of CNN (and C-JS) with these attack names."
    return json.dumps(dict(seed=seed, results={m: dict(attacks=dict.fromkeys(a))
                                               for m, a in zip(['CNN', 'C-JS'], (attacks, *more))}))


def test_autoattack_seeds(tmp_path):
    "A seed counts AutoAttack only when every model's audit has all four of its attacks; other datasets are not read."
    p = tmp_path / 'p'; p.mkdir()
    (p / 'mnist_audit.json').write_text(_audit(0, ['PGD-ce/linf', 'APGD-T/linf']))
    (p / 'mnist_seed1_audit.json').write_text(_audit(1, ['PGD-ce/linf', 'HSJ/l2']))
    (p / 'fashion_mnist_audit.json').write_text(_audit(0, ['PGD-ce/linf']))
    assert autoattack_seeds(tmp_path, 'mnist', 'p') == {0: False, 1: False}   # one of the four is not all of them
    (p / 'mnist_audit.json').write_text(_audit(0, ['PGD-ce/linf'] + AA4))
    assert autoattack_seeds(tmp_path, 'mnist', 'p') == {0: True, 1: False}
    (p / 'mnist_audit.json').write_text(_audit(0, AA4, ['PGD-ce/linf']))   # added to one model only
    assert autoattack_seeds(tmp_path, 'mnist', 'p')[0] is False
    assert autoattack_seeds(tmp_path, 'fashion_mnist', 'p') == {0: False}
    assert autoattack_seeds(ROOT / 'results', 'mnist', 'paper-lite')[0] is True


@pytest.mark.slow
def test_write_claims_gives_the_committed_file(tmp_path):
    md, png = write_claims(ROOT / 'results', out=tmp_path)
    assert md.read_bytes() == (ROOT / 'results/claims.md').read_bytes()
    assert png.stat().st_size > 10_000
    note = 'White-box "audit worst case": counts AutoAttack (APGD-CE, APGD-T, FAB-T, Square) for seed 0'
    assert md.read_text().split('## mnist, profile paper-lite: per seed')[1].split('##')[0].count(note) == 1

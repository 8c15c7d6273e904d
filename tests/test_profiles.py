"The files already written agree with the profiles: the committed results and the published weights."
import json
from dataclasses import asdict
from pathlib import Path
import pytest
import torch
from conftest import ROOT
from guessfirst_nb.profiles import PROFILES, get_profile

from guessfirst_nb.results import source_kind
# result files only: a partial file left by a killed run is not one
RESULTS = sorted(p for p in (ROOT / 'results').glob('*/*.json') if p.parent.name in PROFILES and source_kind(p.name))
WEIGHTS = sorted((ROOT / 'weights').glob('*/*/seed*/*.pt'))
# fields added to a part after some committed files were written (the files predate them, and the code reads them
# with the defaults, which reproduce what those runs did)
ADDED = {'audit_config': {'autoattack', 'aa_iter', 'aa_queries'}, 'config': {'epochs'}}

def _json(d): return json.loads(json.dumps(d))

def _parts(doc: dict, path: Path) -> dict:
    "{key in the file: what the code writes there now} for the profile parts this result file records."
    p = get_profile(doc['profile'])
    out = {'train_profile': p.train_record(), 'attack_config': asdict(p.attack), 'audit_config': asdict(p.audit)}
    if path.name.endswith('_stability.json'): out['config'] = asdict(p.stability)
    if path.name.endswith('_substitutes.json'):   # the reproduction's attacks restricted to Table 1's black-box cells
        from guessfirst_nb.substitutes import cell_config
        out['attack_config'] = asdict(cell_config(p.attack))
    return {k: _json(v) for k, v in out.items() if k in doc}

def test_there_are_committed_files_to_check():
    assert any(p.name == 'mnist.json' and p.parent.name == 'paper' for p in RESULTS), RESULTS
    assert len(WEIGHTS) >= 21, WEIGHTS

@pytest.mark.parametrize('path', RESULTS, ids=lambda p: f'{p.parent.name}/{p.name}')
def test_result_file_records_the_profile(path):
    doc = json.loads(path.read_text())
    parts = _parts(doc, path)
    assert 'attack_config' in parts, f'{path} records no attack_config'
    for key, now in parts.items():
        stored, added = doc[key], ADDED.get(key, set())
        assert set(stored) <= set(now), f'{path}: {key} has fields the code no longer knows: {set(stored) - set(now)}'
        assert set(now) - set(stored) <= added, f'{path}: {key} lacks {set(now) - set(stored) - added}'
        assert stored == {k: v for k, v in now.items() if k in stored}, f'{path}: {key} differs from the profile'

@pytest.mark.parametrize('path', WEIGHTS, ids=lambda p: str(p.relative_to(ROOT / 'weights')))
def test_published_checkpoint_records_the_profile(path):
    "Each checkpoint's config['profile'] is exactly what `fit` stores now, so resuming or re-checking it agrees."
    profile = path.parent.parent.name
    ck = torch.load(path, map_location='cpu', weights_only=True)
    assert ck['config']['profile'] == get_profile(profile).train_record()
    assert list(ck['config']['profile']) == ['name', 'n_train', 'epochs', 'n_test', 'batch_size', 'lr']

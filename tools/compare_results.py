#!/usr/bin/env python3
"""Compare the JSON result documents of two results folders, ignoring timing, environment, commit and path fields: how a
study run through two versions of the code is checked to give the same numbers. usage: python tools/compare_results.py A B"""
import json, sys, math
from pathlib import Path
IGNORE = {'environment', 'total_seconds', 'seconds', 'train_seconds', 'attack_seconds', 'git_commit', 'resumed',
          'commit', 'path', 'redone'}
def walk(a, b, where, out):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k in IGNORE: continue
            if k not in a or k not in b: out.append(f'{where}/{k}: only in {"B" if k not in a else "A"}'); continue
            walk(a[k], b[k], f'{where}/{k}', out)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b): out.append(f'{where}: lengths {len(a)} != {len(b)}'); return
        for i, (x, y) in enumerate(zip(a, b)): walk(x, y, f'{where}[{i}]', out)
    elif isinstance(a, float) and isinstance(b, float):
        if not (a == b or (math.isnan(a) and math.isnan(b))): out.append(f'{where}: {a} != {b}')
    elif a != b: out.append(f'{where}: {a!r} != {b!r}')
A, B = Path(sys.argv[1]), Path(sys.argv[2])
bad = 0
for fa in sorted(A.rglob('*.json')):
    fb = B / fa.relative_to(A)
    if not fb.exists(): print('MISSING in B:', fa.relative_to(A)); bad += 1; continue
    out = []; walk(json.loads(fa.read_text()), json.loads(fb.read_text()), '', out)
    print(f'{fa.relative_to(A)}: {"same" if not out else f"{len(out)} differences"}')
    for o in out[:10]: print('   ', o)
    bad += bool(out)
for fb in sorted(B.rglob('*.json')):
    if not (A / fb.relative_to(B)).exists(): print('EXTRA in B:', fb.relative_to(B))
sys.exit(1 if bad else 0)

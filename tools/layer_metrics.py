#!/usr/bin/env python3
"""The experiment layer's size and shape (issue 25): lines per module (non-blank, non-comment), the experiment/method
ratio (method = broadcast, objectives, mmd, fisher, models, train), string-key subscripts, keys built with f-strings
(f-keys: an f-string as a subscript, a dict literal's key, a dict comprehension's key, or the key of .get/.pop/
.setdefault), and import cycles (function-level imports included). usage: python tools/layer_metrics.py [ROOT]"""
import ast, pathlib, sys, io, tokenize
root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent) / 'guessfirst_nb'
METHOD = {'broadcast', 'objectives', 'mmd', 'fisher', 'models', 'train'}
SKIP = {'_modidx', '__init__'}
def lines(p):
    n = 0
    for l in p.read_text().splitlines():
        s = l.strip()
        if s and not s.startswith('#'): n += 1
    return n
m = e = 0; subs = fsubs = 0; rows = []
imports = {}
for p in sorted(root.glob('*.py')):
    if p.stem in SKIP: continue
    n = lines(p); rows.append((p.stem, n))
    if p.stem in METHOD: m += n
    else: e += n
    t = ast.parse(p.read_text())
    ns = nf = 0
    for node in ast.walk(t):
        if isinstance(node, ast.Subscript):
            s = node.slice
            if isinstance(s, ast.Constant) and isinstance(s.value, str): ns += 1
            elif isinstance(s, ast.JoinedStr): nf += 1
        elif isinstance(node, ast.Dict): nf += sum(isinstance(k, ast.JoinedStr) for k in node.keys)
        elif isinstance(node, ast.DictComp): nf += isinstance(node.key, ast.JoinedStr)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args
              and node.func.attr in ('get', 'pop', 'setdefault')): nf += isinstance(node.args[0], ast.JoinedStr)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            mod = getattr(node, 'module', None) or ''
            if node.__class__ is ast.ImportFrom and (node.level or mod.startswith('guessfirst_nb')):
                imports.setdefault(p.stem, set()).add(mod.split('.')[-1] if mod else '?')
    subs += ns; fsubs += nf
    rows[-1] += (ns, nf)
for r in rows: print(f'{r[0]:14s} {r[1]:5d}  str-subs {r[2]:4d}  f-keys {r[3]:3d}  {"M" if r[0] in METHOD else ""}')
print(f'method {m}  experiment {e}  ratio {e/m:.2f}  string subscripts {subs}  f-string keys {fsubs}')
# cycles
def reach(a, seen):
    for b in imports.get(a, ()):
        if b not in seen: seen.add(b); reach(b, seen)
    return seen
for a in imports:
    if a in reach(a, set()): print('CYCLE via', a)

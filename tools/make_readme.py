"""Render README.md from nbs/index.ipynb (nbdev_readme needs Quarto, which is not available everywhere).

Markdown cells are copied; code cells are shown as code blocks followed by their text outputs,
unless they carry `#| hide`; `#| echo: false` shows the outputs without the code. Run it with `make readme`."""
import json, re, sys
from pathlib import Path

def render(nb_path: Path) -> str:
    nb = json.loads(nb_path.read_text())
    out = []
    for c in nb['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'markdown': out.append(src); continue
        if re.search(r'^#\|\s*hide', src, re.M): continue
        code = '\n'.join(l for l in src.splitlines() if not l.startswith('#|')).strip()
        if code and not re.search(r'^#\|\s*echo:\s*false', src, re.M): out.append(f'```python\n{code}\n```')
        for o in c.get('outputs', []):
            text = ''.join(o.get('text', '')) or ''.join(o.get('data', {}).get('text/markdown', '')) or ''.join(o.get('data', {}).get('text/plain', ''))
            if text.strip(): out.append(text if 'text/markdown' in o.get('data', {}) else f'```\n{text.rstrip()}\n```')
    text = '\n\n'.join(out).replace('](../', '](')   # links relative to nbs/ become relative to the top folder
    return '<!-- generated from nbs/index.ipynb by `make readme`: edit the notebook, not this file -->\n\n' + text + '\n'

if __name__ == '__main__':
    root = Path(__file__).resolve().parent.parent
    text = render(root / 'nbs' / 'index.ipynb')
    if '--check' in sys.argv:
        sys.exit(0 if (root / 'README.md').read_text() == text else 'README.md is out of date: run `make readme`')
    (root / 'README.md').write_text(text)
    print('wrote README.md')

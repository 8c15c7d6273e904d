"""Render the notebooks, with their committed outputs, as a static HTML book that opens without Jupyter or a network.

nbdev's own `nbdev_docs` needs Quarto, which the package registries do not ship; this uses nbconvert's lab template
instead. One page per notebook (index.ipynb becomes index.html, with the list of chapters at its top), a bar of links
to the contents and the previous and next chapter on every page, `.ipynb` links turned into links to the pages,
markdown images embedded. Math is typeset by the MathJax 2 that the PyPI package `jupyter-server-mathjax` ships,
copied beside the pages: nothing is loaded from the network. As in `tools/make_readme.py`, cells with `#| hide` are
left out, `#| echo: false` shows the outputs without the code, and `#|` lines are not shown.

Run: `make book` (or .venv/bin/python tools/make_book.py [--out _book] [--nbs nbs]), then open _book/index.html.
Exit status 1, after writing every page, if a notebook holds an error output (it names them); 2 for a bad argument.
The screenshots in docs/ were taken with headless Chromium (Debian's `chromium`), with no network (the same pixels as
with one), and reduced to 256 colours with Pillow:
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
    --disable-component-update --disable-sync --host-resolver-rules='MAP * ~NOTFOUND' --user-data-dir=$(mktemp -d)
    --virtual-time-budget=10000 --window-size=1280,2000 --screenshot=index.png file://$PWD/_book/index.html
docs/book_fig3.png the same of a page holding only <iframe src="file://$PWD/_book/08_reproduce.html#Figure-3,-MNIST"
style="border:0;width:1280px;height:2000px"> (a screenshot of a page opened at an anchor comes out blank)."""
import argparse, base64, copy, html, mimetypes, os, re, shutil, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MATHJAX = 'mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe'

# nbconvert's lab template without what it would fetch from a CDN (require.js, widgets, mermaid), with a local MathJax
# and the book's navigation bar above and below each page
TEMPLATE = '''{%- extends 'index.html.j2' -%}
{% block html_head_js_requirejs %}{% endblock %}
{% block jupyter_widgets %}{% endblock %}
{% block html_head_js_mermaidjs %}{% endblock %}
{% block html_head_js_mathjax %}
<script type="text/x-mathjax-config">
MathJax.Hub.Config({tex2jax: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']],
                              displayMath: [['$$', '$$'], ['\\\\[', '\\\\]']],
                              processEscapes: true, processEnvironments: true},
                    TeX: {equationNumbers: {autoNumber: 'AMS', useLabelIds: true}},
                    'HTML-CSS': {availableFonts: [], preferredFont: null, webFont: 'STIX-Web', imageFont: null,
                                 linebreaks: {automatic: true}},
                    displayAlign: 'center', messageStyle: 'none', menuSettings: {zoom: 'None'}});
</script>
<script src="{{ resources.mathjax_url }}"></script>
<style>
.book-nav { font-family: system-ui, sans-serif; font-size: 14px; padding: 8px 16px; margin: 0 0 8px 0;
            border-bottom: 1px solid #ddd; display: flex; gap: 24px; background: #f7f7f7; }
.book-toc { font-family: system-ui, sans-serif; margin: 8px 16px 16px 16px; padding: 8px 16px; border: 1px solid #ddd; }
.book-toc ul { list-style: none; padding-left: 8px; } .book-toc li { margin: 2px 0; }
.book-nav a, .book-toc a { color: #0d47a1; text-decoration: none; }
</style>
{% endblock %}
{% block body_header %}{{ super() }}{{ resources.book_nav }}{{ resources.book_toc }}{% endblock %}
{% block body_footer %}{{ resources.book_nav }}{{ super() }}{% endblock %}
'''

def chapters(nbs: Path) -> list:
    "The notebooks of the book in reading order: index.ipynb first, then the chapters by file name."
    files = sorted(p for p in nbs.glob('*.ipynb') if not p.name.startswith('.'))
    return sorted(files, key=lambda p: p.name != 'index.ipynb')

def title(nb: dict, default: str) -> str:
    "The notebook's title: the first `# ` heading of its first markdown cell."
    for c in nb['cells']:
        if c['cell_type'] == 'markdown':
            m = re.search(r'^#\s+(.+)$', ''.join(c['source']), re.M)
            return m.group(1).strip() if m else default
    return default

def inline(text: str) -> str:
    "A title as HTML: escaped, with `code` spans."
    return re.sub(r'`([^`]+)`', r'<code>\1</code>', html.escape(text))

def for_reader(nb):
    """The notebook as the book shows it: without `#| hide` cells, `#|` lines (nor cells of nothing else), or the code
    of `#| echo: false` cells."""
    nb = copy.deepcopy(nb); cells = []
    for c in nb.cells:
        if c.cell_type == 'code':
            if re.search(r'^#\|\s*hide\s*$', c.source, re.M): continue
            if re.search(r'^#\|\s*echo:\s*false', c.source, re.M): c.metadata['transient'] = {'remove_source': True}
            c.source = '\n'.join(l for l in c.source.splitlines() if not l.startswith('#|')).strip('\n')
            if not c.source.strip() and not c.outputs: continue   # a cell of directives alone (`#| default_exp`)
        cells.append(c)
    nb.cells = cells
    return nb

def embed_images(body: str, folder: Path) -> str:
    """`body` with each <img> whose source is an image file relative to `folder` (`../results/x.png` too, which
    nbconvert's own `embed_images` refuses) embedded as data."""
    def data(m):
        f = folder / html.unescape(m.group(2)); kind = mimetypes.guess_type(f.name)[0] or ''
        if not (kind.startswith('image/') and f.is_file()): return m.group(0)
        return f'{m.group(1)}data:{kind};base64,{base64.b64encode(f.read_bytes()).decode()}{m.group(3)}'
    return re.sub(r'(<img\b[^>]*?\bsrc=")(?!data:|https?:)([^"]+)(")', data, body)

def error_outputs(nb: dict) -> list:
    "The indices of the code cells that hold an error output."
    return [i for i, c in enumerate(nb['cells']) if any(o.get('output_type') == 'error' for o in c.get('outputs', []))]

def nav(pages: list, i: int) -> str:
    "The bar of links: the contents, and the previous and next pages."
    links = ['<a href="index.html">Contents</a>']
    if i > 0: links.append(f'<a href="{pages[i - 1][0]}">&larr; {inline(pages[i - 1][1])}</a>')
    if i + 1 < len(pages): links.append(f'<a href="{pages[i + 1][0]}">{inline(pages[i + 1][1])} &rarr;</a>')
    return f'<nav class="book-nav">{" ".join(links)}</nav>'

def toc(pages: list) -> str:
    "The list of chapters, in order, with their titles."
    items = ''.join(f'<li><a href="{p}">{html.escape(n.split("_")[0])} {inline(t)}</a></li>' for p, t, n in pages[1:])
    return f'<div class="book-toc"><strong>Chapters</strong><ul>{items}</ul></div>'

def build(out=ROOT / '_book', nbs=ROOT / 'nbs') -> list:
    """Write the book into `out`: one page per notebook of `nbs`, index.html first, and MathJax beside them. Returns one
    line per notebook that holds an error output (the pages are written all the same)."""
    import nbformat, jinja2
    from nbconvert import HTMLExporter
    from guessfirst_nb.io import atomic_write_text
    try: import jupyter_server_mathjax
    except ImportError:
        raise SystemExit('error: jupyter-server-mathjax (MathJax for the book) is not installed; run make setup')
    out, nbs = Path(out), Path(nbs)
    files = chapters(nbs)
    if not files: raise SystemExit(f'error: no notebooks in {nbs}; pass the notebooks folder with --nbs')
    nbs_json = {f: nbformat.read(f, as_version=4) for f in files}
    pages = [('index.html' if f.stem == 'index' else f.stem + '.html', title(nbs_json[f], f.stem), f.name)
             for f in files]
    names = {f.name: p for f, (p, _, _) in zip(files, pages)}
    ex = HTMLExporter(template_name='lab', template_file='book.html.j2', mathjax_url=MATHJAX,
                      exclude_input_prompt=True, exclude_output_prompt=True,
                      extra_loaders=[jinja2.DictLoader({'book.html.j2': TEMPLATE})])
    shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / 'static', out / 'mathjax', dirs_exist_ok=True)
    problems = []
    for i, f in enumerate(files):
        nb = for_reader(nbs_json[f])
        nb.metadata['title'] = pages[i][1]
        body, _ = ex.from_notebook_node(nb, resources={
            'metadata': {'path': str(nbs), 'name': f.stem}, 'book_nav': nav(pages, i),
            'book_toc': toc(pages) if i == 0 else ''})
        # links between notebooks become links between pages
        body = re.sub(r'href="(?:\./)?([^"/]+\.ipynb)(#[^"]*)?"',
                      lambda m: f'href="{names.get(m.group(1), m.group(1))}{m.group(2) or ""}"', body)
        atomic_write_text(out / pages[i][0], embed_images(body, nbs))
        os.chmod(out / pages[i][0], 0o644)   # the temporary file it renames is private; pages are for any reader
        if bad := error_outputs(nbs_json[f]):
            problems.append(f'{f.name}: error output in code cell(s) {", ".join(map(str, bad))}; re-execute it')
    for stale in set(out.glob('*.html')) - {out / p for p, _, _ in pages}: stale.unlink()
    return problems

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--out', default=str(ROOT / '_book'), help='folder of the book (default: _book/)')
    p.add_argument('--nbs', default=str(ROOT / 'nbs'), help='folder of the notebooks (default: nbs/)')
    a = p.parse_args(argv)
    if not Path(a.nbs).is_dir(): p.error(f'no folder {a.nbs}: pass the notebooks folder with --nbs')
    problems = build(a.out, a.nbs)
    for line in problems: print(f'error: {line}', file=sys.stderr)
    print(f'wrote {len(chapters(Path(a.nbs)))} pages into {a.out}; open {Path(a.out) / "index.html"}')
    return 1 if problems else 0

if __name__ == '__main__':
    sys.exit(main())

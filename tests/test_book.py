"The HTML book (`make book`, tools/make_book.py): a page per notebook, with its figures, no error, nothing fetched."
import base64, importlib.util, json, re, subprocess, sys
import pytest
from bs4 import BeautifulSoup
from conftest import ROOT

spec = importlib.util.spec_from_file_location('make_book', ROOT / 'tools' / 'make_book.py')
make_book = importlib.util.module_from_spec(spec); spec.loader.exec_module(make_book)

# a real 1x1 PNG, as matplotlib's figures are stored in a notebook
PNG = base64.b64encode(bytes.fromhex('89504e470d0a1a0a0000000d4948445200000001000000010806000000'
                                     '1f15c4890000000d49444154789c6360000002000001e221bc33'
                                     '0000000049454e44ae426082')).decode()

def network_loads(page: str) -> list:
    """What a page would fetch from the network: http(s) sources of any tag but a link (<a>), CSS url() and @import,
    and JavaScript imports."""
    bad = [t for t in re.findall(r'<(?!a\b)\w+\b[^>]*\b(?:src|href)\s*=\s*["\']?https?://[^>]*>', page)]
    bad += re.findall(r'url\(\s*["\']?https?://[^)]*\)', page)
    bad += re.findall(r'@import\s+(?:url\()?["\']?https?://\S+', page)
    return bad + re.findall(r'\bimport\s*\(?\s*["\']https?://[^"\']+', page)

def outputs(page: str) -> list:
    "The output areas of a page."
    return BeautifulSoup(page, 'html.parser').select('.jp-OutputArea-output')

def tracebacks(page: str) -> list:
    "The output areas that show an error: a traceback, or IPython's line of dashes above one."
    return [o.get_text()[:200] for o in outputs(page)
            if 'Traceback (most recent call last)' in o.get_text() or '-' * 75 in o.get_text()]

def image_outputs(nb: dict) -> int:
    return sum(any(k.startswith('image/') for k in o.get('data', {}))
               for c in nb['cells'] for o in c.get('outputs', []))

def embedded_images(page: str) -> int:
    "Images held in the page itself, in output areas or markdown."
    soup = BeautifulSoup(page, 'html.parser')
    return len([i for i in soup.find_all('img') if i.get('src', '').startswith('data:image/')]) + len(soup.select(
        '.jp-OutputArea-output svg'))

def cell(kind, src, outputs=()):
    c = dict(cell_type=kind, metadata={}, source=src)
    return c if kind == 'markdown' else dict(c, execution_count=None, outputs=list(outputs))

def notebook(path, cells):
    path.write_text(json.dumps(dict(cells=cells, metadata={}, nbformat=4, nbformat_minor=4)))

@pytest.fixture
def made_book(tmp_path):
    "A book of three made notebooks, whose pages are known: `(pages folder, problems)`."
    nbs = tmp_path / 'nbs'; nbs.mkdir()
    (tmp_path / 'pic.png').write_bytes(base64.b64decode(PNG))
    notebook(nbs / 'index.ipynb', [cell('markdown', '# Home\n\n> The front page')])
    figure = dict(output_type='display_data', metadata={}, data={'image/png': PNG, 'text/plain': '<Figure>'})
    notebook(nbs / '01_alpha.ipynb', [
        cell('markdown', '# Alpha: `a` first\n\nThe step $\\epsilon$; see [beta](02_beta.ipynb#Part) and '
                         '![a picture](../pic.png)'),
        cell('code', '#| default_exp alpha'),
        cell('code', '#| hide\nsecret_setup = 1'),
        cell('code', '#| echo: false\nhidden_code = 2', [dict(output_type='stream', name='stdout', text='shown 2\n')]),
        cell('code', '#| export\ndef plot(): pass\nplot()', [figure])])
    notebook(nbs / '02_beta.ipynb', [cell('markdown', '# Beta'), cell('code', '1/0', [dict(
        output_type='error', ename='ZeroDivisionError', evalue='division by zero',
        traceback=['\x1b[0;31m' + '-' * 75 + '\x1b[0m', 'ZeroDivisionError  Traceback (most recent call last)'])])])
    out = tmp_path / 'book'
    return out, make_book.build(out, nbs)

def test_made_book(made_book):
    out, problems = made_book
    pages = {p.name: p.read_text() for p in out.glob('*.html')}
    assert sorted(pages) == ['01_alpha.html', '02_beta.html', 'index.html']
    assert (out / 'mathjax' / 'MathJax.js').is_file()
    a = pages['01_alpha.html']
    # the figure output and the markdown image (outside nbs/) are in the page; the math is left for the local MathJax
    assert f'data:image/png;base64,{PNG}' in a and embedded_images(a) == 2 and '../pic.png' not in a
    assert '$\\epsilon$' in a and 'src="mathjax/MathJax.js?config=' in a
    # nbdev's directives: a `#| hide` cell and the `#|` lines are not shown; `#| echo: false` shows the output alone
    assert 'secret_setup' not in a and '#|' not in a and 'default_exp' not in a
    assert 'hidden_code' not in a and 'shown 2' in a and 'def' in a
    assert 'href="02_beta.html#Part"' in a and '02_beta.ipynb' not in a
    # the contents, in order, with the titles; links to the previous and next pages
    soup = BeautifulSoup(pages['index.html'], 'html.parser')
    assert [(x['href'], x.get_text()) for x in soup.select('.book-toc a')] == [
        ('01_alpha.html', '01 Alpha: a first'), ('02_beta.html', '02 Beta')]
    assert [x['href'] for x in BeautifulSoup(a, 'html.parser').select('nav.book-nav')[0].find_all('a')] == [
        'index.html', 'index.html', '02_beta.html']
    # the error output: shown in its page, found by the check, and named by the builder
    assert tracebacks(pages['02_beta.html']) and not tracebacks(a)
    assert problems == ['02_beta.ipynb: error output in code cell(s) 1; re-execute it']
    for name, page in pages.items(): assert network_loads(page) == [], name

def test_network_loads_finds_what_a_page_would_fetch():
    assert network_loads('<a href="https://github.com/x">x</a> <img src="data:image/png;base64,AA">') == []
    for page in ['<script src="https://cdn.example/require.js"></script>',
                 '<link rel="stylesheet" href="http://x/a.css">',
                 '<style>@font-face { src: url("https://x/f.woff") }</style>',
                 '<style>@import "https://x/a.css";</style>',
                 '<script>await import("https://cdn.example/mermaid.mjs")</script>', "<img src='https://x/a.png'>"]:
        assert network_loads(page), page

def test_bad_notebooks_folder_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, ROOT / 'tools' / 'make_book.py', '--nbs', tmp_path / 'nope', '--out',
                        tmp_path / 'book'], capture_output=True, text=True)
    assert r.returncode == 2 and 'Traceback' not in r.stderr and 'nope' in r.stderr.splitlines()[-1]

@pytest.fixture(scope='module')
def book(tmp_path_factory):
    "The real book, built by the command `make book` runs: `(pages folder, the command's result)`."
    out = tmp_path_factory.mktemp('book')
    r = subprocess.run([sys.executable, ROOT / 'tools' / 'make_book.py', '--out', out], capture_output=True, text=True)
    return out, r

NOTEBOOKS = sorted((ROOT / 'nbs').glob('*.ipynb'))

@pytest.mark.slow
def test_book_builds(book):
    out, r = book
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.glob('*.html')) == sorted(
        'index.html' if f.stem == 'index' else f.stem + '.html' for f in NOTEBOOKS)

@pytest.mark.slow
def test_index_lists_the_chapters_in_order(book):
    out, _ = book
    def heading(f):
        md = next(c for c in json.loads(f.read_text())['cells'] if c['cell_type'] == 'markdown')
        return re.search(r'^# (.+)$', ''.join(md['source']), re.M).group(1).replace('`', '')
    soup = BeautifulSoup((out / 'index.html').read_text(), 'html.parser')
    chapters = [f for f in NOTEBOOKS if f.stem != 'index']
    assert [(x['href'], x.get_text()) for x in soup.select('.book-toc a')] == [
        (f.stem + '.html', f"{f.stem.split('_')[0]} {heading(f)}") for f in chapters]

@pytest.mark.slow
@pytest.mark.parametrize('nb', NOTEBOOKS, ids=lambda p: p.stem)
def test_page_has_the_figures_and_no_error(book, nb):
    out, _ = book
    page = (out / ('index.html' if nb.stem == 'index' else nb.stem + '.html')).read_text()
    doc = json.loads(nb.read_text())
    # markdown images of files that exist (e.g. ../results/paper/mnist_figure3.png) are embedded too
    md_images = [m for c in doc['cells'] if c['cell_type'] == 'markdown'
                 for m in re.findall(r'!\[[^\]]*\]\(([^)\s]+)\)', ''.join(c['source'])) if (nb.parent / m).is_file()]
    assert embedded_images(page) >= image_outputs(doc) + len(md_images)
    assert tracebacks(page) == []
    assert network_loads(page) == []

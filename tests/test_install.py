"The package installs from the checkout and imports from outside it; notebooks, modules and README agree."
import os, shutil, subprocess, sys, zipfile
from pathlib import Path
import pytest
from conftest import ROOT, BIN

@pytest.mark.slow
def test_pip_install_from_checkout_and_import_outside(tmp_path):
    """The wheel, installed in a new virtual environment, imports and runs from another folder; it ships the manifest of
    the published weights but no weights and no address to fetch them from, and loads a model from a weights folder
    given by argument, by GUESSFIRST_WEIGHTS or by a URL in GUESSFIRST_WEIGHTS_URL; with none, one error says so."""
    wheels = tmp_path / 'wheels'
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--quiet', '--no-deps', '--no-build-isolation', '-w', wheels, ROOT],
                   check=True, cwd=tmp_path)
    whl = next(wheels.glob('guessfirst_nb-*.whl'))
    with zipfile.ZipFile(whl) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith('METADATA'))).decode()
        assert 'guessfirst_nb/data.py' in z.namelist() and 'guessfirst_nb/pretrained.json' in z.namelist()
        assert not [n for n in z.namelist() if n.endswith('.pt')], 'the wheel holds weights'
        for n in ('guessfirst_nb/pretrained.py', 'guessfirst_nb/pretrained.json'):
            assert b'://' not in z.read(n), f'{n} names an address to download the weights from'
    requires = [l.split(':', 1)[1].strip().split()[0].rstrip('<>=!~;') for l in meta.splitlines() if l.startswith('Requires-Dist:')]
    for dep in ['torch', 'torchvision', 'foolbox', 'matplotlib', 'seaborn', 'numpy', 'submitit']: assert any(r.startswith(dep) for r in requires), (dep, requires)
    # A new virtual environment; its dependencies come from the project's environment through a .pth file,
    # so this test needs no network and no 5 GB torch install, but the package itself is installed from the wheel.
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', venv], check=True)
    site = next((venv / 'lib').glob('python3*/site-packages'))
    deps = next(p for p in sys.path if p.endswith('site-packages') and Path(p).parent.parent.parent == Path(sys.prefix))
    (site / '_deps.pth').write_text(deps + '\n')
    # The new venv's Python runs isolated (-I: no PYTHONPATH, no user site, no current directory on sys.path): with
    # PYTHONPATH naming the checkout, pip would take the guessfirst_nb.egg-info that the wheel build above leaves in it
    # for an installed guessfirst_nb of the wheel's version and skip the install. --ignore-installed: the wheel is
    # installed even where the project's environment (seen through _deps.pth) holds a non-editable install of it.
    py = [venv / 'bin/python', '-I']
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME')}
    subprocess.run(py + ['-m', 'pip', 'install', '--quiet', '--no-deps', '--no-index', '--ignore-installed', whl],
                   check=True, cwd=tmp_path, env=env)
    r = subprocess.run(py + ['-c', 'import guessfirst_nb.data as d; print(d.__file__)'],
                       capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).is_relative_to(venv), r.stdout
    import configparser
    cfg = configparser.ConfigParser(); cfg.read(ROOT / 'settings.ini')
    commands = [c.split('=')[0] for c in cfg['DEFAULT']['console_scripts'].split()]
    assert {'guessfirst-data', 'guessfirst-reproduce', 'guessfirst-audit', 'guessfirst-stability', 'guessfirst-grid'} <= set(commands), commands
    for c in commands: assert (venv / 'bin' / c).exists(), f'console command {c} missing from the installed wheel'
    # a pip user: another working directory, no checkout, a weights folder of their own
    elsewhere, weights, name = tmp_path / 'elsewhere', tmp_path / 'my weights', 'mnist/paper/seed0/LeNet5.pt'
    elsewhere.mkdir(); (weights / name).parent.mkdir(parents=True); shutil.copy2(ROOT / 'weights' / name, weights / name)
    env = {k: v for k, v in env.items() if k not in ('GUESSFIRST_WEIGHTS', 'GUESSFIRST_WEIGHTS_URL')}
    env['GUESSFIRST_DATA'] = str(tmp_path / 'cache')
    code = """import sys, torch, guessfirst_nb.pretrained as p
how = sys.argv[1]
try: m = p.load_pretrained('mnist', 'LeNet5', 'paper', root=sys.argv[2] if how == 'root' else None)
except p.PretrainedError as e: print('error:', e); sys.exit(0)
print(type(m).__name__, tuple(m(torch.zeros(2, 1, 28, 28)).shape), p.__file__)"""
    def load(how, **extra):
        r = subprocess.run(py + ['-c', code, how, str(weights)], capture_output=True, text=True, cwd=elsewhere,
                           env=dict(env, **extra))
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()
    out = load('none')
    assert out.startswith(f'error: no weights for {name}: the package holds their SHA-256 sums, not the files.'), out
    for way in ("root='FOLDER'", 'GUESSFIRST_WEIGHTS=FOLDER', "url='URL'", 'GUESSFIRST_WEIGHTS_URL=URL'): assert way in out
    for how, extra in [('root', {}), ('env', dict(GUESSFIRST_WEIGHTS=str(weights))),
                       ('url', dict(GUESSFIRST_WEIGHTS_URL=weights.as_uri()))]:
        out = load(how, **extra)
        assert out.startswith('LeNet5 (2, 10) ') and Path(out.split(' ', 3)[3]).is_relative_to(venv), (how, out)
    assert (tmp_path / 'cache' / 'pretrained' / name).exists()   # the URL's file, checked, in the cache

def test_package_names_no_weights_address():
    "No address to download the weights from, placeholder or not, in the module that loads them or its manifest."
    for n in ('pretrained.py', 'pretrained.json'):
        assert '://' not in (ROOT / 'guessfirst_nb' / n).read_text(), n

def test_exported_modules_match_notebooks(tmp_path):
    for p in ['nbs', 'guessfirst_nb']: shutil.copytree(ROOT / p, tmp_path / p, ignore=shutil.ignore_patterns('__pycache__', '.ipynb_checkpoints'))
    for p in ['settings.ini', 'pyproject.toml']: shutil.copy2(ROOT / p, tmp_path / p)
    subprocess.run([BIN / 'nbdev_export'], check=True, cwd=tmp_path, capture_output=True)
    stale = [p.name for p in (ROOT / 'guessfirst_nb').glob('*.py') if p.read_text() != (tmp_path / 'guessfirst_nb' / p.name).read_text()]
    assert not stale, f'exported modules differ from the notebooks: {stale}; run `make export` and commit both'

def test_readme_is_generated_from_index_notebook():
    r = subprocess.run([sys.executable, ROOT / 'tools/make_readme.py', '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + ' (run `make readme`)'

def test_index_notebook_types_no_result_numbers():
    "Every result number in the README comes from a cell: no decimal number typed in index.ipynb's markdown."
    import json, re
    nb = json.loads((ROOT / 'nbs/index.ipynb').read_text())
    typed = [m for c in nb['cells'] if c['cell_type'] == 'markdown'
             for m in re.findall(r'(?<![\w.])\d+\.\d+(?![\w.])', re.sub(r'https?://\S+', '', ''.join(c['source'])))]
    assert not typed, f'decimal numbers typed by hand in nbs/index.ipynb: {typed}; compute them in a cell'

"The package installs from the checkout and imports from outside it; notebooks, modules and README agree."
import os, shutil, subprocess, sys, zipfile
from pathlib import Path
from conftest import ROOT, BIN

def test_pip_install_from_checkout_and_import_outside(tmp_path):
    wheels = tmp_path / 'wheels'
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--quiet', '--no-deps', '--no-build-isolation', '-w', wheels, ROOT],
                   check=True, cwd=tmp_path)
    whl = next(wheels.glob('guessfirst_nb-*.whl'))
    with zipfile.ZipFile(whl) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith('METADATA'))).decode()
        assert 'guessfirst_nb/data.py' in z.namelist()
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

def test_exported_modules_match_notebooks(tmp_path):
    for p in ['nbs', 'guessfirst_nb']: shutil.copytree(ROOT / p, tmp_path / p, ignore=shutil.ignore_patterns('__pycache__', '.ipynb_checkpoints'))
    for p in ['settings.ini', 'pyproject.toml']: shutil.copy2(ROOT / p, tmp_path / p)
    subprocess.run([BIN / 'nbdev_export'], check=True, cwd=tmp_path, capture_output=True)
    stale = [p.name for p in (ROOT / 'guessfirst_nb').glob('*.py') if p.read_text() != (tmp_path / 'guessfirst_nb' / p.name).read_text()]
    assert not stale, f'exported modules differ from the notebooks: {stale}; run `make export` and commit both'

def test_readme_is_generated_from_index_notebook():
    r = subprocess.run([sys.executable, ROOT / 'tools/make_readme.py', '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + ' (run `make readme`)'

def test_readme_first_screen():
    "The README shows the verdict first: under 15,000 characters, the verdict bullets and the scoreboard in 40 lines."
    text = (ROOT / 'README.md').read_text()
    assert len(text) < 15_000, f'README.md has {len(text):,} characters; keep it under 15,000 (link to results/*.md)'
    head = text.splitlines()[:40]
    assert sum(l.startswith('- **') for l in head) >= 5, 'the first 40 lines should hold the verdict bullets'
    assert any('results/scoreboard.png' in l for l in head), 'the first 40 lines should show the scoreboard'

def test_index_notebook_types_no_result_numbers():
    "Every result number in the README comes from a cell: no decimal number typed in index.ipynb's markdown."
    import json, re
    nb = json.loads((ROOT / 'nbs/index.ipynb').read_text())
    typed = [m for c in nb['cells'] if c['cell_type'] == 'markdown'
             for m in re.findall(r'(?<![\w.])\d+\.\d+(?![\w.])', ''.join(c['source']))]
    assert not typed, f'decimal numbers typed by hand in nbs/index.ipynb: {typed}; compute them in a cell'

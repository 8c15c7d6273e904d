import contextlib, io, os, shutil, subprocess, sys
from dataclasses import replace
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

def committed(pattern: str) -> list[Path]:
    "The committed results files matching `pattern` under results/, sorted: one list for a parametrize and its guard."
    return sorted((ROOT / 'results').glob(pattern))

def label(p: Path) -> str:
    "A committed results file as 'profile/name', its test id: 'paper/mnist_audit.json'."
    return f'{p.parent.name}/{p.name}'

@pytest.fixture
def copy_dataset(tmp_path):
    "Copy one dataset's verified files from the real data directory into a fresh data root under tmp_path."
    from guessfirst_nb.data import fetch, raw_dir
    def _copy(name):
        src = fetch(name, verbose=False)
        dst = raw_dir(name, tmp_path); dst.mkdir(parents=True)
        for f in src.iterdir():
            if not f.name.startswith('.'): shutil.copy2(f, dst / f.name)
        return tmp_path, dst
    return _copy

def cli(main, *args):
    "(exit status, stdout, stderr) of a command's `main(list(args))`, in this process; argparse's exits included."
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: rc = main([str(a) for a in args])
        except SystemExit as e: rc = e.code
    return rc, out.getvalue(), err.getvalue()

@pytest.fixture
def tiny(monkeypatch):
    """A profile 'tiny' beside the real ones, for as long as the test runs: the smoke profile with one epoch of one
    step (250 images) and attacks on 20 images, so that a test trains every model in a few seconds."""
    from guessfirst_nb.profiles import PROFILES, TrainConfig
    smoke = PROFILES['smoke']
    monkeypatch.setitem(PROFILES, 'tiny', replace(smoke, name='tiny', train=TrainConfig(250, 1, 100),
                                                  attack=replace(smoke.attack, n_test=20)))
    return 'tiny'

@contextlib.contextmanager
def read_only(path: Path):
    """Folder `path` made read-only for this process: its write bits removed and, for root (whom modes do not stop),
    the immutable attribute set; the test is skipped where neither makes it so."""
    path.chmod(0o555); immutable = False
    try:
        if os.access(path, os.W_OK) and shutil.which('chattr'):
            immutable = subprocess.run(['chattr', '+i', str(path)], capture_output=True).returncode == 0
        if os.access(path, os.W_OK): pytest.skip(f'cannot make {path} read-only on this machine')
        yield path
    finally:
        if immutable: subprocess.run(['chattr', '-i', str(path)], capture_output=True)
        path.chmod(0o755)

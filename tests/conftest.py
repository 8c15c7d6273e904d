import shutil, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

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

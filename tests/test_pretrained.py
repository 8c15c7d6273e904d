"""The published weights' machinery (notebook 12): `publish` on a made-up run of the smoke profile, what it keeps and
what it refuses; a run listed but not yet published; files that fail their sum; a download from a `file://` URL
into the cache, the environment's folder and URL, and a damaged download that leaves nothing behind."""
import os, shutil
from dataclasses import replace
from pathlib import Path
from unittest import mock
import pytest
from conftest import ROOT
import guessfirst_nb.pretrained as pre
from guessfirst_nb.io import atomic_torch_save, sha256_file
from guessfirst_nb.models import make_model
from guessfirst_nb.pretrained import (PretrainedError, URL_ENV, WEIGHTS_ENV, load_pretrained, pretrained_file, publish,
                                      read_manifest, weight_name)
from guessfirst_nb.run import Run

PAPER, SMOKE = Run('mnist', 'paper'), Run('mnist', 'smoke')


def _trained(tmp, models=(('CNN', 0.5), ('LeNet5', 0.25))) -> Run:
    "A made-up run of the smoke profile under `tmp`/runs: each model's checkpoint of its last epoch (2), on a GPU."
    ran = replace(SMOKE, runs=tmp / 'runs')
    for m, acc in models:
        atomic_torch_save(dict(epoch=2, history=[dict(test_acc=0.1), dict(test_acc=acc)], device='cuda'),
                          ran.checkpoint(m, 2))
    return ran


def _publish(tmp, models, published=(SMOKE,), **kw):
    return publish(tmp / 'runs', tmp / 'weights', tmp / 'manifest.json', list(published), list(models),
                   log=lambda s: None, **kw)


def test_publish_copies_the_last_epoch_and_adds_to_the_manifest(tmp_path):
    """The last epoch's checkpoint (not an earlier one, nor `last.pt`) is copied to its published name, the manifest
    records its sum and what it says of itself, and a second call adds to the manifest."""
    ran = _trained(tmp_path)
    atomic_torch_save(dict(epoch=1, history=[dict(test_acc=0.9)]), ran.checkpoint('LeNet5', 1))
    atomic_torch_save(dict(epoch=2, history=[dict(test_acc=0.9)], optimizer={}), ran.model_dir('LeNet5') / 'last.pt')
    _publish(tmp_path, ['CNN'])
    files = _publish(tmp_path, ['LeNet5'])
    assert sorted(files) == ['mnist/smoke/seed0/CNN.pt', 'mnist/smoke/seed0/LeNet5.pt']
    f = files['mnist/smoke/seed0/LeNet5.pt']
    assert (f['epochs'], f['test_acc'], f['device']) == (2, 0.25, 'cuda')
    assert sha256_file(tmp_path / 'weights/mnist/smoke/seed0/LeNet5.pt') == sha256_file(ran.checkpoint('LeNet5', 2))
    assert read_manifest(tmp_path / 'manifest.json') == files
    # the same checkpoints again: nothing to do, nothing copied, the manifest unchanged
    lines = []
    assert publish(tmp_path / 'runs', tmp_path / 'weights', tmp_path / 'manifest.json', [SMOKE], ['CNN', 'LeNet5'],
                   log=lines.append) == files and lines == []


def test_publish_replaces_a_published_file_only_on_purpose(tmp_path):
    """A run trained again, whose checkpoint differs from the file published under its name, is one error before any
    copy (the committed results were measured on the published file); `overwrite=True` replaces it."""
    ran = _trained(tmp_path)
    first = _publish(tmp_path, ['CNN', 'LeNet5'])
    published = (tmp_path / 'weights/mnist/smoke/seed0/CNN.pt').read_bytes()
    atomic_torch_save(dict(epoch=2, history=[dict(test_acc=0.75)]), ran.checkpoint('CNN', 2))
    atomic_torch_save(dict(epoch=2, history=[dict(test_acc=0.5)]), ran.checkpoint('LeNet5', 2))   # also new
    with pytest.raises(PretrainedError) as e: _publish(tmp_path, ['LeNet5', 'CNN'])
    msg = str(e.value)
    assert msg.startswith(f"published already, and the checkpoint under {tmp_path / 'runs'} is another file")
    for m in ('LeNet5', 'CNN'):   # each one named, with both sums
        old, new = first[f'mnist/smoke/seed0/{m}.pt']['sha256'], sha256_file(ran.checkpoint(m, 2))
        assert f'mnist/smoke/seed0/{m}.pt (published {old[:12]}..., {ran.checkpoint(m, 2)} {new[:12]}...)' in msg
    assert msg.endswith('make weights OVERWRITE=1 (publish(..., overwrite=True))')
    assert (tmp_path / 'weights/mnist/smoke/seed0/CNN.pt').read_bytes() == published   # nothing copied
    assert read_manifest(tmp_path / 'manifest.json') == first                         # nor written
    (tmp_path / 'weights/mnist/smoke/seed0/CNN.pt').unlink()   # a manifest entry without its file is no way around it
    with pytest.raises(PretrainedError, match='OVERWRITE=1'): _publish(tmp_path, ['CNN'])
    again = _publish(tmp_path, ['CNN'], overwrite=True)
    assert again['mnist/smoke/seed0/CNN.pt']['test_acc'] == 0.75
    assert sha256_file(tmp_path / 'weights/mnist/smoke/seed0/CNN.pt') == sha256_file(ran.checkpoint('CNN', 2))


def test_publish_stopped_halfway_leaves_a_true_manifest_and_resumes(tmp_path):
    """A copy that fails at the second of two files (a full disk, a kill) leaves the first file published and in the
    manifest, and the second in neither; the same call again publishes the second and logs only it."""
    ran = _trained(tmp_path)
    real, calls = pre._install_stream, []
    def fail_second(f, dst, h, dataset):
        calls.append(dst)
        if len(calls) == 2: raise OSError('No space left on device')
        real(f, dst, h, dataset)
    with mock.patch.object(pre, '_install_stream', fail_second), pytest.raises(OSError, match='No space'):
        _publish(tmp_path, ['CNN', 'LeNet5'])
    w = tmp_path / 'weights/mnist/smoke/seed0'
    assert list(read_manifest(tmp_path / 'manifest.json')) == ['mnist/smoke/seed0/CNN.pt']
    assert read_manifest(tmp_path / 'manifest.json')['mnist/smoke/seed0/CNN.pt']['sha256'] == sha256_file(w / 'CNN.pt')
    assert not (w / 'LeNet5.pt').exists()
    lines = []
    files = publish(tmp_path / 'runs', tmp_path / 'weights', tmp_path / 'manifest.json', [SMOKE], ['CNN', 'LeNet5'],
                    log=lines.append)
    assert lines == ['published mnist/smoke/seed0/LeNet5.pt']
    assert {n: f['sha256'] for n, f in files.items()} == {f'mnist/smoke/seed0/{m}.pt': sha256_file(ran.checkpoint(m, 2))
                                                         for m in ('CNN', 'LeNet5')}
    assert read_manifest(tmp_path / 'manifest.json') == files


def test_publish_refuses_an_untrained_model_before_copying_anything(tmp_path):
    "A model not trained to its last epoch is one error that says how to train it; nothing is copied or written."
    _trained(tmp_path)
    with pytest.raises(FileNotFoundError, match='train it first: guessfirst train --model C-DV --dataset mnist '
                                                 '--profile smoke --seed 0'):
        _publish(tmp_path, ['CNN', 'C-DV'])
    assert not (tmp_path / 'weights').exists() and not (tmp_path / 'manifest.json').exists()


def test_publish_keeps_a_published_run_that_is_not_under_runs(tmp_path):
    """`make weights` with a runs folder that holds only the new run: a run published before, whose checkpoints are
    elsewhere, keeps its files and entries, and the new run is added (as MNIST's 200-epoch run beside Fashion-MNIST's);
    a kept file that no longer matches its sum is refused."""
    _trained(tmp_path)
    before = _publish(tmp_path, ['CNN', 'LeNet5'])
    shutil.rmtree(tmp_path / 'runs')
    other = replace(Run('fashion_mnist', 'smoke'), runs=tmp_path / 'runs')
    atomic_torch_save(dict(epoch=2, history=[dict(test_acc=0.7)]), other.checkpoint('CNN', 2))
    lines = []
    files = publish(tmp_path / 'runs', tmp_path / 'weights', tmp_path / 'manifest.json',
                    [SMOKE, Run('fashion_mnist', 'smoke')], ['CNN'], log=lines.append)
    assert files == dict(before, **{'fashion_mnist/smoke/seed0/CNN.pt': files['fashion_mnist/smoke/seed0/CNN.pt']})
    assert files['fashion_mnist/smoke/seed0/CNN.pt']['test_acc'] == 0.7
    assert lines == ['published fashion_mnist/smoke/seed0/CNN.pt']
    (tmp_path / 'weights/mnist/smoke/seed0/CNN.pt').write_bytes(b'damaged')
    with pytest.raises(PretrainedError, match='mnist/smoke/seed0/CNN.pt: its SHA-256 is'):
        _publish(tmp_path, ['CNN'], published=(SMOKE, Run('fashion_mnist', 'smoke')))


def test_a_listed_run_not_yet_published_is_one_clear_error(tmp_path):
    """A run of PUBLISHED whose files the manifest does not hold yet (Fashion-MNIST at 200 epochs while it trains):
    asking for one of its models says it is not published yet and how it gets published; the manifest check and the
    runs that are published are unaffected."""
    listed = Run('fashion_mnist', 'smoke')
    with mock.patch.object(pre, 'PUBLISHED', pre.PUBLISHED + [listed]):
        assert not pre.is_published(listed)
        assert pre.is_published(PAPER)
        with pytest.raises(PretrainedError) as e: load_pretrained('fashion_mnist', 'C-JS', 'smoke')
        msg = str(e.value)
        assert msg.startswith('fashion_mnist/smoke/seed0/C-JS.pt is not published yet: fashion_mnist, profile smoke, '
                              'seed 0 is listed in PUBLISHED'), msg
        assert 'make weights RUNS=FOLDER' in msg and 'mnist/paper/seed0' in msg and '\n' not in msg
        with pytest.raises(PretrainedError, match='no published weights for mnist/smoke/seed0/CNN.pt; published runs'):
            pretrained_file(SMOKE, 'CNN')
    with pytest.raises(PretrainedError, match=r'published runs \(dataset/profile/seed\): fashion_mnist/paper-lite/seed0'):
        load_pretrained('mnist', 'CNN', 'paper', seed=3)


def test_a_file_that_fails_its_sum_is_refused(tmp_path):
    "A copy of a published file loads from a folder; one bit flipped, it is refused with the fix; a file absent too."
    name = weight_name(PAPER, 'LeNet5')
    (tmp_path / name).parent.mkdir(parents=True)
    shutil.copyfile(ROOT / 'weights' / name, tmp_path / name)
    assert type(load_pretrained('mnist', 'LeNet5', 'paper', root=tmp_path)) is type(make_model('LeNet5'))
    b = bytearray((tmp_path / name).read_bytes()); b[len(b) // 2] ^= 1; (tmp_path / name).write_bytes(bytes(b))
    with pytest.raises(PretrainedError) as e: load_pretrained('mnist', 'LeNet5', 'paper', root=tmp_path)
    assert f'{name}: its SHA-256' in str(e.value) and 'Fix: replace it with the published file' in str(e.value)
    with pytest.raises(PretrainedError, match=r'\(from root\) does not hold'):
        load_pretrained('mnist', 'CNN', 'paper', root=tmp_path)


@pytest.fixture
def installed(tmp_path):
    """As an installed package: no checkout weights/, no weights folder or URL in the environment, the data folder
    (and so the cache) under tmp_path; `(mirror, cache)`: a folder to serve and the cache folder."""
    mirror, cache = tmp_path / 'mirror', tmp_path / 'cache'
    mirror.mkdir(); cache.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in (WEIGHTS_ENV, URL_ENV)}
    with mock.patch.dict(os.environ, dict(env, GUESSFIRST_DATA=str(cache)), clear=True), \
         mock.patch.object(pre, '_repo_weights', lambda: mirror / 'absent'):
        yield mirror, cache


def test_no_source_names_the_three_ways(installed):
    with pytest.raises(PretrainedError) as e: pretrained_file(PAPER, 'LeNet5')
    msg = str(e.value)
    for way in ("root='FOLDER'", 'GUESSFIRST_WEIGHTS=FOLDER', "url='URL'", 'GUESSFIRST_WEIGHTS_URL=URL'): assert way in msg
    assert '\n' not in msg and '://' not in msg


def test_download_cache_and_environment(installed):
    """Given a URL (a `file://` one: the same urllib path as HTTPS) the file arrives in the cache, checked; a second
    call reads the cache and checks it again, so a cached file damaged afterwards is refused; the folder and the URL
    may come from the environment; a server that sends a damaged file gets an error and leaves nothing in the cache."""
    mirror, cache = installed
    name = weight_name(PAPER, 'LeNet5')
    (mirror / name).parent.mkdir(parents=True); shutil.copyfile(ROOT / 'weights' / name, mirror / name)
    url = mirror.as_uri()
    p = pretrained_file(PAPER, 'LeNet5', url=url)
    assert p == cache / 'pretrained' / name and sha256_file(p) == read_manifest()[name]['sha256']
    load_pretrained('mnist', 'LeNet5', 'paper')   # cached: no URL needed, no download
    b = bytearray(p.read_bytes()); b[len(b) // 2] ^= 1; p.write_bytes(bytes(b))   # damaged after the download
    with pytest.raises(PretrainedError, match=f'{p}: its SHA-256 is'): load_pretrained('mnist', 'LeNet5', 'paper', url=url)
    p.unlink()
    with mock.patch.dict(os.environ, {URL_ENV: url}): assert pretrained_file(PAPER, 'LeNet5') == p
    with mock.patch.dict(os.environ, {WEIGHTS_ENV: str(mirror)}): assert pretrained_file(PAPER, 'LeNet5') == mirror / name
    with mock.patch.dict(os.environ, {WEIGHTS_ENV: str(cache)}):
        with pytest.raises(PretrainedError, match=r'\(from \$GUESSFIRST_WEIGHTS\) does not hold'):
            pretrained_file(PAPER, 'LeNet5')
    (mirror / weight_name(PAPER, 'CNN')).write_bytes(b'not a checkpoint')
    with pytest.raises(PretrainedError, match='download it again'): pretrained_file(PAPER, 'CNN', url=url)
    assert list((cache / 'pretrained' / 'mnist' / 'paper' / 'seed0').iterdir()) == [p]   # no partial file left behind
    with pytest.raises(PretrainedError, match='cannot download'): pretrained_file(PAPER, 'C-DV', url=url)

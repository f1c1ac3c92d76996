"""helpers.data: splits, normalisation, offline errors, read-only sources, corrupt files, BatchLoader."""
from __future__ import annotations

import gzip
import shutil
import tarfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
from torchvision import datasets

from helpers import data, standins
from helpers.data import DataCorruptError, DataNotFoundError, Split

_REAL_FASHION: dict[str, data.Splits] = {}


@pytest.fixture(scope="module")
def _standin_template(tmp_path_factory) -> Path:
    """Small stand-ins of all three data sets, written once for this module."""
    root = tmp_path_factory.mktemp("standins")
    standins.write_fashion_mnist(root, n_train=300, n_test=100)
    standins.write_cifar10(root, n_per_batch=20, n_test=40)
    standins.write_europe(root, n_train=400, n_val=100, n_test=100)
    return root


@pytest.fixture
def standin_root(_standin_template) -> Path:
    """The stand-ins inside this test's kit cache: the only place where their markers are trusted."""
    return shutil.copytree(_standin_template, data.cache_dir() / "standins")


@pytest.fixture
def kit_folder() -> Path:
    """A folder inside the kit's cache (stand-ins copied here keep their trusted markers)."""
    return data.cache_dir() / "copies"


@pytest.fixture
def real_fashion(shared_data) -> data.Splits:
    """The real FashionMNIST as tensors, decoded once per test session (it takes about a second)."""
    if "splits" not in _REAL_FASHION:
        if not (shared_data / "FashionMNIST" / "raw").is_dir():
            pytest.skip("real FashionMNIST not in the shared data folder")
        _REAL_FASHION["splits"] = data.load_fashion_mnist(shared_data)
    return _REAL_FASHION["splits"]


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


# --- splits --------------------------------------------------------------------------------

def test_split_indices_partition_and_determinism():
    train, val = data.split_indices(100, 20, seed=0)
    assert len(train) == 80 and len(val) == 20
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(100))
    again_train, again_val = data.split_indices(100, 20, seed=0)
    assert np.array_equal(val, again_val) and np.array_equal(train, again_train)
    assert not np.array_equal(val, data.split_indices(100, 20, seed=1)[1])
    with pytest.raises(ValueError, match="val_size"):
        data.split_indices(100, 100, seed=0)


def test_real_fashion_split_sizes_classes_and_statistics(real_fashion):
    assert (len(real_fashion.train), len(real_fashion.val), len(real_fashion.test)) == (50_000, 10_000, 10_000)
    assert real_fashion.classes == data.FASHION_CLASSES and real_fashion.classes[0] == "T-shirt/top"
    assert real_fashion.train.X.shape[1:] == (1, 28, 28) and real_fashion.train.X.dtype == torch.float32
    assert real_fashion.train.y.dtype == torch.int64 and set(real_fashion.train.y.unique().tolist()) == set(range(10))
    # Undo the normalisation: the 60,000 raw training pixels have mean 0.286 and std 0.353.
    raw = torch.cat([real_fashion.train.X, real_fashion.val.X]) * data.FASHION_STD + data.FASHION_MEAN
    assert raw.mean().item() == pytest.approx(0.286, abs=1e-3)
    assert raw.std().item() == pytest.approx(0.353, abs=1e-3)
    assert real_fashion.train.X.mean().item() == pytest.approx(0.0, abs=0.01)
    assert real_fashion.train.X.std().item() == pytest.approx(1.0, abs=0.01)


def test_fashion_split_is_seeded(standin_root):
    a = data.load_fashion_mnist(standin_root, val_size=50, seed=0)
    b = data.load_fashion_mnist(standin_root, val_size=50, seed=0)
    c = data.load_fashion_mnist(standin_root, val_size=50, seed=1)
    assert (len(a.train), len(a.val), len(a.test)) == (250, 50, 100)
    assert torch.equal(a.val.X, b.val.X) and torch.equal(a.train.y, b.train.y)
    assert not torch.equal(a.val.X, c.val.X)


def test_fashion_normalize_false_gives_unit_interval(standin_root):
    splits = data.load_fashion_mnist(standin_root, val_size=50, normalize=False)
    assert splits.train.X.min() >= 0 and splits.train.X.max() <= 1
    normalised = data.load_fashion_mnist(standin_root, val_size=50)
    expected = (splits.train.X - data.FASHION_MEAN) / data.FASHION_STD
    assert torch.allclose(normalised.train.X, expected, atol=1e-5)


def test_tensor_path_and_dataset_path_give_the_same_split(standin_root):
    tensors = data.load_fashion_mnist(standin_root, val_size=50, seed=3)
    train_ds, val_ds, test_ds = data.fashion_mnist_datasets(standin_root, val_size=50, seed=3)
    assert (len(train_ds), len(val_ds), len(test_ds)) == (250, 50, 100)
    for split, ds in ((tensors.val, val_ds), (tensors.train, train_ds), (tensors.test, test_ds)):
        for i in (0, 7, len(ds) - 1):
            x, y = ds[i]
            assert torch.allclose(x, split.X[i], atol=1e-6) and y == split.y[i].item()


def test_cifar_standins_load_both_ways(standin_root):
    tensors = data.load_cifar10(standin_root, val_size=20, seed=0)
    assert (len(tensors.train), len(tensors.val), len(tensors.test)) == (80, 20, 40)
    assert tensors.classes == data.CIFAR10_CLASSES
    assert tensors.train.X.shape[1:] == (3, 32, 32) and tensors.train.X.abs().max() <= 1.0
    _, val_ds, _ = data.cifar10_datasets(standin_root, val_size=20, seed=0)
    x, y = val_ds[5]
    assert torch.allclose(x, tensors.val.X[5], atol=1e-6) and y == tensors.val.y[5].item()


def test_default_val_size_shrinks_on_small_standins(standin_root):
    # 10,000 of 60,000 real images become the same sixth of the 300 stand-ins.
    splits = data.load_fashion_mnist(standin_root)
    assert (len(splits.train), len(splits.val)) == (250, 50)


# --- where data comes from -----------------------------------------------------------------

@pytest.mark.parametrize("loader, expected_file", [
    (data.load_fashion_mnist, "train-images-idx3-ubyte.gz"),
    (data.load_cifar10, "data_batch_1"),
    (data.load_europe, "validation.csv"),
])
def test_missing_files_raise_one_clear_error(tmp_path, loader, expected_file):
    with pytest.raises(DataNotFoundError) as info:
        loader(tmp_path)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert str(tmp_path) in message and expected_file in message
    assert "Searched" in message and "Fix: put the files into" in message


def test_offline_does_not_try_to_download(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("download attempted while KIT_OFFLINE=1")
    monkeypatch.setattr(datasets.FashionMNIST, "download", fail)
    with pytest.raises(DataNotFoundError, match="KIT_OFFLINE=1"):
        data.load_fashion_mnist(tmp_path)


def test_failed_download_becomes_data_not_found(tmp_path, monkeypatch):
    monkeypatch.delenv("KIT_OFFLINE")
    calls = []

    def offline_fashion(self):
        calls.append(self.root)
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried http://fashion-mnist..., "
                           "got:\n<urlopen error [Errno -3] Temporary failure in name resolution>")

    def offline_cifar(self):
        calls.append(self.root)
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(datasets.FashionMNIST, "download", offline_fashion)
    monkeypatch.setattr(datasets.CIFAR10, "download", offline_cifar)
    with pytest.raises(DataNotFoundError) as fashion:
        data.load_fashion_mnist(tmp_path)
    assert "Download failed: RuntimeError: Error downloading train-images-idx3-ubyte.gz" in str(fashion.value)
    assert isinstance(fashion.value.__cause__, RuntimeError)
    with pytest.raises(DataNotFoundError) as cifar:
        data.load_cifar10(tmp_path)
    assert "Download failed: URLError" in str(cifar.value) and "CIFAR-10" in str(cifar.value)
    assert calls == [str(tmp_path), str(tmp_path)]


def test_root_none_searches_the_data_root(tmp_path, monkeypatch, standin_root):
    shutil.copytree(standin_root / "europe-countries", tmp_path / "europe-countries")
    monkeypatch.setenv("KIT_DATA", str(tmp_path))
    splits = data.load_europe()
    assert (len(splits.train), len(splits.val), len(splits.test)) == (400, 100, 100)


def test_smoke_profile_uses_generated_standins(monkeypatch, capsys):
    monkeypatch.setenv("KIT_PROFILE", "smoke")
    splits = data.load_fashion_mnist()
    assert "stand-in" in capsys.readouterr().out
    assert len(splits.train) + len(splits.val) == 600
    marker = data.cache_dir() / "smoke-data" / "FashionMNIST" / "raw" / standins.MARKER
    written = marker.stat().st_mtime_ns
    assert len(data.load_europe().classes) == 33
    assert marker.stat().st_mtime_ns == written  # written once, then reused


def test_read_only_source_folder_is_not_written(kit_folder, standin_root):
    source = kit_folder / "source"
    shutil.copytree(standin_root / "FashionMNIST", source / "FashionMNIST")
    for path in [source, *source.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    before = _snapshot(source)
    try:
        splits = data.load_fashion_mnist(source, val_size=50)
        train_ds, _, _ = data.fashion_mnist_datasets(source, val_size=50)
        assert len(splits.train) == len(train_ds) == 250
        # Root ignores permission bits, so compare the folder's contents rather than rely on EACCES.
        assert _snapshot(source) == before
        assert list((data.cache_dir() / "data-mirror").rglob("train-images-idx3-ubyte"))
    finally:
        for path in [source, *source.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_corrupt_standin_file_is_named(kit_folder, standin_root):
    shutil.copytree(standin_root / "FashionMNIST", kit_folder / "FashionMNIST")
    damaged = kit_folder / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    damaged.write_bytes(damaged.read_bytes()[:-10])
    with pytest.raises(DataCorruptError) as info:
        data.load_fashion_mnist(kit_folder)
    assert str(damaged) in str(info.value) and "copy the file again" in str(info.value)


def test_real_checksums_are_checked_without_a_marker(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in dict(datasets.FashionMNIST.resources):
        with gzip.open(raw / name, "wb") as f:
            f.write(b"not the real file")
    with pytest.raises(DataCorruptError, match="torchvision's checksum list"):
        data.load_fashion_mnist(tmp_path)


def test_cifar_corrupt_batch_is_named(kit_folder, standin_root):
    shutil.copytree(standin_root / "cifar-10-batches-py", kit_folder / "cifar-10-batches-py")
    damaged = kit_folder / "cifar-10-batches-py" / "data_batch_3"
    damaged.write_bytes(damaged.read_bytes()[:100])
    with pytest.raises(DataCorruptError, match="data_batch_3"):
        data.load_cifar10(kit_folder)
    # Without the marker the stand-ins are held to the real md5s, so they are rejected.
    shutil.copyfile(standin_root / "cifar-10-batches-py" / "data_batch_3", damaged)
    (kit_folder / "cifar-10-batches-py" / standins.MARKER).unlink()
    with pytest.raises(DataCorruptError, match="torchvision's checksum list"):
        data.load_cifar10(kit_folder)


def test_cifar_archive_is_extracted_into_the_cache(tmp_path, standin_root, monkeypatch):
    archive = tmp_path / "source" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(standin_root / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    # A stand-in archive cannot match the real md5s, so pretend its own md5s are torchvision's.
    monkeypatch.setattr(data, "_CIFAR_TAR", (archive.name, standins.md5sum(archive)))
    md5 = standins.read_marker(standin_root / "cifar-10-batches-py")["md5"]
    monkeypatch.setattr(datasets.CIFAR10, "train_list", [[n, md5[n]] for n, _ in datasets.CIFAR10.train_list])
    monkeypatch.setattr(datasets.CIFAR10, "test_list", [[n, md5[n]] for n, _ in datasets.CIFAR10.test_list])
    monkeypatch.setattr(datasets.CIFAR10, "meta", {**datasets.CIFAR10.meta, "md5": md5["batches.meta"]})
    before = _snapshot(archive.parent)
    splits = data.load_cifar10(archive.parent, val_size=20)
    assert len(splits.train) == 80 and _snapshot(archive.parent) == before
    assert list((data.cache_dir() / "data-mirror").rglob("data_batch_5"))


def test_europe_bad_header_is_named(tmp_path, standin_root):
    folder = shutil.copytree(standin_root / "europe-countries", tmp_path / "europe-countries")
    bad = folder / "test.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(DataCorruptError, match="test.csv"):
        data.load_europe(tmp_path)


def test_real_europe_countries(shared_data):
    if not (shared_data / "europe-countries").is_dir():
        pytest.skip("real Europe countries CSVs not in the shared data folder")
    splits = data.load_europe(shared_data)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (106_897, 13_363, 13_363)
    assert splits.classes == [str(i) for i in range(33)]
    for split in (splits.train, splits.val, splits.test):
        assert split.X.dtype == torch.float32 and split.y.dtype == torch.int64
        assert set(split.y.unique().tolist()) == set(range(33))
    long, lat = splits.train.X[:, 0], splits.train.X[:, 1]
    assert -10.5 < long.min() and long.max() < 40.3 and 34.7 < lat.min() and lat.max() < 71.3


# --- in-memory batches ------------------------------------------------------------------------

def _epoch_targets(loader) -> torch.Tensor:
    return torch.cat([yb for _, yb in loader])


def test_batch_loader_covers_every_sample_once_and_reshuffles():
    split = Split(torch.arange(103, dtype=torch.float32)[:, None], torch.arange(103))
    loader = split.loader(batch_size=10, shuffle=True, seed=0)
    assert len(loader) == 11 and loader.batch_size == 10 and loader.n_samples == 103
    first, second = _epoch_targets(loader), _epoch_targets(loader)
    assert sorted(first.tolist()) == list(range(103)) and sorted(second.tolist()) == list(range(103))
    assert not torch.equal(first, second) and not torch.equal(first, torch.arange(103))
    # Inputs travel with their targets.
    for xb, yb in loader:
        assert torch.equal(xb[:, 0].long(), yb)
    same_seed = split.loader(batch_size=10, shuffle=True, seed=0)
    assert torch.equal(_epoch_targets(same_seed), first)


def test_batch_loader_order_sizes_and_drop_last():
    split = Split(torch.zeros(25, 3), torch.arange(25))
    assert torch.equal(_epoch_targets(split.loader(batch_size=10)), torch.arange(25))
    assert [len(yb) for _, yb in split.loader(batch_size=10)] == [10, 10, 5]
    dropped = split.loader(batch_size=10, drop_last=True)
    assert len(dropped) == 2 and [len(yb) for _, yb in dropped] == [10, 10]
    with pytest.raises(ValueError, match="batch_size"):
        split.loader(batch_size=0)


def test_batch_loader_places_data_on_the_device():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    loader = Split(torch.randn(8, 2), torch.arange(8)).loader(batch_size=4, shuffle=True, device=device)
    xb, yb = next(iter(loader))
    assert xb.device.type == device and yb.device.type == device


def test_split_subset_and_validation():
    split = Split(torch.arange(50)[:, None], torch.arange(50))
    small = split.subset(10, seed=1)
    assert len(small) == 10 and torch.equal(small.X[:, 0], small.y)
    assert torch.equal(split.subset(10, seed=1).y, small.y) and not torch.equal(split.subset(10, seed=2).y, small.y)
    assert split.subset(100) is split
    with pytest.raises(ValueError, match="as many targets"):
        Split(torch.zeros(3, 2), torch.zeros(4))
    assert "n=50" in repr(split)

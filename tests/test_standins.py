"""helpers.standins: files in the real formats that torchvision reads, with learnable structure."""
from __future__ import annotations

import gzip
import pickle
import shutil

import numpy as np
import pandas as pd
import pytest
from torchvision import datasets

from helpers.config import cache_dir
from helpers import standins
from helpers.data import KitCIFAR10


def _nearest_mean_accuracy(X_train, y_train, X_test, y_test) -> float:
    """Accuracy of the nearest-class-mean classifier: high only when classes have their own structure."""
    classes = np.unique(y_train)
    means = np.stack([X_train[y_train == c].mean(axis=0) for c in classes])
    distances = ((X_test[:, None, :] - means[None]) ** 2).sum(-1)
    return float((classes[distances.argmin(1)] == y_test).mean())


def test_fashion_standins_round_trip_through_torchvision(tmp_path):
    raw = standins.write_fashion_mnist(tmp_path / "src", n_train=200, n_test=100, seed=0)
    # torchvision reads the extracted files; gunzip them into a separate root as a user would.
    out = tmp_path / "extracted" / "FashionMNIST" / "raw"
    out.mkdir(parents=True)
    for name in standins.FASHION_FILES.values():
        with gzip.open(raw / name) as src, open(out / name[:-3], "wb") as dst:
            shutil.copyfileobj(src, dst)
    train = datasets.FashionMNIST(str(tmp_path / "extracted"), train=True)
    test = datasets.FashionMNIST(str(tmp_path / "extracted"), train=False)
    assert tuple(train.data.shape) == (200, 28, 28) and tuple(test.data.shape) == (100, 28, 28)
    assert set(train.targets.tolist()) == set(range(10))
    image, label = train[0]
    assert image.size == (28, 28) and 0 <= label < 10
    # Learnable: classes differ by structure, not just by noise.
    accuracy = _nearest_mean_accuracy(train.data.reshape(200, -1).float().numpy(), train.targets.numpy(),
                                      test.data.reshape(100, -1).float().numpy(), test.targets.numpy())
    assert accuracy > 0.8


def test_fashion_standins_are_deterministic(tmp_path):
    a = standins.write_fashion_mnist(tmp_path / "a", n_train=50, n_test=20, seed=0)
    b = standins.write_fashion_mnist(tmp_path / "b", n_train=50, n_test=20, seed=0)
    c = standins.write_fashion_mnist(tmp_path / "c", n_train=50, n_test=20, seed=1)
    name = standins.FASHION_FILES["train_images"]
    assert standins.md5sum(a / name) == standins.md5sum(b / name) != standins.md5sum(c / name)
    assert standins.read_marker(a)["md5"][name] == standins.md5sum(a / name)


def test_cifar_standins_round_trip_through_torchvision():
    tmp_path = cache_dir() / "standins"  # stand-in markers are trusted only inside the kit's cache
    folder = standins.write_cifar10(tmp_path, n_per_batch=30, n_test=50, seed=0)
    with open(folder / "data_batch_1", "rb") as f:
        batch = pickle.load(f, encoding="latin1")  # how torchvision reads it
    assert batch["data"].shape == (30, 3072) and batch["data"].dtype == np.uint8 and len(batch["labels"]) == 30
    train, test = KitCIFAR10(tmp_path, train=True), KitCIFAR10(tmp_path, train=False)
    assert train.data.shape == (150, 32, 32, 3) and len(test) == 50
    assert train.classes == standins.CIFAR_LABEL_NAMES
    image, label = train[0]
    assert image.size == (32, 32) and 0 <= label < 10
    accuracy = _nearest_mean_accuracy(train.data.reshape(150, -1).astype(float), np.array(train.targets),
                                      test.data.reshape(50, -1).astype(float), np.array(test.targets))
    assert accuracy > 0.8


def test_cifar_standins_use_the_real_meta_when_present(tmp_path, shared_data):
    if not (shared_data / "cifar10-meta" / "batches.meta").is_file():
        pytest.skip("real batches.meta not in the shared data folder")
    folder = standins.write_cifar10(tmp_path, n_per_batch=2, n_test=2)
    assert standins.md5sum(folder / "batches.meta") == datasets.CIFAR10.meta["md5"]


def test_europe_standins_have_the_real_format_and_regions(tmp_path):
    folder = standins.write_europe(tmp_path, n_train=2000, n_val=300, n_test=400, seed=0)
    assert (folder / "train.csv").read_text().splitlines()[0] == ",long,lat,country"
    frames = {name: pd.read_csv(folder / name, index_col=0) for name in standins.EUROPE_FILES}
    assert [len(f) for f in frames.values()] == [2000, 300, 400]
    for frame in frames.values():
        assert frame["long"].between(-10.4, 40.2).all() and frame["lat"].between(34.8, 71.2).all()
        assert set(frame["country"]) == set(range(33))
    train, test = frames["train.csv"], frames["test.csv"]
    accuracy = _nearest_mean_accuracy(train[["long", "lat"]].to_numpy(), train["country"].to_numpy(),
                                      test[["long", "lat"]].to_numpy(), test["country"].to_numpy())
    assert accuracy > 0.8  # each class is a spatial region


def test_smoke_data_root_writes_once(monkeypatch):
    root = standins.smoke_data_root()
    marker = root / "cifar-10-batches-py" / standins.MARKER
    assert (root / "FashionMNIST" / "raw" / standins.MARKER).is_file() and marker.is_file()
    assert (root / "europe-countries" / "train.csv").is_file()
    written = marker.stat().st_mtime_ns
    assert standins.smoke_data_root() == root and marker.stat().st_mtime_ns == written
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no leftover temporary folders


def test_full_size_cifar_standins_are_written_once_and_found_offline(monkeypatch, tmp_path, capsys):
    from helpers import data

    # The real size is 50,000 + 10,000 images; the same code path at a hundredth of it keeps the test fast.
    monkeypatch.setattr(standins, "CIFAR_TRAIN_SIZE", 500)
    monkeypatch.setattr(standins, "CIFAR_TEST_SIZE", 100)
    monkeypatch.setenv("KIT_DATA", str(tmp_path / "empty"))
    monkeypatch.setattr(data, "data_search_roots", lambda: [tmp_path / "empty"])  # no real copy anywhere
    root, real = data.cifar10_or_standins()
    assert not real and "stand-in" in capsys.readouterr().out
    marker = root / "cifar-10-batches-py" / standins.MARKER
    written = marker.stat().st_mtime_ns
    assert data.cifar10_or_standins()[0] == root and marker.stat().st_mtime_ns == written
    splits = data.load_cifar10(root, val_size=50)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (450, 50, 100)

"""Small generated stand-ins for the real data sets, written in the real file formats.

The smoke profile and the tests use them so that nothing needs the real data or the network.
Every writer produces exactly the files torchvision (or the course CSV reader) expects, plus a
marker file ``KIT_STANDIN.json`` listing the md5 of each file: the loaders in ``helpers.data``
recognise stand-ins by it and still detect a corrupted stand-in file. A marker is trusted only inside
the kit's own cache folder (``trusted_marker``): anywhere else, a marker could vouch for any file
(CIFAR-10's batches are pickles), so data folders are always checked against torchvision's checksums.
Images carry class-dependent structure (a fixed template per class plus noise and jitter), so a
model trained on them really learns something.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import pickle
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np

from . import store
from .config import cache_dir, data_search_roots

MARKER = "KIT_STANDIN.json"
FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
CIFAR_TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_FILES = CIFAR_TRAIN_FILES + ["test_batch", "batches.meta"]
CIFAR_LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
EUROPE_FILES = ["train.csv", "validation.csv", "test.csv"]
EUROPE_CLASSES = 33
EUROPE_LONG = (-10.4, 40.2)
EUROPE_LAT = (34.8, 71.2)
# Templates are fixed (independent of ``seed``) so that stand-ins written with different seeds
# still describe the same classes.
_TEMPLATE_SEED = 1234


def md5sum(path: Path) -> str:
    """Return the hex md5 of a file."""
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_marker(folder: Path) -> dict | None:
    """Return the stand-in marker of ``folder`` (a dict with ``md5`` per file), or None for real data."""
    path = Path(folder) / MARKER
    if not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and isinstance(marker.get("md5"), dict) else None


def trusted_marker(folder: Path) -> dict | None:
    """The marker of a stand-in the kit wrote into its cache folder; None anywhere else (a data folder,
    a folder extracted from a user's archive), so that nothing in a data folder says which files to trust."""
    folder = Path(folder).resolve()
    cache = cache_dir().resolve()
    if not folder.is_relative_to(cache) or folder.is_relative_to(cache / "data-mirror"):
        return None
    return read_marker(folder)


def marker_intact(folder: Path) -> bool:
    """True when ``folder`` has a marker and every file it lists is there with the md5 it lists."""
    marker = read_marker(folder)
    if marker is None:
        return False
    return all((Path(folder) / name).is_file() and md5sum(Path(folder) / name) == md5
               for name, md5 in marker["md5"].items())


def _write_marker(folder: Path, dataset: str, files: list[str], seed: int) -> None:
    marker = {"generator": "helpers.standins", "dataset": dataset, "seed": seed,
              "md5": {name: md5sum(folder / name) for name in files}}
    store.write_text(folder / MARKER, json.dumps(marker, indent=1) + "\n")


# --- images ---------------------------------------------------------------------------

def _blob_templates(n_classes: int, size: int, channels: int) -> np.ndarray:
    """One smooth pattern per class (sum of Gaussian blobs), values in [0, 1], shape (C, ch, H, W)."""
    rng = np.random.default_rng(_TEMPLATE_SEED)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    templates = np.zeros((n_classes, channels, size, size))
    for c in range(n_classes):
        for ch in range(channels):
            for _ in range(3):
                cy, cx = rng.uniform(0.15, 0.85, size=2)
                width = rng.uniform(0.08, 0.25)
                templates[c, ch] += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * width**2))
        templates[c] /= templates[c].max()
    return templates


def _class_images(labels: np.ndarray, n_classes: int, size: int, channels: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Images (N, ch, H, W) uint8: class template × random contrast, shifted ±2 px, plus noise."""
    # Vectorised (50,000 CIFAR-size images in seconds), drawing the same random numbers in the same order as
    # a per-image loop would, so the stand-ins stay byte-identical for a seed.
    templates = _blob_templates(n_classes, size, channels)
    offsets = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)]
    # Every class template shifted by every (dy, dx) in ±2 px; each image picks one of them.
    shifted = np.stack([np.roll(templates, offset, axis=(-2, -1)) for offset in offsets], axis=1)
    n = len(labels)
    contrast = rng.uniform(0.6, 1.0, size=(n, 1, 1, 1))
    shifts = rng.integers(-2, 3, size=(n, 2))
    images = shifted[labels, (shifts[:, 0] + 2) * 5 + (shifts[:, 1] + 2)] * contrast
    images += rng.normal(0.0, 0.12, size=images.shape)
    np.clip(images, 0.0, 1.0, out=images)
    images *= 255
    return images.round().astype(np.uint8)


def _balanced_labels(n: int, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Labels with every class present (as far as n allows), in random order."""
    return rng.permutation(np.arange(n) % n_classes).astype(np.int64)


# --- FashionMNIST (IDX files, gzip) ----------------------------------------------------

def _idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array in the IDX format: magic (0, 0, 0x08, ndim), big-endian dims, data."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _write_gz(path: Path, payload: bytes) -> None:
    # mtime=0 makes the files byte-identical for the same seed (stable md5s).
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(payload)


def write_fashion_mnist(root: str | Path, n_train: int = 600, n_test: int = 200, seed: int = 0) -> Path:
    """Write FashionMNIST-format stand-ins (``root/FashionMNIST/raw/*.gz``); return that folder."""
    raw = Path(root) / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = _balanced_labels(n, 10, rng)
        images = _class_images(labels, 10, 28, 1, rng)[:, 0]
        _write_gz(raw / FASHION_FILES[f"{split}_images"], _idx_bytes(images))
        _write_gz(raw / FASHION_FILES[f"{split}_labels"], _idx_bytes(labels.astype(np.uint8)))
    _write_marker(raw, "FashionMNIST", list(FASHION_FILES.values()), seed)
    return raw


# --- CIFAR-10 (python pickles) ----------------------------------------------------------

def _real_cifar_meta() -> Path | None:
    """The real batches.meta where a search root provides it (see shared/datasets/SOURCES.md)."""
    for base in data_search_roots():
        for candidate in (base / "cifar10-meta" / "batches.meta", base / "cifar-10-batches-py" / "batches.meta"):
            if candidate.is_file():
                return candidate
    return None


def _write_cifar_meta(path: Path) -> None:
    real = _real_cifar_meta()
    if real is not None:
        shutil.copyfile(real, path)
        return
    # Same content as the real file; protocol 2 so that Python-2 style readers cope as well.
    meta = {"num_cases_per_batch": 10000, "label_names": CIFAR_LABEL_NAMES, "num_vis": 3072}
    with open(path, "wb") as f:
        pickle.dump(meta, f, protocol=2)


def _write_cifar_batch(path: Path, label: str, n: int, rng: np.random.Generator) -> None:
    labels = _balanced_labels(n, 10, rng)
    images = _class_images(labels, 10, 32, 3, rng)
    batch = {
        "batch_label": label,
        "labels": labels.tolist(),
        "data": images.reshape(n, 3 * 32 * 32),  # row-major R, G, B planes like the real batches
        "filenames": [f"standin_{label.replace(' ', '_')}_{i:05d}.png" for i in range(n)],
    }
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)


def write_cifar10(root: str | Path, n_per_batch: int = 60, n_test: int = 100, seed: int = 0) -> Path:
    """Write CIFAR-10-format stand-ins (``root/cifar-10-batches-py/``); return that folder."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i, name in enumerate(CIFAR_TRAIN_FILES, start=1):
        _write_cifar_batch(folder / name, f"training batch {i} of 5", n_per_batch, rng)
    _write_cifar_batch(folder / "test_batch", "testing batch 1 of 1", n_test, rng)
    _write_cifar_meta(folder / "batches.meta")
    _write_marker(folder, "CIFAR-10", CIFAR_FILES, seed)
    return folder


# --- Europe countries (CSV) --------------------------------------------------------------

def _europe_centres() -> np.ndarray:
    """33 region centres (long, lat) on a jittered 7×5 grid inside the map, fixed across seeds."""
    rng = np.random.default_rng(_TEMPLATE_SEED)
    longs = np.linspace(*EUROPE_LONG, 9)[1:-1]
    lats = np.linspace(*EUROPE_LAT, 7)[1:-1]
    grid = np.array([(lo, la) for la in lats for lo in longs])[:EUROPE_CLASSES]
    step = np.array([longs[1] - longs[0], lats[1] - lats[0]])
    return grid + rng.uniform(-0.25, 0.25, size=grid.shape) * step


def _europe_points(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points labelled by their nearest centre (Voronoi 'countries'), every class equally often."""
    centres = _europe_centres()
    labels = _balanced_labels(n, EUROPE_CLASSES, rng)
    points = np.empty((n, 2))
    todo = np.arange(n)
    spread = np.array([3.5, 3.0])
    while len(todo):
        # Rejection sampling: keep a draw only inside its own class region and the map.
        draw = centres[labels[todo]] + rng.normal(size=(len(todo), 2)) * spread
        nearest = np.argmin(((draw[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
        inside = ((draw[:, 0] >= EUROPE_LONG[0]) & (draw[:, 0] <= EUROPE_LONG[1])
                  & (draw[:, 1] >= EUROPE_LAT[0]) & (draw[:, 1] <= EUROPE_LAT[1]))
        ok = (nearest == labels[todo]) & inside
        points[todo[ok]] = draw[ok]
        todo = todo[~ok]
    return points, labels


def write_europe(root: str | Path, n_train: int = 3000, n_val: int = 500, n_test: int = 500, seed: int = 0) -> Path:
    """Write Europe-countries-format CSV stand-ins (``root/europe-countries/``); return that folder."""
    folder = Path(root) / "europe-countries"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    offset = 0
    for name, n in zip(EUROPE_FILES, (n_train, n_val, n_test)):
        points, labels = _europe_points(n, rng)
        # The real files carry an unnamed row index (an id from the original table), then long, lat, country.
        lines = [",long,lat,country"] + [
            f"{offset + i},{lo:.6f},{la:.6f},{c}" for i, ((lo, la), c) in enumerate(zip(points, labels))]
        (folder / name).write_text("\n".join(lines) + "\n")
        offset += n
    _write_marker(folder, "Europe countries", EUROPE_FILES, seed)
    return folder


# --- the smoke profile's data root --------------------------------------------------------

_SMOKE_WRITERS = {
    "FashionMNIST": (write_fashion_mnist, Path("FashionMNIST") / "raw"),
    "cifar-10-batches-py": (write_cifar10, Path("cifar-10-batches-py")),
    "europe-countries": (write_europe, Path("europe-countries")),
}


def _publish_standin(root: Path, top: str, folder: Path, writer) -> None:
    """Write a stand-in into ``root/top`` unless ``root/folder`` holds an intact one."""
    if marker_intact(root / folder):
        return
    # Missing, or damaged (a file deleted or changed, as the corrupt-file advice says to do): write it
    # afresh into a private folder and rename it into place, so that two processes starting at once
    # never see (or leave) a half-written data set.
    tmp = Path(tempfile.mkdtemp(prefix=f".{top}-", dir=root))
    writer(tmp)
    if not store.publish_dir(tmp / top, root / top) and not marker_intact(root / folder):
        store.publish_dir(tmp / top, root / top, replace=True)  # not a lost race: a broken leftover
    shutil.rmtree(tmp, ignore_errors=True)


def smoke_data_root() -> Path:
    """Return ``cache_dir()/"smoke-data"`` with all stand-ins, writing any that are missing."""
    root = cache_dir() / "smoke-data"
    root.mkdir(parents=True, exist_ok=True)
    for top, (writer, folder) in _SMOKE_WRITERS.items():
        _publish_standin(root, top, folder, writer)
    return root


CIFAR_TRAIN_SIZE, CIFAR_TEST_SIZE = 50_000, 10_000


def cifar10_full_size_root() -> Path:
    """Return ``cache_dir()/"standin-data"`` with CIFAR-10 stand-ins of the real size (50,000 + 10,000), written once.

    For the GPU lab without CIFAR-10: timings and memory depend on the shapes and the file format, not
    on what the pixels show, so these measure the same work as the real set (losses and accuracies do not).
    """
    root = cache_dir() / "standin-data"
    root.mkdir(parents=True, exist_ok=True)
    writer = lambda tmp: write_cifar10(tmp, n_per_batch=CIFAR_TRAIN_SIZE // 5, n_test=CIFAR_TEST_SIZE)  # noqa: E731
    _publish_standin(root, "cifar-10-batches-py", Path("cifar-10-batches-py"), writer)
    return root

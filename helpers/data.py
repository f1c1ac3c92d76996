"""Data sets → tensors, in-memory batches, torchvision loaders, and clear errors when files are missing.

Two ways to feed a model, compared in the performance sheet:

* the fast path: ``load_fashion_mnist()`` etc. decode a data set once into tensors (``Splits``),
  and ``Split.loader()`` slices batches out of memory (``BatchLoader``);
* the ordinary path: ``fashion_mnist_datasets()`` etc. return torchvision ``Dataset`` objects that
  convert every sample on access (``ToTensor`` + ``Normalize``), for a ``torch.utils.data.DataLoader``.

Where files come from (``root=None``): in the smoke profile, generated stand-ins
(``helpers.standins``); otherwise the folders of ``config.data_search_roots()``, then torchvision's
download unless ``KIT_OFFLINE=1``, else a ``DataNotFoundError`` that says what to put where.
Source folders are only read: compressed files are extracted into ``cache_dir()/"data-mirror"``.
"""
from __future__ import annotations

import gzip
import math
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Subset
from torchvision import datasets, transforms

from . import standins, store
from .config import (cache_dir, data_root, data_search_roots, get_profile, number_setting, numpy_rng, offline,
                     torch_generator)

FASHION_CLASSES: list[str] = list(datasets.FashionMNIST.classes)
CIFAR10_CLASSES: list[str] = list(standins.CIFAR_LABEL_NAMES)
FASHION_MEAN, FASHION_STD = 0.286, 0.353
CIFAR10_MEAN, CIFAR10_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
EUROPE_CLASSES: list[str] = [str(i) for i in range(standins.EUROPE_CLASSES)]

# Checksums of the real files, taken from torchvision itself so they stay in step with it.
_FASHION_MD5 = dict(datasets.FashionMNIST.resources)
_CIFAR_MD5 = {name: md5 for name, md5 in datasets.CIFAR10.train_list + datasets.CIFAR10.test_list}
_CIFAR_MD5[datasets.CIFAR10.meta["filename"]] = datasets.CIFAR10.meta["md5"]
_CIFAR_TAR = (datasets.CIFAR10.filename, datasets.CIFAR10.tgz_md5)
_REAL_TRAIN_SIZE = {"FashionMNIST": 60_000, "CIFAR-10": 50_000}


class DataNotFoundError(FileNotFoundError):
    """A data set's files are missing (the message names the folders searched and the files expected)."""


class DataCorruptError(RuntimeError):
    """A data file exists but is damaged (the message names the file and how to fix it)."""


# --- tensors and in-memory batches ----------------------------------------------------------

class BatchLoader:
    """Batches ``(xb, yb)`` sliced from in-memory tensors; reshuffles each epoch with seed + epoch."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool = False, seed: int = 0,
                 device: str | torch.device | None = None, drop_last: bool = False):
        batch_size = number_setting("batch_size", batch_size, integer=True, minimum=1)
        if len(X) != len(y):
            raise ValueError(f"X and y differ in length ({len(X)} vs {len(y)}); pass matching tensors.")
        # Moved once here, so that no batch pays for a host-to-device copy.
        self.X = X.to(device) if device is not None else X
        self.y = y.to(device) if device is not None else y
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last
        self.n_samples = len(X)
        self.epoch = 0

    def __len__(self) -> int:
        """Number of batches per epoch."""
        if self.drop_last:
            return self.n_samples // self.batch_size
        return math.ceil(self.n_samples / self.batch_size)

    def __iter__(self):
        X, y = self.X, self.y
        if self.shuffle:
            # One gather per epoch; afterwards every batch is a slice (a view), whatever the batch size.
            generator = torch_generator(self.seed + self.epoch)
            perm = torch.randperm(self.n_samples, generator=generator).to(X.device)
            X, y = X[perm], y[perm]
        self.epoch += 1
        return _slices(X, y, self.batch_size, len(self) * self.batch_size if self.drop_last else self.n_samples)

    def __repr__(self) -> str:
        return (f"BatchLoader(n_samples={self.n_samples}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"device={self.X.device}, batches={len(self)})")


def _slices(X: torch.Tensor, y: torch.Tensor, batch_size: int, stop: int):
    for start in range(0, stop, batch_size):
        yield X[start:start + batch_size], y[start:start + batch_size]


@dataclass(repr=False)
class Split:
    """One split of a data set as tensors: inputs ``X`` and targets ``y``."""

    X: torch.Tensor
    y: torch.Tensor

    def __post_init__(self):
        if len(self.X) != len(self.y):
            raise ValueError(f"Split needs as many targets as inputs, got X {tuple(self.X.shape)} "
                             f"and y {tuple(self.y.shape)}.")

    def __len__(self) -> int:
        """Number of samples."""
        return len(self.X)

    def __repr__(self) -> str:
        # Never print the tensors themselves: a notebook cell would show megabytes of numbers.
        return (f"Split(n={len(self)}, X={tuple(self.X.shape)} {self.X.dtype}, "
                f"y={tuple(self.y.shape)} {self.y.dtype})")

    def loader(self, batch_size: int, shuffle: bool = False, seed: int = 0,
               device: str | torch.device | None = None, drop_last: bool = False) -> BatchLoader:
        """Return an in-memory BatchLoader over this split."""
        return BatchLoader(self.X, self.y, batch_size, shuffle=shuffle, seed=seed, device=device,
                           drop_last=drop_last)

    def subset(self, n: int, seed: int = 0) -> Split:
        """Return n samples drawn at random (seeded); the whole split when n >= len(self)."""
        if n < 0:
            raise ValueError(f"subset size must be >= 0, got {n}.")
        if n >= len(self):
            return self
        generator = torch_generator(seed)
        idx = torch.randperm(len(self), generator=generator)[:n].sort().values
        return Split(self.X[idx], self.y[idx])


@dataclass(repr=False)
class Splits:
    """A data set's train / validation / test splits with its class names."""

    train: Split
    val: Split
    test: Split
    classes: list[str]
    name: str

    def __repr__(self) -> str:
        return (f"Splits({self.name!r}: train={len(self.train)}, val={len(self.val)}, test={len(self.test)}, "
                f"{len(self.classes)} classes, X {tuple(self.train.X.shape[1:])})")


def make_dataloader(dataset: Dataset, batch_size: int, *, limit: int | None = None, num_workers: int = 0,
                    shuffle: bool = True, seed: int = 0, pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """A torch DataLoader over the first ``limit`` samples of a per-sample Dataset (the course's input path)."""
    if limit is not None:
        dataset = Subset(dataset, range(min(limit, len(dataset))))
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                                       pin_memory=pin_memory, generator=torch_generator(seed))


def split_indices(n: int, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return sorted (train, validation) indices: a seeded random ``val_size`` of ``range(n)`` for validation."""
    if not 0 <= val_size < n:
        raise ValueError(f"val_size must be between 0 and {n - 1} (the training set has {n} samples), "
                         f"got {val_size}.")
    perm = numpy_rng(seed).permutation(n)
    return np.sort(perm[val_size:]), np.sort(perm[:val_size])




def _val_size(val_size: int, n_train: int, dataset: str, standin: bool) -> int:
    """The validation size; on small stand-ins a too-large one becomes the same fraction of the real set."""
    if standin and val_size >= n_train:
        return max(1, round(n_train * val_size / _REAL_TRAIN_SIZE[dataset]))
    return val_size


# --- finding files ----------------------------------------------------------------------------

def _roots(root: str | Path | None, dataset: str) -> list[Path]:
    """The folders to search: the given root; the smoke stand-ins; else config's search roots."""
    if root is not None:
        return [Path(root).expanduser()]
    if get_profile() == "smoke":
        smoke = standins.smoke_data_root()
        print(f"[smoke profile] {dataset}: using generated stand-in data from {smoke} (not the real data set).")
        return [smoke]
    return data_search_roots()


def _find_or_download(root: str | Path | None, dataset: str, find: Callable[[Path], tuple[Path, bool] | None],
                      download: Callable[[Path], object]):
    """Search the roots with ``find``, then try torchvision's download (unless offline).

    Returns (found or None, folders searched, download target, the download's error or None).
    """
    searched = _roots(root, dataset)
    for base in searched:
        found = find(base)
        if found is not None:
            return found, searched, None, None
    target = Path(root).expanduser() if root is not None else data_root()
    error = None
    if not offline():
        try:
            download(target)
            return (target, False), searched, target, None
        except (RuntimeError, OSError, ValueError) as err:  # offline CIFAR-10 raises URLError, an OSError
            error = err
    return None, searched, target, error


def _verify(folder: Path, names: list[str], real_md5: dict[str, str], dataset: str) -> dict[str, str]:
    """Check each file's md5 (a kit stand-in's marker in the cache, else torchvision's); return them."""
    marker = standins.trusted_marker(folder)
    expected = marker["md5"] if marker is not None else real_md5
    source = "the kit's stand-in marker" if marker is not None else "torchvision's checksum list"
    found = {}
    for name in names:
        found[name] = standins.md5sum(folder / name)
        if expected.get(name) not in (None, found[name]):
            raise DataCorruptError(
                f"{dataset}: {folder / name} is corrupt or incomplete (md5 {found[name]}, "
                f"{source} expects {expected[name]}). Delete it and copy the file again "
                f"(or delete it and run once online so torchvision downloads it).")
    return found


def _not_found(dataset: str, searched: list[Path], expected: list[str], target: Path, reason: str,
               how: str) -> DataNotFoundError:
    """The one error for missing files: data set, folders searched, files expected, where to put them."""
    return DataNotFoundError(
        f"{dataset} not found.\n"
        f"  Searched: {', '.join(str(p) for p in searched)}\n"
        f"  Expected files: {', '.join(expected)}\n"
        f"  {reason}\n"
        f"  Fix: put the files into {target} (KIT_DATA sets the data root){how}")


def _download_reason(err: BaseException | None) -> str:
    if err is None:
        return "Download not attempted: offline (KIT_OFFLINE=1)."
    first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"Download failed: {type(err).__name__}: {first_line}"


def _mirror(dataset: str, md5s: dict[str, str]) -> Path:
    """A cache folder for extracted copies, keyed by the source files' content."""
    return cache_dir() / "data-mirror" / f"{dataset}-{store.content_key(sorted(md5s.values()), 12)}"


# --- FashionMNIST --------------------------------------------------------------------------------

_FASHION_GZ = list(_FASHION_MD5)


def _fashion_in(raw: Path) -> tuple[Path, bool] | None:
    """A torchvision root holding FashionMNIST extracted from ``raw`` (in place or mirrored), or None."""
    gz = [raw / name for name in _FASHION_GZ]
    extracted = [raw / name[:-3] for name in _FASHION_GZ]
    standin = standins.trusted_marker(raw) is not None
    _refuse_partial(raw, gz, extracted)
    if all(p.is_file() for p in gz):
        md5s = _verify(raw, _FASHION_GZ, _FASHION_MD5, "FashionMNIST")
        if all(p.is_file() for p in extracted):
            return raw.parent.parent, standin
        return _extract_fashion(raw, md5s), standin
    if all(p.is_file() for p in extracted):
        return raw.parent.parent, standin
    return None


def _refuse_partial(raw: Path, gz: list[Path], extracted: list[Path]) -> None:
    """A folder holding some of the four files but not all: name the missing ones (and never download into it)."""
    have = [g.is_file() or e.is_file() for g, e in zip(gz, extracted)]
    if any(have) and not all(have):
        missing = [g.name for g, ok in zip(gz, have) if not ok]
        raise DataNotFoundError(
            f"FashionMNIST is incomplete in {raw}: missing {', '.join(missing)} (the other files are there). "
            f"Fix: copy the missing file(s) into {raw} (from https://github.com/zalandoresearch/fashion-mnist, "
            "data/fashion/), or delete the folder to use another data root.")


def _extract_fashion(raw: Path, md5s: dict[str, str]) -> Path:
    """Extract the .gz files into the cache mirror (never beside the sources); return its root."""
    base = _mirror("FashionMNIST", md5s)
    out = base / "FashionMNIST" / "raw"
    out.mkdir(parents=True, exist_ok=True)
    for name in _FASHION_GZ:
        target = out / name[:-3]
        if target.is_file():
            continue
        try:
            with gzip.open(raw / name) as src:
                store.copy_stream(src, target)  # a parallel reader never sees half a file
        except (OSError, EOFError) as err:
            raise DataCorruptError(f"FashionMNIST: cannot decompress {raw / name} ({err}). "
                                   "Delete it and copy the file again.") from err
    return base


def _fashion_root(root: str | Path | None) -> tuple[Path, bool]:
    """Return a torchvision root with extracted FashionMNIST files, and whether they are stand-ins."""
    def download(target: Path) -> None:
        datasets.FashionMNIST(str(target), train=True, download=True)
        datasets.FashionMNIST(str(target), train=False, download=True)

    found, searched, target, error = _find_or_download(
        root, "FashionMNIST", lambda base: _fashion_in(base / "FashionMNIST" / "raw"), download)
    if found is not None:
        return found
    raise _not_found(
        "FashionMNIST", [b / "FashionMNIST" / "raw" for b in searched],
        _FASHION_GZ + ["(or the same four files extracted, without .gz)"],
        target / "FashionMNIST" / "raw", _download_reason(error),
        " — from https://github.com/zalandoresearch/fashion-mnist (data/fashion/*.gz) — or run once with "
        "network access and KIT_OFFLINE unset so torchvision downloads them.") from error


def _open_fashion(base: Path, train: bool, transform=None) -> datasets.FashionMNIST:
    """torchvision's FashionMNIST on ``base``, with a clear error if a file cannot be decoded."""
    try:
        ds = datasets.FashionMNIST(str(base), train=train, transform=transform, download=False)
    except (RuntimeError, ValueError, AssertionError, OSError) as err:
        raise DataCorruptError(f"FashionMNIST: the files in {base / 'FashionMNIST' / 'raw'} cannot be read "
                               f"({type(err).__name__}: {err}). Delete them and copy the four .gz files "
                               "again.") from err
    if len(ds.data) != len(ds.targets):
        raise DataCorruptError(f"FashionMNIST: {base / 'FashionMNIST' / 'raw'} holds {len(ds.data)} images but "
                               f"{len(ds.targets)} labels. Delete the files and copy them again.")
    _check_labels(ds.targets, len(FASHION_CLASSES),
                  base / "FashionMNIST" / "raw" / ("train-labels-idx1-ubyte" if train else "t10k-labels-idx1-ubyte"),
                  "FashionMNIST")
    return ds


def _check_labels(labels, n_classes: int, path: Path, dataset: str) -> None:
    """Labels outside 0..n_classes-1 mean a damaged file: a model would train on classes that do not exist."""
    labels = torch.as_tensor(labels)
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        bad = labels[(labels < 0) | (labels >= n_classes)]
        raise DataCorruptError(f"{dataset}: {path} has labels outside 0..{n_classes - 1} (e.g. {bad[0].item()}, "
                               f"{len(bad)} in all). Delete it and copy the file again.")


def _image_split(images: torch.Tensor, labels: torch.Tensor, idx: np.ndarray | None, mean, std,
                 normalize: bool) -> Split:
    """uint8 images (N, C, H, W) → a Split of float32 in [0, 1], then (x − mean) / std when asked."""
    if idx is not None:
        # Select while still uint8: a quarter of the bytes to move compared with float32.
        index = torch.from_numpy(idx)
        images, labels = images[index], labels[index]
    x = images.to(torch.float32).div_(255)
    if normalize:
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        x.sub_(mean_t).div_(std_t)
    return Split(x.contiguous(), labels)


def load_fashion_mnist(root: str | Path | None = None, val_size: int = 10_000, seed: int = 0,
                       normalize: bool = True) -> Splits:
    """Load FashionMNIST as tensors: X float32 (N, 1, 28, 28), seeded validation split of the training images."""
    base, standin = _fashion_root(root)
    train, test = _open_fashion(base, True), _open_fashion(base, False)
    images, labels = train.data[:, None], train.targets.to(torch.int64)
    tr, va = split_indices(len(images), _val_size(val_size, len(images), "FashionMNIST", standin), seed)
    stats = ((FASHION_MEAN,), (FASHION_STD,), normalize)
    return Splits(_image_split(images, labels, tr, *stats), _image_split(images, labels, va, *stats),
                  _image_split(test.data[:, None], test.targets.to(torch.int64), None, *stats),
                  list(FASHION_CLASSES), "FashionMNIST")


def fashion_mnist_datasets(root: str | Path | None = None, val_size: int = 10_000, seed: int = 0,
                           transform: Callable | None = None) -> tuple[Dataset, Dataset, Dataset]:
    """Return torchvision (train, val, test) datasets converting per sample; same split as load_fashion_mnist."""
    if transform is None:
        transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((FASHION_MEAN,), (FASHION_STD,))])
    base, standin = _fashion_root(root)
    train, test = _open_fashion(base, True, transform), _open_fashion(base, False, transform)
    tr, va = split_indices(len(train), _val_size(val_size, len(train), "FashionMNIST", standin), seed)
    return Subset(train, tr.tolist()), Subset(train, va.tolist()), test


# --- CIFAR-10 ------------------------------------------------------------------------------------

_CIFAR_FILES = list(standins.CIFAR_FILES)


class KitCIFAR10(datasets.CIFAR10):
    """torchvision's CIFAR10 that also accepts the kit's own stand-ins; every other folder keeps torchvision's checks.

    CIFAR-10's file format is Python pickle, and unpickling a file can run code. That is safe here because
    no batch is opened before its md5 matches a list the kit trusts: torchvision's published checksums
    (its ``train_list``/``test_list``/``meta``, checked by ``CIFAR10.__init__`` before it unpickles), or,
    for a stand-in, the marker the kit wrote into its own cache folder (``standins.trusted_marker``).
    A marker found anywhere else is ignored, so a data folder can never vouch for its own files.
    """

    def __init__(self, root: str | Path, train: bool = True, transform=None, target_transform=None,
                 download: bool = False):
        marker = standins.trusted_marker(Path(root) / self.base_folder)
        if marker is not None:
            md5 = marker["md5"]
            # Instance attributes shadow the class's checksum lists for this object only.
            self.train_list = [[name, md5.get(name, "-")] for name, _ in datasets.CIFAR10.train_list]
            self.test_list = [[name, md5.get(name, "-")] for name, _ in datasets.CIFAR10.test_list]
            self.meta = {**datasets.CIFAR10.meta, "md5": md5.get("batches.meta", "-")}
        super().__init__(str(root), train=train, transform=transform, target_transform=target_transform,
                         download=download)


def _cifar_in(base: Path) -> tuple[Path, bool] | None:
    """A torchvision root holding CIFAR-10 batches found under ``base`` (in place or mirrored), or None."""
    folder = base / "cifar-10-batches-py"
    if all((folder / name).is_file() for name in _CIFAR_FILES):
        return base, standins.trusted_marker(folder) is not None
    tar_name, tar_md5 = _CIFAR_TAR
    if (base / tar_name).is_file():
        md5s = _verify(base, [tar_name], {tar_name: tar_md5}, "CIFAR-10")
        mirror = _mirror("CIFAR-10", md5s)
        if not all((mirror / "cifar-10-batches-py" / name).is_file() for name in _CIFAR_FILES):
            _extract_tar(base / tar_name, mirror)
        return mirror, False  # extracted from an archive checked against torchvision's md5: real data
    return None


def _extract_tar(archive: Path, mirror: Path) -> None:
    """Extract the CIFAR-10 archive into the cache mirror, via a private folder renamed into place."""
    mirror.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=mirror))
    # The "data" filter refuses absolute paths and links out of the folder (Python ≥ 3.10.12 / 3.11.4).
    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, **safe)
        store.publish_dir(tmp / "cifar-10-batches-py", mirror / "cifar-10-batches-py", replace=True)
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataCorruptError(f"CIFAR-10: cannot extract {archive} ({err}). Delete it and copy it again.") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _cifar_root(root: str | Path | None) -> tuple[Path, bool]:
    """Return a torchvision root with the CIFAR-10 batches, and whether they are stand-ins."""
    found, searched, target, error = _find_or_download(
        root, "CIFAR-10", _cifar_in, lambda target: KitCIFAR10(target, train=True, download=True))
    if found is not None:
        return found
    raise _not_found(
        "CIFAR-10", [b / "cifar-10-batches-py" for b in searched],
        [f"cifar-10-batches-py/{{{','.join(_CIFAR_FILES)}}}", f"or {_CIFAR_TAR[0]} (md5 {_CIFAR_TAR[1]})"],
        target, _download_reason(error),
        " — from https://www.cs.toronto.edu/~kriz/cifar.html (CIFAR-10 python version) — or run once with "
        "network access and KIT_OFFLINE unset so torchvision downloads it.") from error


def cifar10_or_standins() -> tuple[Path, bool]:
    """The CIFAR-10 root to use and whether it is the real set; full-size stand-ins when it is missing. Prints which.

    For measurements of speed and memory (the GPU lab): those depend on the images' size and format, not
    on what they show. Anything that needs the real pixels (losses, accuracies) must use ``load_cifar10``.
    """
    try:
        base, standin = _cifar_root(None)
    except DataNotFoundError as err:
        reason = _download_reason(err.__cause__).removesuffix(".")
        base, standin = standins.cifar10_full_size_root(), True
        print(f"CIFAR-10 not found ({reason}).\nUsing 50,000 generated stand-in images of the real size and "
              "format:\ntimings and memory are valid; losses and accuracies are not.")
        return base, False
    if standin:
        print("CIFAR-10: small generated stand-ins (smoke profile).\nTimings, losses and accuracies are not valid.")
    else:
        print("CIFAR-10: the real data set.")
    return base, not standin


def _open_cifar(base: Path, train: bool, transform=None) -> KitCIFAR10:
    """KitCIFAR10 on ``base``; on a failed checksum, an error naming the damaged file."""
    try:
        return KitCIFAR10(base, train=train, transform=transform)
    except RuntimeError as err:
        folder = base / "cifar-10-batches-py"
        _verify(folder, _CIFAR_FILES, _CIFAR_MD5, "CIFAR-10")  # raises, naming the file, when one is damaged
        raise DataCorruptError(f"CIFAR-10: the files in {folder} cannot be read ({err}). "
                               "Delete the folder and copy it again.") from err


def load_cifar10(root: str | Path | None = None, val_size: int = 5_000, seed: int = 0,
                 normalize: bool = True) -> Splits:
    """Load CIFAR-10 as tensors: X float32 (N, 3, 32, 32), normalised with (0.5, 0.5, 0.5)."""
    base, standin = _cifar_root(root)
    train, test = _open_cifar(base, True), _open_cifar(base, False)
    for ds, name in ((train, "data_batch_*"), (test, "test_batch")):
        _check_labels(ds.targets, len(CIFAR10_CLASSES), base / "cifar-10-batches-py" / name, "CIFAR-10")
    # torchvision keeps CIFAR images as HWC uint8; models want CHW.
    images, labels = torch.from_numpy(train.data).permute(0, 3, 1, 2), torch.tensor(train.targets, dtype=torch.int64)
    tr, va = split_indices(len(images), _val_size(val_size, len(images), "CIFAR-10", standin), seed)
    stats = (CIFAR10_MEAN, CIFAR10_STD, normalize)
    test_images = torch.from_numpy(test.data).permute(0, 3, 1, 2)
    return Splits(_image_split(images, labels, tr, *stats), _image_split(images, labels, va, *stats),
                  _image_split(test_images, torch.tensor(test.targets, dtype=torch.int64), None, *stats),
                  list(train.classes), "CIFAR-10")


def cifar10_datasets(root: str | Path | None = None, val_size: int = 5_000, seed: int = 0,
                     transform: Callable | None = None) -> tuple[Dataset, Dataset, Dataset]:
    """Return torchvision (train, val, test) CIFAR-10 datasets converting per sample; same split as load_cifar10."""
    if transform is None:
        transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD)])
    base, standin = _cifar_root(root)
    train, test = _open_cifar(base, True, transform), _open_cifar(base, False, transform)
    tr, va = split_indices(len(train), _val_size(val_size, len(train), "CIFAR-10", standin), seed)
    return Subset(train, tr.tolist()), Subset(train, va.tolist()), test


# --- Europe countries ----------------------------------------------------------------------------

_EUROPE_FILES = list(standins.EUROPE_FILES)


def _europe_folder(root: str | Path | None) -> Path:
    """The folder holding train/validation/test.csv: ``<root>/europe-countries`` or the root itself."""
    searched = _roots(root, "Europe countries")
    for base in searched:
        for folder in (base / "europe-countries", base):
            if all((folder / name).is_file() for name in _EUROPE_FILES):
                return folder
    target = (Path(root).expanduser() if root is not None else data_root()) / "europe-countries"
    raise _not_found(
        "Europe countries", [b / "europe-countries" for b in searched], _EUROPE_FILES, target,
        "There is no download: the files come with the course material.",
        " — the course's europe-countries CSVs, header ',long,lat,country'.")


def _read_europe_csv(path: Path) -> Split:
    """One CSV → Split with X float32 (N, 2) [long, lat] and y int64; a clear error when malformed."""
    fix = "Delete it and copy the course's file again."
    try:
        frame = pd.read_csv(path, index_col=0)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise DataCorruptError(f"Europe countries: cannot parse {path} ({err}). {fix}") from err
    if list(frame.columns) != ["long", "lat", "country"]:
        raise DataCorruptError(f"Europe countries: {path} has columns {list(frame.columns)}, expected the header "
                               f"',long,lat,country'. {fix}")
    if frame.empty:
        raise DataCorruptError(f"Europe countries: {path} has a header but no rows. {fix}")
    values = frame.apply(pd.to_numeric, errors="coerce")
    labels = values["country"]
    if values.isna().any().any() or (labels % 1 != 0).any() or not labels.between(0, len(EUROPE_CLASSES) - 1).all():
        raise DataCorruptError(f"Europe countries: {path} has empty or non-numeric cells or labels outside "
                               f"0..{len(EUROPE_CLASSES) - 1}. {fix}")
    X = torch.tensor(values[["long", "lat"]].to_numpy(np.float32))
    return Split(X, torch.tensor(labels.to_numpy(np.int64)))


# The CSVs carry integer labels only. Our reading: they number the 33 countries in alphabetical order of their
# English names (13 = Great Britain, i.e. the United Kingdom). ``capital_labels`` tests it on the data itself.
EUROPE_COUNTRIES: list[str] = [
    "Albania", "Austria", "Belarus", "Belgium", "Bosnia and Herzegovina", "Bulgaria", "Croatia", "Czechia",
    "Denmark", "Estonia", "Finland", "France", "Germany", "Great Britain", "Greece", "Hungary", "Ireland", "Italy",
    "Latvia", "Lithuania", "Moldova", "Montenegro", "Netherlands", "Norway", "Poland", "Portugal", "Romania",
    "Serbia", "Slovakia", "Slovenia", "Spain", "Sweden", "Ukraine"]
# (longitude, latitude) of each country's capital, in the same order.
EUROPE_CAPITALS: list[tuple[float, float]] = [
    (19.82, 41.33), (16.37, 48.21), (27.56, 53.90), (4.35, 50.85), (18.41, 43.86), (23.32, 42.70), (15.98, 45.81),
    (14.44, 50.08), (12.57, 55.68), (24.75, 59.44), (24.94, 60.17), (2.35, 48.86), (13.40, 52.52), (-0.13, 51.51),
    (23.73, 37.98), (19.04, 47.50), (-6.26, 53.35), (12.50, 41.90), (24.11, 56.95), (25.28, 54.69), (28.86, 47.01),
    (19.26, 42.44), (4.90, 52.37), (10.75, 59.91), (21.01, 52.23), (-9.14, 38.72), (26.10, 44.43), (20.46, 44.79),
    (17.11, 48.15), (14.51, 46.06), (-3.70, 40.42), (18.07, 59.33), (30.52, 50.45)]


def capital_labels(split: Split, k: int = 15) -> list[int]:
    """The most common label among the ``k`` points nearest each capital of EUROPE_CAPITALS."""
    capitals = torch.tensor(EUROPE_CAPITALS, dtype=split.X.dtype)
    nearest = torch.cdist(capitals, split.X).topk(min(k, len(split)), largest=False).indices
    return [int(torch.mode(split.y[idx]).values) for idx in nearest]


def load_europe(root: str | Path | None = None) -> Splits:
    """Load the Europe countries CSVs: X float32 (N, 2) columns [long, lat], y int64 in 0..32."""
    folder = _europe_folder(root)
    train, val, test = (_read_europe_csv(folder / name) for name in _EUROPE_FILES)
    return Splits(train, val, test, list(EUROPE_CLASSES), "Europe countries")

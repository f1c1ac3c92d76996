"""Where and how much: run profile, data root, results cache, seeding.

Cheap to import (no torch at import time): the exporter reads the profile from here.
The device lives in ``helpers.device``.
"""
from __future__ import annotations

import math
import numbers
import os
import random
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO_ROOT = Path(__file__).resolve().parent.parent
PROFILES = ("smoke", "quick", "full")
DEFAULT_PROFILE = "quick"
SEED_ENV = "KIT_SEED"
_SEEDS: list[int] = []


def get_profile(profile: str | None = None) -> str:
    """Return the run profile: the argument, else ``KIT_PROFILE``, else ``quick``."""
    name = (profile or os.environ.get("KIT_PROFILE") or DEFAULT_PROFILE).strip().lower()
    if name not in PROFILES:
        raise ValueError(
            f"Unknown run profile {name!r} (from KIT_PROFILE or the profile argument); "
            f"choose one of {', '.join(PROFILES)}."
        )
    return name


def data_root() -> Path:
    """Return the data root: ``KIT_DATA``, else ``<repo>/data``."""
    return Path(os.environ.get("KIT_DATA") or REPO_ROOT / "data").expanduser()


def data_search_roots() -> list[Path]:
    """Return the folders searched for data sets, the data root first."""
    roots = [data_root()]
    # The course machines provide read-only copies in a shared/ folder beside the repo.
    shared = REPO_ROOT.parent / "shared" / "datasets"
    extra = os.environ.get("KIT_SHARED_DATA")
    for candidate in ([Path(extra)] if extra else []) + [shared]:
        if candidate.is_dir() and candidate not in roots:
            roots.append(candidate)
    return roots


class CacheDirError(OSError):
    """The results cache (KIT_CACHE) is not a writable folder."""


def cache_dir() -> Path:
    """Return (and create) the results cache: ``KIT_CACHE``, else ``<repo>/.cache``."""
    path = Path(os.environ.get("KIT_CACHE") or REPO_ROOT / ".cache").expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        problem = "is a file, not a folder" if path.exists() else f"cannot be created ({err.strerror})"
    else:
        problem = None if os.access(path, os.W_OK | os.X_OK) else "is not writable"
    if problem is not None:
        raise CacheDirError(f"The results cache {path} {problem}. Fix: set KIT_CACHE to a folder you can write "
                            f"(it is created if missing), or unset it to use {REPO_ROOT / '.cache'}.")
    return path


def offline() -> bool:
    """Return True when downloads must not be attempted (``KIT_OFFLINE=1``)."""
    return os.environ.get("KIT_OFFLINE", "").strip().lower() in {"1", "true", "yes"}


# --- seeds: KIT_SEED shifts every seed a sheet uses ------------------------------------------------
# A sheet names its seeds (0, 1, ...); the kit turns a named seed into random numbers in the functions below
# (seed_everything, numpy_rng, torch_generator), and only there is KIT_SEED added (shifted_seed). So a whole
# sheet runs on other draws by one setting, a training function handed seed=s by run_grid still calls
# seed_everything(s) (shifted once, never twice), and the run record keeps the names (seeds_used) beside
# the offset. KIT_SEED=0, the default, is exactly the sheets' own seeds.
def seed_offset() -> int:
    """``KIT_SEED``: the integer added to every seed a sheet uses (default 0: the sheets' own seeds)."""
    raw = os.environ.get(SEED_ENV, "").strip()
    try:
        offset = int(raw) if raw else 0
    except ValueError:
        offset = -1
    if offset < 0:   # numpy refuses negative seeds: say so here, not deep inside a training run
        raise ValueError(f"{SEED_ENV} must be a whole number >= 0 (the offset added to every seed a sheet uses); "
                         f"got {raw!r}. Fix: set {SEED_ENV}=1 (or 2, ...), or unset it for the sheets' own seeds.")
    return offset


def shifted_seed(seed: int) -> int:
    """The seed the random generators get for a sheet's ``seed``: ``seed + KIT_SEED`` (the one place it is added)."""
    return int(seed) + seed_offset()


@contextmanager
def seed_offset_as(offset: int) -> Iterator[None]:
    """Run the block with ``KIT_SEED=offset`` (a grid's worker takes the offset of the process that sent the run)."""
    before = os.environ.get(SEED_ENV)
    os.environ[SEED_ENV] = str(int(offset))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(SEED_ENV, None)
        else:
            os.environ[SEED_ENV] = before


def with_seed_offset(payload: dict) -> dict:
    """A cache key's payload, plus the seed offset when it is not 0: KIT_SEED=0 keeps every key as it was."""
    offset = seed_offset()
    return payload if offset == 0 else {**payload, "seed_offset": offset}


def numpy_rng(seed: int):
    """A numpy ``Generator`` for the sheet's ``seed`` (shifted by ``KIT_SEED``)."""
    import numpy as np

    return np.random.default_rng(shifted_seed(seed))


def torch_generator(seed: int):
    """A CPU ``torch.Generator`` for the sheet's ``seed`` (shifted by ``KIT_SEED``)."""
    import torch

    return torch.Generator().manual_seed(shifted_seed(seed))


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch with the sheet's ``seed`` shifted by ``KIT_SEED``; optionally ask torch for
    deterministic kernels."""
    import numpy as np
    import torch  # here, not at the top: importing config must stay cheap

    if seed not in _SEEDS:   # the run record lists the seeds a sheet set, by their names (the offset beside them)
        _SEEDS.append(int(seed))
    seed = shifted_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def seeds_used() -> list[int]:
    """The seeds ``seed_everything`` has set in this process, in order, each once."""
    return list(_SEEDS)


def note_seeds(seeds) -> None:
    """Count seeds that ``seed_everything`` set in another process for this one (a grid's worker) as used here."""
    for seed in seeds:
        if int(seed) not in _SEEDS:
            _SEEDS.append(int(seed))


def number_setting(name: str, value, *, integer: bool = False, minimum: float | None = None,
                   above: float | None = None) -> int | float:
    """A finite number (numpy scalars welcome, bools and strings not) as a Python int/float, or a ValueError naming ``name``."""
    kind = numbers.Integral if integer else numbers.Real
    what = "an integer" if integer else "a finite number"
    # bool is an int to Python, but lr=True is a slip, not a learning rate of 1.
    if isinstance(value, bool) or type(value).__name__ == "bool_" or not isinstance(value, kind):
        raise ValueError(f"{name} must be {what}; got {value!r} ({type(value).__name__}).")
    value = int(value) if integer else float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be {what}; got {value!r}.")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value!r}.")
    if above is not None and not value > above:
        raise ValueError(f"{name} must be > {above}; got {value!r}.")
    return value

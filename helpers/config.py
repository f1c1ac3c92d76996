"""Where and how much: run profile, data root, results cache, seeding.

Cheap to import (no torch at import time): the exporter reads the profile from here.
The device lives in ``helpers.device``.
"""
from __future__ import annotations

import math
import numbers
import os
import random
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROFILES = ("smoke", "quick", "full")
DEFAULT_PROFILE = "quick"
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


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch; optionally ask torch for deterministic kernels."""
    import numpy as np
    import torch  # here, not at the top: importing config must stay cheap

    if seed not in _SEEDS:   # the run record lists the seeds a sheet set
        _SEEDS.append(int(seed))
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

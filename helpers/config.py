"""Where and how much: run profile, data root, results cache, seeding.

Cheap to import (no torch at import time): the exporter reads the profile from here.
The device lives in ``helpers.device``.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROFILES = ("smoke", "quick", "full")
DEFAULT_PROFILE = "quick"


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


def cache_dir() -> Path:
    """Return (and create) the results cache: ``KIT_CACHE``, else ``<repo>/.cache``."""
    path = Path(os.environ.get("KIT_CACHE") or REPO_ROOT / ".cache").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def offline() -> bool:
    """Return True when downloads must not be attempted (``KIT_OFFLINE=1``)."""
    return os.environ.get("KIT_OFFLINE", "").strip().lower() in {"1", "true", "yes"}


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch; optionally ask torch for deterministic kernels."""
    import numpy as np
    import torch  # here, not at the top: importing config must stay cheap

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

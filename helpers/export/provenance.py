"""Where a run came from: kit version, git commit (and whether the tree was dirty), package versions.

Read from package metadata and ``git``, never by importing torch: the exporter records this for
every executed sheet, and the submission bundle's manifest repeats it.
"""
from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

from ..config import REPO_ROOT

KIT_DISTRIBUTION = "dl-course-kit"
PACKAGES = ("torch", "torchvision", "numpy", "pandas", "matplotlib", "scikit-learn", "optuna",
            "nbclient", "nbconvert", "ipykernel")


def package_version(name: str) -> str | None:
    """Installed version of a distribution, or None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_state(root: Path = REPO_ROOT) -> dict[str, object]:
    """The commit checked out at ``root`` and whether tracked files differ from it."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Python's version and each package's installed version."""
    return {"python": platform.python_version(), **{name: package_version(name) for name in packages}}


def kit_version() -> str | None:
    """The kit's own version (its installed distribution)."""
    return package_version(KIT_DISTRIBUTION)


def kit_label() -> str:
    """The kit's version and short commit for a title block, e.g. '0.1.0 (git 0b12321)'."""
    commit = git_state()["commit"]
    number = kit_version() or "unknown"
    return f"{number} (git {commit[:7]})" if commit else number


def environment() -> dict[str, object]:
    """Kit version, git state and package versions, as JSON-ready data."""
    return {"kit_version": kit_version(), "git": git_state(), "versions": versions(),
            "platform": platform.platform(terse=True)}

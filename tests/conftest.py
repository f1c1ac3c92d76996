"""Shared test setup: offline, a private cache, and where the real data sets are."""
from __future__ import annotations

import itertools
import linecache
import os
from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
# Tests never touch the network: downloads fail fast with the kit's own message.
os.environ["KIT_OFFLINE"] = "1"

_SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SHARED_DATA = Path(os.environ.get("KIT_SHARED_DATA") or _SHARED)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    """Give every test its own results cache and a non-smoke profile unless it sets one; grids train in the test's
    process (KIT_THREADS=1: one worker) unless a test asks for workers (n_jobs=, or it unsets KIT_THREADS)."""
    monkeypatch.setenv("KIT_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("KIT_PROFILE", raising=False)
    monkeypatch.setenv("KIT_THREADS", "1")
    monkeypatch.delenv("KIT_SCHEDULER", raising=False)


@pytest.fixture
def shared_data() -> Path:
    """The real data sets (FashionMNIST, Europe countries), skipping where absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data sets not found at {SHARED_DATA} (set KIT_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def one_thread():
    """Tiny tensors: a second intra-op thread only adds hand-off cost (and contention on shared machines)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Notebook:
    """Runs code the way a Jupyter kernel runs a cell: in one ``__main__`` namespace, its lines kept in linecache."""

    _cells = itertools.count()

    def __init__(self, **names):
        self.namespace = {"__name__": "__main__", **names}

    def run(self, source: str) -> dict:
        """Execute one cell; return the namespace (functions defined in it read their source like a kernel's)."""
        filename = f"<notebook cell {next(self._cells)}>"
        # ipykernel does the same: mtime None keeps linecache.checkcache from dropping the cell's lines.
        linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
        exec(compile(source, filename, "exec"), self.namespace)
        return self.namespace

    def __getitem__(self, name: str):
        return self.namespace[name]


@pytest.fixture
def notebook() -> Notebook:
    """A fresh notebook namespace (see Notebook)."""
    return Notebook()

"""The export's cache: a sheet whose inputs did not change is neither executed nor printed again.

Two keys, both sha256 hex digests:

**Execution key** (``execution_key``): whether the stored executed notebook is still this sheet's run.
  - the notebook's code cells, in order (their source only: markdown, outputs and cell metadata do
    not count);
  - the kit's sources: ``store.kit_digest()`` (every ``.py``/``.toml`` file under ``helpers/`` but
    ``export/``: the digest the run and sweep caches key on too, through ``store.callable_identity``)
    and the export's ``execute.py`` (printing and bundling cannot change what a kernel computes);
  - the run profile;
  - the data the sheets read, fingerprinted cheaply: relative path, size and mtime of every file under
    the data roots that exist (``config.data_search_roots()``);
  - Python's version and the installed torch, torchvision and numpy versions (package metadata; nothing
    is imported).

**Rendering key** (``render_key``): whether the stored PDF is still this notebook's print.
  - the execution key, every cell of the notebook (markdown included, with its metadata), the
    notebook's name, the route (webpdf/latex) and every source of ``helpers/export/``.

An unchanged sheet reuses its PDF; a sheet whose markdown alone changed is printed again from the
stored outputs (the new markdown spliced in), without a kernel; ``--force`` executes again.

Layout, under ``<KIT_CACHE>/export/<execution key>/``: ``executed.ipynb`` (the run, record cell
included) and, per rendering, ``<render key>.ipynb`` (as printed), ``.pdf`` and ``.json`` (pages).
Entries are JSON, ipynb and PDF only, never pickles, and every file is written atomically (helpers.store).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import store
from ..config import REPO_ROOT, cache_dir, data_search_roots, get_profile, with_seed_offset
from .provenance import package_version

HELPERS = REPO_ROOT / "helpers"
EXPORT = HELPERS / "export"
RUNTIME_PACKAGES = ("torch", "torchvision", "numpy")
EXECUTED = "executed.ipynb"


@dataclass(frozen=True)
class Keys:
    """The two cache keys of one notebook."""

    execution: str
    render: str


def read_notebook_json(path: Path) -> dict[str, Any]:
    """The notebook file as plain JSON (no nbformat: a cache hit must not pay for its import)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def keys(path: Path, profile: str | None = None, via: str = "webpdf", pagebreaks: bool = False) -> Keys:
    """Execution and rendering keys of the notebook at ``path``."""
    nb = read_notebook_json(path)
    execution = _digest(with_seed_offset({
        "code": [cell_source(c) for c in nb.get("cells", []) if c.get("cell_type") == "code"],
        "kit": [store.kit_digest(HELPERS), _tree_digest([EXPORT / "execute.py"])],
        "profile": get_profile(profile),
        "data": data_fingerprint(),
        "runtime": _runtime_versions(),
    }))
    render = _digest({
        "execution": execution,
        "cells": [{k: c.get(k) for k in ("cell_type", "source", "metadata", "attachments")} for c in nb.get("cells", [])],
        "name": Path(path).stem,
        "via": via,
        "pagebreaks": bool(pagebreaks),
        "export": _tree_digest(sorted(EXPORT.glob("*.py"))),
    })
    return Keys(execution, render)


def data_fingerprint() -> str:
    """Digest of (path, size, mtime) of every file under the data roots that exist."""
    h = hashlib.sha256()
    for root in data_search_roots():
        if not root.is_dir():
            continue
        h.update(f"root\t{root.resolve()}\n".encode())
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(files):
                full = Path(folder) / name
                try:
                    st = full.stat()
                except OSError:
                    continue
                h.update(f"{full.relative_to(root)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def entry_dir(execution_key: str) -> Path:
    """The cache folder of one execution."""
    return cache_dir() / "export" / execution_key


def executed_notebook(execution_key: str) -> Path | None:
    """The stored executed notebook for this key, or None."""
    path = entry_dir(execution_key) / EXECUTED
    return path if path.is_file() else None


def rendering(k: Keys) -> tuple[Path, Path, dict] | None:
    """The stored (notebook, PDF, info) printed for these keys, or None."""
    folder = entry_dir(k.execution)
    nb, pdf, info = (folder / f"{k.render}{ext}" for ext in (".ipynb", ".pdf", ".json"))
    if not (nb.is_file() and pdf.is_file() and info.is_file()):
        return None
    try:
        return nb, pdf, json.loads(info.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None   # a damaged entry is a miss, printed again


def store_execution(execution_key: str, notebook: bytes) -> Path:
    """Store an executed notebook under its key (replacing an older run, e.g. after --force)."""
    folder = entry_dir(execution_key)
    if folder.exists():
        # Renderings of the older run would pair its PDFs with this run's notebook.
        for old in folder.iterdir():
            if old.name != EXECUTED:
                old.unlink(missing_ok=True)
    return store.write_bytes(folder / EXECUTED, notebook)


def store_rendering(k: Keys, notebook: bytes, pdf: bytes, info: dict) -> None:
    """Store one rendering; its info file is written last, so a half-stored rendering is a miss."""
    folder = entry_dir(k.execution)
    store.write_bytes(folder / f"{k.render}.ipynb", notebook)
    store.write_bytes(folder / f"{k.render}.pdf", pdf)
    store.write_bytes(folder / f"{k.render}.json", json.dumps(info).encode())


def splice(executed: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """The current notebook with each code cell's outputs taken from the executed run, in order.

    The execution key guarantees the code cells are the same, so only markdown (and cell metadata)
    differ; cells the exporter appended (the run record) stay at the end.
    """
    ran = [c for c in executed["cells"] if c.get("cell_type") == "code" and not _appended(c)]
    code = [c for c in current["cells"] if c.get("cell_type") == "code"]
    if [cell_source(c) for c in ran] != [cell_source(c) for c in code]:
        raise ValueError("the stored run's code cells differ from the notebook's; execute it again (--force)")
    outputs = iter(ran)
    cells = []
    for cell in current["cells"]:
        cell = dict(cell)
        if cell.get("cell_type") == "code":
            old = next(outputs)
            cell["outputs"], cell["execution_count"] = old.get("outputs", []), old.get("execution_count")
            cell["metadata"] = {**cell.get("metadata", {}), **({"kit": old["metadata"]["kit"]}
                                                               if "kit" in old.get("metadata", {}) else {})}
        cells.append(cell)
    cells += [c for c in executed["cells"] if _appended(c)]
    return {**executed, "cells": cells, "metadata": {**current.get("metadata", {}), **{
        k: v for k, v in executed.get("metadata", {}).items() if k in ("kit", "widgets", "language_info")}}}


def _appended(cell: dict) -> bool:
    """Whether the exporter appended this cell (the run record)."""
    return bool(cell.get("metadata", {}).get("kit", {}).get("run_record"))


def cell_source(cell: dict) -> str:
    """A cell's source as one string (ipynb files may store it as a list of lines)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _tree_digest(files: list[Path]) -> str:
    """Digest of the files' names (relative to helpers/) and contents."""
    h = hashlib.sha256()
    for path in files:
        h.update(f"{path.relative_to(HELPERS)}\n".encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _runtime_versions() -> dict[str, str | None]:
    """Python's and the numerical packages' versions, from metadata (no import)."""
    return {"python": sys.version.split()[0], **{name: package_version(name) for name in RUNTIME_PACKAGES}}


def _digest(payload: dict[str, Any]) -> str:
    """sha256 of a canonical JSON form."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def clear(execution_key: str) -> None:
    """Forget one execution (tests, and a damaged entry)."""
    shutil.rmtree(entry_dir(execution_key), ignore_errors=True)

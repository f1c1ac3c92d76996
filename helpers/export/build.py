"""One sheet from notebook to PDF through the export cache: reuse, print again, or execute.

``plan`` says which of the three a sheet needs (see ``helpers.export.cache`` for the keys):

- ``cached``: nothing changed; the stored notebook and PDF are copied to the output folder.
- ``reprinted``: only markdown (or cell metadata, or the renderer) changed; the stored outputs are
  spliced into the current notebook and printed again, without a kernel.
- ``executed``: code, ``helpers/``, the profile or the data changed (or ``--force``); the sheet runs.

Every printed PDF carries the sha256 of the notebook beside it (``bundle.stamp_pdf``). For each
sheet the output folder gets ``<name>.ipynb``, ``<name>.pdf`` and ``<name>.run.json`` (the run
record: profile, device, wall time, runs, claim checks, reference rows).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import store
from . import cache
from .bundle import sha256, stamp_pdf

CACHED, REPRINTED, EXECUTED = "cached", "reprinted", "executed"
# (executed notebook, its path, route) -> PDF bytes; the command line passes its printer.
Renderer = Callable[[Any, Path, str], bytes]


@dataclass
class Built:
    """The files one sheet left in the output folder, and how they were made."""

    notebook: Path
    pdf: Path
    record: Path | None
    pages: int
    how: str


def plan(path: Path, profile: str | None = None, via: str = "webpdf", force: bool = False,
         pagebreaks: bool = False) -> str:
    """What exporting ``path`` will take: 'cached', 'reprinted' or 'executed'."""
    if force:
        return EXECUTED
    k = cache.keys(path, profile, via, pagebreaks)
    if cache.rendering(k) is not None:
        return CACHED
    return REPRINTED if cache.executed_notebook(k.execution) else EXECUTED


def build_sheet(path: Path, out_dir: Path, render: Renderer, *, profile: str | None = None, via: str = "webpdf",
                timeout: int | None = None, force: bool = False, findings: list | None = None,
                pagebreaks: bool = False) -> Built:
    """Export one notebook into ``out_dir`` through the cache; raises NotebookFailed when a cell fails.

    ``findings`` is the list the renderer fills with the preflight's findings; a cached PDF brings
    back the findings stored with it (as text), so ``--strict`` judges a cached sheet the same way.
    """
    findings = [] if findings is None else findings
    path, out_dir = Path(path), Path(out_dir)
    k = cache.keys(path, profile, via, pagebreaks)
    stored = None if force else cache.rendering(k)
    if stored is not None:
        nb_file, pdf_file, info = stored
        nb_bytes, pdf_bytes, pages, how = nb_file.read_bytes(), pdf_file.read_bytes(), info["pages"], CACHED
        findings.extend(info.get("findings", []))
    else:
        nb_bytes, pdf_bytes, pages, how = _print(path, k, render, profile, via, timeout, force, findings)
    notebook = store.write_bytes(out_dir / f"{path.stem}.ipynb", nb_bytes)
    pdf = store.write_bytes(out_dir / f"{path.stem}.pdf", pdf_bytes)
    record = json.loads(nb_bytes).get("metadata", {}).get("kit", {})
    record_file = out_dir / f"{path.stem}.run.json"
    if record.get("record") is not None:
        run = {**record["record"], "wall_s": record.get("wall_s"), "executed_at": record.get("executed_at")}
        store.write_bytes(record_file, json.dumps(run, indent=1, ensure_ascii=False).encode())
    else:
        record_file.unlink(missing_ok=True)
    return Built(notebook, pdf, record_file if record_file.exists() else None, pages, how)


def _print(path: Path, k: cache.Keys, render: Renderer, profile: str | None, via: str,
           timeout: int | None, force: bool, findings: list) -> tuple[bytes, bytes, int, str]:
    """Execute (or splice stored outputs), print, stamp and store one rendering."""
    import nbformat

    from .execute import DEFAULT_TIMEOUT, execute_notebook

    ran = None if force else cache.executed_notebook(k.execution)
    if ran is not None:
        spliced = cache.splice(cache.read_notebook_json(ran), cache.read_notebook_json(path))
        nb = nbformat.reads(json.dumps(spliced), as_version=4)   # reads, not from_dict: joins line lists
        how = REPRINTED
    else:
        nb = execute_notebook(path, profile=profile, timeout=timeout or DEFAULT_TIMEOUT)
        cache.store_execution(k.execution, nbformat.writes(nb).encode())
        how = EXECUTED
    nb_bytes = nbformat.writes(nb).encode()
    pdf_bytes, pages = stamp_pdf(render(nb, path, via), sha256(nb_bytes))
    cache.store_rendering(k, nb_bytes, pdf_bytes, {"pages": pages, "how": how,
                                                   "findings": [str(f) for f in findings]})
    return nb_bytes, pdf_bytes, pages, how

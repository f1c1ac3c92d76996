"""Submission bundles: one zip per sheet that a teaching assistant can verify.

A bundle holds the executed notebook, its PDF and ``manifest.json``:

- ``files``: name and sha256 of the notebook and of the PDF;
- ``questions``: for a student notebook, each question's pages in the PDF (from the question labels'
  bookmarks; with ``--pagebreaks`` every question starts a page, as Gradescope's page matching wants);
- what ``describe`` reads from the executed notebook: kit version, git commit and dirty flag,
  Python and package versions, profile, device, seeds, wall time, each code cell's execution count,
  duration and error state, whether the cells ran top to bottom in one kernel without error, and
  the experiment runs trained now or taken from the cache.

The PDF carries the notebook's sha256 in its metadata (``/KitNotebookSHA256``), written when it is
printed, so a PDF cannot be paired with another notebook. ``verify`` recomputes every hash and every
described field and names each mismatch. This proves the three files belong together and were not
edited after the export; it is not a signature (someone who rebuilds all three consistently
re-ran the export).
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import store
from .cache import cell_source

NOTEBOOK_HASH_KEY = "/KitNotebookSHA256"
MANIFEST = "manifest.json"
FORMAT = "dl-course-kit submission 1"


def sha256(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def stamp_pdf(pdf: bytes, notebook_sha256: str) -> tuple[bytes, int]:
    """The PDF with the notebook's hash in its metadata, and its page count."""
    from pypdf import PdfReader, PdfWriter

    # Chromium's PDFs make pypdf warn about a trailer size it repairs itself: noise in the terminal.
    log = logging.getLogger("pypdf")
    level, log.level = log.level, logging.ERROR
    try:
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
        writer.add_metadata({NOTEBOOK_HASH_KEY: notebook_sha256})
        out = io.BytesIO()
        writer.write(out)
    finally:
        log.setLevel(level)
    return out.getvalue(), len(writer.pages)


def pdf_notebook_hash(pdf: bytes) -> str | None:
    """The notebook hash a PDF was stamped with, or None."""
    from pypdf import PdfReader

    meta = PdfReader(io.BytesIO(pdf)).metadata or {}
    value = meta.get(NOTEBOOK_HASH_KEY)
    return str(value) if value is not None else None


QUESTION_BOOKMARK = re.compile(r"^Question (\S+) ·")


def question_pages(pdf: bytes) -> dict[str, list[int]]:
    """Each question's pages (1-based) in a student's PDF: from its label's page to the page before the next one."""
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(pdf))
    starts: list[tuple[int, str]] = []
    pending = list(reader.outline)
    while pending:
        item = pending.pop(0)
        if isinstance(item, list):
            pending[:0] = item
            continue
        match = QUESTION_BOOKMARK.match(str(item.title or "").strip())
        if match:
            starts.append((reader.get_destination_page_number(item) + 1, match.group(1)))
    starts.sort()
    pages = {}
    for i, (first, name) in enumerate(starts):
        last = starts[i + 1][0] - 1 if i + 1 < len(starts) else len(reader.pages)
        pages[name] = list(range(first, max(first, last) + 1))
    return pages


def describe(nb: dict[str, Any]) -> dict[str, Any]:
    """What the executed notebook says about its run (the manifest's fields other than the hashes)."""
    kit = nb.get("metadata", {}).get("kit", {})
    env, record = kit.get("environment") or {}, kit.get("record") or {}
    cells = []
    for number, cell in enumerate(nb.get("cells", []), 1):
        if cell.get("cell_type") != "code" or not cell_source(cell).strip():
            continue
        cells.append({"cell": number, "execution_count": cell.get("execution_count"),
                      "duration_s": cell.get("metadata", {}).get("kit", {}).get("duration_s"),
                      "error": any(o.get("output_type") == "error" for o in cell.get("outputs", []))})
    counts = [c["execution_count"] for c in cells]
    checks = record.get("checks", [])
    return {
        "kit_version": env.get("kit_version"), "git": env.get("git"), "versions": env.get("versions"),
        "platform": env.get("platform"),
        "profile": kit.get("profile"), "device": record.get("device"), "seeds": record.get("seeds"),
        "executed_at": kit.get("executed_at"), "wall_s": kit.get("wall_s"),
        "cells": cells,
        "top_to_bottom": bool(cells) and counts == list(range(1, len(cells) + 1)),
        "errors": [c["cell"] for c in cells if c["error"]],
        "runs": record.get("runs"),
        "checks": {"held": sum(bool(c.get("ok")) for c in checks), "total": len(checks)},
    }


def make_bundle(notebook: Path, pdf: Path, target: Path) -> Path:
    """Write ``target`` (a zip): the executed notebook, its PDF and the manifest."""
    nb_bytes, pdf_bytes = Path(notebook).read_bytes(), Path(pdf).read_bytes()
    if pdf_notebook_hash(pdf_bytes) != sha256(nb_bytes):
        raise ValueError(f"{pdf} was not printed from {notebook} (its {NOTEBOOK_HASH_KEY} differs); export again.")
    manifest = {"format": FORMAT, "sheet": Path(notebook).stem,
                "files": {"notebook": {"name": Path(notebook).name, "sha256": sha256(nb_bytes)},
                          "pdf": {"name": Path(pdf).name, "sha256": sha256(pdf_bytes)}},
                **describe(json.loads(nb_bytes)),
                "questions": question_pages(pdf_bytes)}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(Path(notebook).name, nb_bytes)
        zf.writestr(Path(pdf).name, pdf_bytes)
        zf.writestr(MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False))
    return store.write_bytes(Path(target), buffer.getvalue())


@dataclass
class Opened:
    """A bundle read and its integrity checked: whether its three files belong together, unedited."""

    manifest: dict[str, Any] | None
    notebook_name: str | None
    notebook: bytes | None
    described: dict[str, Any] | None
    problems: list[str]  # integrity problems: a changed file, a PDF of another notebook, a manifest that lies


def open_bundle(bundle: Path) -> Opened:
    """Read a bundle and check its integrity (hashes, PDF stamp, manifest fields), never raising."""
    problems: list[str] = []
    try:
        zf = zipfile.ZipFile(bundle)
    except (OSError, zipfile.BadZipFile) as error:
        return Opened(None, None, None, None, [f"{bundle} is not a readable zip: {error}"])
    with zf:
        names = set(zf.namelist())
        if MANIFEST not in names:
            return Opened(None, None, None, None, [f"{bundle} holds no {MANIFEST}"])
        try:
            manifest = json.loads(zf.read(MANIFEST))
            nb_name, pdf_name = manifest["files"]["notebook"]["name"], manifest["files"]["pdf"]["name"]
        except (ValueError, KeyError, TypeError) as error:
            return Opened(None, None, None, None, [f"{MANIFEST} is not a submission manifest: {error!r}"])
        missing = [n for n in (nb_name, pdf_name) if n not in names]
        if missing:
            return Opened(manifest, None, None, None, [f"missing from the bundle: {', '.join(missing)}"])
        extra = sorted(names - {MANIFEST, nb_name, pdf_name})
        if extra:
            problems.append(f"unexpected files in the bundle: {', '.join(extra)}")
        nb_bytes, pdf_bytes = zf.read(nb_name), zf.read(pdf_name)
    nb_hash, pdf_hash = sha256(nb_bytes), sha256(pdf_bytes)
    if nb_hash != manifest["files"]["notebook"].get("sha256"):
        problems.append(f"notebook {nb_name} changed: its sha256 {nb_hash[:12]}… is not the manifest's")
    if pdf_hash != manifest["files"]["pdf"].get("sha256"):
        problems.append(f"PDF {pdf_name} changed: its sha256 {pdf_hash[:12]}… is not the manifest's")
    try:
        stamped = pdf_notebook_hash(pdf_bytes)
    except Exception as error:  # pypdf's errors for a damaged file vary
        stamped, problems = None, problems + [f"PDF {pdf_name} is unreadable: {error}"]
    if stamped != nb_hash:
        problems.append(f"PDF {pdf_name} does not belong to notebook {nb_name} "
                        f"(PDF metadata says {str(stamped)[:12]}…, notebook is {nb_hash[:12]}…)")
    try:
        described = describe(json.loads(nb_bytes))
    except ValueError as error:
        return Opened(manifest, nb_name, nb_bytes, None, problems + [f"notebook {nb_name} is not valid JSON: {error}"])
    for key, value in described.items():
        if manifest.get(key) != value:
            problems.append(f"manifest field {key!r} does not match the notebook "
                            f"(manifest: {_short(manifest.get(key))}, notebook: {_short(value)})")
    if "questions" in manifest:
        try:
            pages = question_pages(pdf_bytes)
        except Exception:  # an unreadable PDF is named above
            pages = None
        if pages is not None and manifest["questions"] != pages:
            problems.append(f"manifest field 'questions' does not match the PDF's question pages "
                            f"(manifest: {_short(manifest['questions'])}, PDF: {_short(pages)})")
    return Opened(manifest, nb_name, nb_bytes, described, problems)


def verify(bundle: Path) -> tuple[list[str], list[str]]:
    """Check a bundle; return (report lines, problems). No problems means it verifies."""
    opened = open_bundle(bundle)
    described, problems = opened.described, list(opened.problems)
    if described is None:
        return [], problems
    report = [f"{opened.manifest.get('sheet')}: profile {described['profile']}, device {described['device']}, "
              f"executed {described['executed_at']}, git {(_short((described['git'] or {}).get('commit')))}"
              f"{' (dirty)' if (described['git'] or {}).get('dirty') else ''}",
              f"{len(described['cells'])} code cells; "
              + ("ran top to bottom in one kernel (execution counts 1.."
                 f"{len(described['cells'])})" if described["top_to_bottom"] else
                 f"NOT run top to bottom: execution counts {[c['execution_count'] for c in described['cells']]}"),
              f"errors in cells: {described['errors']}" if described["errors"] else "no cell raised an error",
              f"runs: {described['runs']}; claim checks: {described['checks']['held']} of "
              f"{described['checks']['total']} hold"]
    if not described["top_to_bottom"]:
        problems.append("the notebook did not run top to bottom in one kernel")
    if described["errors"]:
        problems.append(f"cells {described['errors']} raised errors")
    return report, problems


def _short(value: Any) -> str:
    """A value shortened for a one-line message."""
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "…"

"""all-sheets.pdf: a cover with the contents and each sheet's status, then every sheet, bookmarked.

A grader opens one file and must find every sheet in it, including the one that failed: a
failed sheet gets a page saying why instead of vanishing.  The cover lists each sheet with its
first page and status (ok, ok with invariants ✗ or preflight findings, failed); the PDF's bookmarks hold one
entry per sheet with the sheet's own heading bookmarks nested inside.  Cover and failure pages are
printed by the same Chromium as the sheets (``KitWebPDFExporter.print_html``).
"""
from __future__ import annotations

import html
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pypdf import PdfReader, PdfWriter

from ..store import write_bytes
from .tidy import hide_paths

PAGE_STYLE = """<style>
body { font-family: "DejaVu Sans", Arial, sans-serif; font-size: 10.5pt; margin: 0; }
h1 { font-size: 18pt; margin: 0 0 4px 0; }
table { border-collapse: collapse; width: 100%; margin-top: 14px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid #bbb; vertical-align: top; }
td.num { text-align: right; white-space: nowrap; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; font-size: 9pt; background: #f3f3f3; padding: 8px; }
.failed { color: #a00; font-weight: bold; }
</style>"""


@dataclass
class Sheet:
    """One sheet as the merged file shows it: its title, its PDF or why there is none."""

    title: str
    pdf: Path | None = None
    error: str | None = None
    findings: int = 0
    invariants: int = 0     # ✗ invariants in its run record: printed, but its numbers cannot be trusted

    @property
    def status(self) -> str:
        """'ok', 'ok, N invariant(s) ✗, M preflight finding(s)' (either part alone) or 'FAILED'."""
        if self.pdf is None:
            return "FAILED"
        parts = [f"{self.invariants} invariant(s) ✗"] * bool(self.invariants)
        parts += [f"{self.findings} preflight finding(s)"] * bool(self.findings)
        return ", ".join(["ok", *parts])


def merge_pdfs(pdfs: Sequence[Path], target: Path) -> Path:
    """Concatenate ``pdfs`` in order into ``target`` and return its path."""
    writer = PdfWriter()
    for pdf in pdfs:
        writer.append(str(pdf))
    return _write(writer, target)


def merge_sheets(sheets: Sequence[Sheet], target: Path, print_html: Callable[[str], bytes],
                 subtitle: str = "") -> Path:
    """Write ``target``: cover with contents, each sheet (or a page saying why it failed), bookmarks."""
    parts = [_sheet_pdf(sheet, print_html) for sheet in sheets]
    sizes = [len(PdfReader(io.BytesIO(part)).pages) for part in parts]
    cover, cover_pages = b"", 1
    for _ in range(3):   # page numbers depend on the cover's own length; settles in one or two rounds
        starts = _first_pages(cover_pages, sizes)
        cover = print_html(cover_html(sheets, starts, subtitle))
        if len(PdfReader(io.BytesIO(cover)).pages) == cover_pages:
            break
        cover_pages = len(PdfReader(io.BytesIO(cover)).pages)
    writer = PdfWriter()
    writer.append(PdfReader(io.BytesIO(cover)), import_outline=False)
    writer.add_outline_item(title="Contents", page_number=0)
    for sheet, part in zip(sheets, parts):
        # The sheet's heading bookmarks are nested under one entry named for the sheet.
        writer.append(PdfReader(io.BytesIO(part)), outline_item=f"{sheet.title} ({sheet.status})")
    return _write(writer, target)


def cover_html(sheets: Sequence[Sheet], first_pages: Sequence[int], subtitle: str = "") -> str:
    """The cover page: a table of contents with first pages and each sheet's status."""
    rows = "".join(
        f"<tr><td class='num'>{number}</td><td>{html.escape(sheet.title)}</td>"
        f"<td class='{'failed' if sheet.pdf is None or sheet.invariants else ''}'>{html.escape(sheet.status)}</td>"
        f"<td class='num'>{page}</td></tr>"
        for number, (sheet, page) in enumerate(zip(sheets, first_pages), 1))
    failed = sum(sheet.pdf is None for sheet in sheets)
    note = (f"<p class='failed'>{failed} sheet(s) failed; their page says why.</p>" if failed else "")
    if broken := sum(bool(sheet.pdf and sheet.invariants) for sheet in sheets):
        note += (f"<p class='failed'>{broken} sheet(s) ran with an invariant ✗ (a fact of the code does not hold): "
                 "their run record, at the end of the sheet, names it.</p>")
    return (f"<html><head><meta charset='utf-8'>{PAGE_STYLE}</head><body><h1>Course sheets</h1>"
            f"<p>{html.escape(subtitle)}</p>{note}"
            f"<table><tr><th>#</th><th>Sheet</th><th>Status</th><th>Page</th></tr>{rows}</table></body></html>")


def failure_html(sheet: Sheet) -> str:
    """A page standing in for a sheet that failed: its title and the error."""
    return (f"<html><head><meta charset='utf-8'>{PAGE_STYLE}</head><body><h1>{html.escape(sheet.title)}</h1>"
            "<p class='failed'>This sheet failed to run, so there is no PDF of it.</p>"
            f"<pre>{html.escape(hide_paths(sheet.error or 'no error message'))}</pre>"
            "<p>The executed notebook, as far as it ran, is next to this PDF; "
            "fix the cell named above and export again.</p></body></html>")


def _sheet_pdf(sheet: Sheet, print_html: Callable[[str], bytes]) -> bytes:
    """The sheet's PDF bytes, or a printed page that says why it failed."""
    if sheet.pdf is not None:
        return Path(sheet.pdf).read_bytes()
    return print_html(failure_html(sheet))


def _first_pages(cover_pages: int, sizes: Sequence[int]) -> list[int]:
    """1-based first page of each part after a cover of ``cover_pages`` pages."""
    starts, page = [], cover_pages + 1
    for size in sizes:
        starts.append(page)
        page += size
    return starts


def _write(writer: PdfWriter, target: Path) -> Path:
    """Write the merged PDF atomically (a reader never sees half a file)."""
    buffer = io.BytesIO()
    writer.write(buffer)
    writer.close()
    return write_bytes(target, buffer.getvalue())

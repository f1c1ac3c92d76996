"""Check that a sheet's PDF really shows its notebook: every code word and every table cell.

The preflight measures widths in the browser; this checks the result on paper, the way a grader
would search it: ``pdftotext`` of the PDF must contain every word of every printed code cell and
every cell of every table output (after the same tidying the export does).  Command line::

    python -m helpers.export.coverage build/pdf/0*.ipynb

(each executed notebook's PDF lies beside it, as the export writes them); exit code 1 when
anything is missing, which is listed.
"""
from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from html.parser import HTMLParser
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from .tidy import tidy_notebook

CODE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?")
_SPACE = re.compile(r"\s+")
_INNER_HYPHEN = re.compile(r"(?<=\w)-(?=\w)")


def pdf_text(pdf: Path) -> str:
    """The PDF's text as ``pdftotext`` extracts it (reading order, no layout)."""
    return subprocess.run(["pdftotext", str(pdf), "-"], check=True, capture_output=True, text=True).stdout


def code_words(nb: NotebookNode) -> Iterator[tuple[int, str]]:
    """(cell number, word) for every identifier and number in the printed code cells."""
    for number, cell in _printed_cells(nb):
        if cell.cell_type == "code" and not cell.metadata.get("transient", {}).get("remove_source"):
            for word in CODE_WORD.findall(cell.source):
                yield number, word


def table_cells(nb: NotebookNode) -> Iterator[tuple[int, str]]:
    """(cell number, text) for every non-empty cell of every HTML table output."""
    for number, cell in _printed_cells(nb):
        for output in cell.get("outputs", []):
            html = output.get("data", {}).get("text/html")
            if html and "<table" in html:
                parser = _Cells()
                parser.feed("".join(html) if isinstance(html, list) else html)
                yield from ((number, text) for text in parser.cells if text)


def missing_from_pdf(notebook: Path | NotebookNode, pdf: Path) -> list[str]:
    """What the PDF does not show: 'cell N: code word X' / 'cell N: table cell Y', in order."""
    nb = nbformat.read(notebook, as_version=4) if isinstance(notebook, (str, Path)) else notebook
    nb = tidy_notebook(nb)
    text = pdf_text(pdf)
    # A wrapped header or code line puts a line break inside a cell's text; compare without spaces too.
    squeezed = _SPACE.sub("", text)
    missing = []
    for kind, items in (("code word", code_words(nb)), ("table cell", table_cells(nb))):
        seen = set()
        for number, item in items:
            if (number, item) in seen:
                continue
            seen.add((number, item))
            if item in text or _SPACE.sub("", item) in squeezed:
                continue
            # A table cell that wraps over several lines is read interleaved with its neighbours'
            # lines, so its words are found one by one; a cut-off column still loses all of them.
            if kind == "table cell" and all(_found(word, text, squeezed) for word in item.split()):
                continue
            missing.append(f"cell {number}: {kind} {item!r}")
    return missing


def _found(word: str, text: str, squeezed: str) -> bool:
    """Whether a word of a table cell is in the PDF's text, also where the line broke at its hyphen."""
    # pdftotext drops a hyphen at which a line was broken ("1e-" / "05" reads "1e05"); a leading minus
    # sign is not inside a word, so a lost sign is still noticed.
    return word in text or word in squeezed or _INNER_HYPHEN.sub("", word) in squeezed


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: for each executed notebook, list what its PDF (beside it) fails to show."""
    notebooks = [Path(arg) for arg in (sys.argv[1:] if argv is None else argv)]
    if not notebooks:
        print("usage: python -m helpers.export.coverage build/pdf/NAME.ipynb ...  (NAME.pdf beside each)",
              file=sys.stderr)
        return 2
    failed = 0
    for notebook in notebooks:
        pdf = notebook.with_suffix(".pdf")
        if not pdf.is_file():
            print(f"{notebook}: no PDF beside it ({pdf.name}); export it first", file=sys.stderr)
            failed += 1
            continue
        missing = missing_from_pdf(notebook, pdf)
        for line in missing:
            print(f"{pdf.name}: missing {line}")
        print(f"{pdf.name}: " + (f"{len(missing)} missing" if missing else "every code word and table cell found"))
        failed += bool(missing)
    return 1 if failed else 0


def _printed_cells(nb: NotebookNode) -> Iterator[tuple[int, NotebookNode]]:
    """(number, cell) for the cells the PDF prints, numbered as the export numbers them."""
    for cell in nb.cells:
        match = re.fullmatch(r"kit-cell-(\d+)", cell.get("id", ""))
        if match:
            yield int(match.group(1)), cell


class _Cells(HTMLParser):
    """Collects the text of every th/td (styles and scripts skipped)."""

    def __init__(self):
        super().__init__()
        self.cells: list[str] = []
        self._current: list[str] | None = None
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("style", "script"):
            self._skip += 1
        elif tag in ("td", "th"):
            self._current = []

    def handle_endtag(self, tag):
        if tag in ("style", "script"):
            self._skip = max(self._skip - 1, 0)
        elif tag in ("td", "th") and self._current is not None:
            self.cells.append(_SPACE.sub(" ", "".join(self._current)).strip())
            self._current = None

    def handle_data(self, data):
        if self._current is not None and not self._skip:
            self._current.append(data)


if __name__ == "__main__":
    sys.exit(main())

"""Execute the course notebooks and export them to PDF (one per sheet plus all-sheets.pdf).

Command line (what ``make pdf`` runs)::

    python -m helpers.export notebooks --profile quick --out build/pdf
    python -m helpers.export notebooks/02_optimisation_fashionmnist.ipynb --out build/pdf
    python -m helpers.export notebooks --no-execute          # print the outputs already stored
    python -m helpers.export notebooks --via latex           # nbconvert's LaTeX route

Every notebook is executed with nbclient in the ``python3`` kernel of the running Python, its
working directory the notebook's folder and ``KIT_PROFILE`` set to the chosen profile (heavy
results come from the experiment cache, so a second run is fast).  For each notebook the
executed ``<name>.ipynb`` (useful for TAs) and ``<name>.pdf`` go to the output folder; the PDFs
of all notebooks that exported are merged into ``all-sheets.pdf`` when more than one notebook was
asked for (so exporting one sheet does not clobber the complete file).  A cell that raises stops
that notebook only: the message names the notebook, the cell and the error, the other notebooks
still export, a summary table lists every notebook, and the exit code is 1 if any failed.

Routes
------
``webpdf`` (default): nbconvert's HTML printed by an installed Chrome/Chromium
(``helpers.export.browser.KitWebPDFExporter``; set ``CHROMIUM_PATH`` to choose one; Debian/Ubuntu:
``scripts/setup_pdf_tools.sh``).  Formulas are typeset by a local MathJax, offline.

``latex``: nbconvert's ``--to pdf`` (``xelatex`` and ``pandoc`` must be installed).  Its limits:
HTML outputs (pandas tables) print as their plain-text form, widgets and JavaScript outputs are
lost, SVG figures need ``inkscape``, and LaTeX errors in markdown math stop the export.

Either way, outputs are tidied first (``helpers.export.tidy``): progress bars print as their
final state and outputs over ~60 lines / 10,000 characters are trimmed with a note.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode
from pypdf import PdfReader, PdfWriter

from ..config import get_profile
from .browser import KitWebPDFExporter
from .execute import DEFAULT_TIMEOUT, NotebookFailed, execute_notebook
from .tidy import tidy_notebook

MERGED_NAME = "all-sheets.pdf"
ROUTES = ("webpdf", "latex")


@dataclass
class ExportResult:
    """What happened to one notebook."""

    notebook: Path
    pdf: Path | None = None
    executed: Path | None = None
    pages: int = 0
    seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the PDF was written."""
        return self.error is None and self.pdf is not None


def export_notebook(path: Path, out_dir: Path, *, profile: str | None = None, execute: bool = True,
                    via: str = "webpdf", timeout: int = DEFAULT_TIMEOUT) -> ExportResult:
    """Execute (optionally) and export one notebook to ``out_dir/<name>.pdf``; never raises on failure."""
    path, out_dir = Path(path), Path(out_dir)
    _check_route(via)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = ExportResult(notebook=path)
    start = time.perf_counter()
    try:
        if execute:
            nb = execute_notebook(path, profile=profile, timeout=timeout)
            result.executed = out_dir / f"{path.stem}.ipynb"
            nbformat.write(nb, result.executed)
        else:
            nb = nbformat.read(path, as_version=4)
        result.pdf = out_dir / f"{path.stem}.pdf"
        result.pdf.write_bytes(_to_pdf(nb, path, via))
        result.pages = len(PdfReader(result.pdf).pages)
    except Exception as error:  # one notebook's failure must not stop the others
        result.pdf = None
        # A PDF left from an earlier run would look like this run's result.
        (out_dir / f"{path.stem}.pdf").unlink(missing_ok=True)
        if isinstance(error, NotebookFailed) and error.partial is not None:
            # Students and TAs open this to see the traceback in context.
            result.executed = out_dir / f"{path.stem}.ipynb"
            nbformat.write(error.partial, result.executed)
        result.error = str(error) if isinstance(error, NotebookFailed) else f"{path}: {type(error).__name__}: {error}"
    result.seconds = time.perf_counter() - start
    return result


def export_notebooks(paths: Iterable[Path], out_dir: Path, *, profile: str | None = None, execute: bool = True,
                     via: str = "webpdf", timeout: int = DEFAULT_TIMEOUT, merge: bool | None = None,
                     log: Callable[[str], object] = print) -> list[ExportResult]:
    """Export each notebook in order, report failures as they happen, merge the PDFs that worked."""
    paths = list(paths)
    results = []
    for number, path in enumerate(paths, 1):
        log(f"[{number}/{len(paths)}] {path} ({'executing, ' if execute else ''}profile "
            f"{get_profile(profile)}, via {via})")
        result = export_notebook(path, out_dir, profile=profile, execute=execute, via=via, timeout=timeout)
        if result.error:
            print(f"FAILED {result.error}", file=sys.stderr)
        results.append(result)
    pdfs = [r.pdf for r in results if r.ok]
    if len(paths) > 1 if merge is None else merge:
        target = Path(out_dir) / MERGED_NAME
        if pdfs:
            log(f"merged {len(pdfs)} PDF(s) into {merge_pdfs(pdfs, target)}")
        else:
            target.unlink(missing_ok=True)
    return results


def merge_pdfs(pdfs: Sequence[Path], target: Path) -> Path:
    """Concatenate ``pdfs`` in order into ``target`` and return its path."""
    writer = PdfWriter()
    for pdf in pdfs:
        writer.append(str(pdf))
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as handle:
        writer.write(handle)
    writer.close()
    return target


def summary_table(results: Sequence[ExportResult]) -> str:
    """A plain-text table: notebook, status, pages, seconds, PDF or error."""
    rows = [("notebook", "status", "pages", "time", "result")]
    for r in results:
        detail = str(r.pdf) if r.ok else (r.error or "").splitlines()[0].removeprefix(f"{r.notebook}: ")
        rows.append((r.notebook.name, "ok" if r.ok else "FAILED", str(r.pages) if r.ok else "-",
                     f"{r.seconds:.1f}s", detail))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4] for row in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)


def notebook_paths(items: Iterable[str | Path]) -> list[Path]:
    """Expand folders to their notebooks sorted by name (course order); keep files as given."""
    paths: list[Path] = []
    for item in items:
        item = Path(item)
        if item.is_dir():
            paths.extend(sorted(item.glob("*.ipynb")))
        elif item.suffix == ".ipynb" and item.is_file():
            paths.append(item)
        else:
            raise ValueError(f"{item} is neither a notebook (.ipynb file) nor a folder of notebooks.")
    return list(dict.fromkeys(paths))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: export notebooks to PDF; exit code 1 when any notebook failed."""
    args = _parser().parse_args(argv)
    try:
        paths = notebook_paths(args.notebooks)
        profile = get_profile(args.profile)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not paths:
        print(f"error: no notebooks found in {' '.join(args.notebooks)}", file=sys.stderr)
        return 2
    results = export_notebooks(paths, args.out, profile=profile, execute=args.execute, via=args.via,
                               timeout=args.timeout, merge=args.merge)
    print("\n" + summary_table(results))
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"\n{len(failed)} of {len(results)} notebook(s) failed.", file=sys.stderr)
    return 1 if failed else 0


def _parser() -> argparse.ArgumentParser:
    """The command line's options."""
    parser = argparse.ArgumentParser(prog="python -m helpers.export", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", help="notebooks, or folders whose notebooks run sorted by name")
    parser.add_argument("--profile", default=None, help="smoke | quick | full (default: KIT_PROFILE, else quick)")
    parser.add_argument("--out", type=Path, default=Path("build/pdf"), help="output folder (default build/pdf)")
    parser.add_argument("--no-execute", dest="execute", action="store_false",
                        help="export the outputs stored in the notebooks without running them")
    parser.add_argument("--via", choices=ROUTES, default="webpdf", help="webpdf (Chromium, default) or latex (TeX)")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help="seconds allowed per cell (default 1800)")
    parser.add_argument("--merge", action=argparse.BooleanOptionalAction, default=None,
                        help=f"write {MERGED_NAME} (default: when more than one notebook is exported)")
    return parser


def _to_pdf(nb: NotebookNode, path: Path, via: str) -> bytes:
    """PDF bytes of an executed notebook by the chosen route."""
    resources = {"metadata": {"name": path.stem, "path": str(path.parent.resolve())}}
    if via == "latex":
        return _latex_pdf(nb, resources)
    pdf, _ = KitWebPDFExporter().from_notebook_node(nb, resources=resources)
    return pdf


def _latex_pdf(nb: NotebookNode, resources: dict) -> bytes:
    """PDF bytes via nbconvert's LaTeX route (needs xelatex and pandoc)."""
    from nbconvert import PDFExporter

    missing = [tool for tool in ("xelatex", "pandoc") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"--via latex needs {' and '.join(missing)} on PATH (a TeX distribution and pandoc); "
                           "the default --via webpdf only needs Chromium.")
    pdf, _ = PDFExporter().from_notebook_node(tidy_notebook(nb), resources=resources)
    return pdf


def _check_route(via: str) -> None:
    """Refuse an unknown export route with the allowed ones."""
    if via not in ROUTES:
        raise ValueError(f"Unknown export route {via!r}; choose one of {', '.join(ROUTES)}.")




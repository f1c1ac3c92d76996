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
A sheet whose run record holds an invariant ✗ (``helpers.checks.invariant``: a fact of the code, in
any profile, executed now or served from the cache) is exported too, so the student can see it, but
the summary names the invariant with its values and the exit code is 1 (``make pdf``, ``make submit``).

Routes
------
``webpdf`` (default): nbconvert's HTML printed by an installed Chrome/Chromium
(``helpers.export.browser.KitWebPDFExporter``; set ``CHROMIUM_PATH`` to choose one; Debian/Ubuntu:
``scripts/setup_pdf_tools.sh``).  Formulas are typeset by a local MathJax, offline.

``latex``: nbconvert's ``--to pdf`` (``xelatex`` and ``pandoc`` must be installed).  Its limits:
HTML outputs (pandas tables) print as their plain-text form, widgets and JavaScript outputs are
lost, SVG figures need ``inkscape``, and LaTeX errors in markdown math stop the export.

Either way, outputs are tidied first (``helpers.export.tidy``): progress bars and stderr are
dropped, local paths hidden, outputs over ~60 lines / 10,000 characters trimmed with a note, and a
title block (sheet, profile, date, device, kit version) opens the sheet.

Preflight: the webpdf route measures every code block, output and equation against the printed
text width after fitting them (``helpers.export.layout``); what is still wider is listed after the
summary.  ``--strict`` (used by ``make test``) makes any such finding an error (exit code 1).

Cache and other commands
------------------------
A sheet whose code, ``helpers/``, profile and data are unchanged is not executed again, and an
unchanged one reuses its PDF (``helpers.export.cache``; ``--force`` executes anyway).  Also::

    python -m helpers.export submit notebooks --out build/submit   # one verifiable zip per sheet
    python -m helpers.export verify build/submit/01_backprop_autodiff.zip
    python -m helpers.export reproduce notebooks                   # full profile -> docs/REPRODUCTION.md
"""
from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from typing import TYPE_CHECKING

from ..config import get_profile, seed_offset
from ..runlog import failed_invariants
from .build import build_sheet, plan
from .execute import DEFAULT_TIMEOUT, NotebookFailed, pin_kit_paths

if TYPE_CHECKING:
    from nbformat import NotebookNode

    from .layout import Finding

# nbformat, pypdf and the printer (nbconvert) are imported where they are used: when every sheet
# comes from the cache, the command finishes before they would have loaded.

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
    how: str = ""        # executed, reprinted (stored outputs, new markdown) or cached (PDF reused)
    findings: list[Finding] = field(default_factory=list)   # preflight: what did not fit the page
    invariants: list[str] = field(default_factory=list)     # the run record's ✗ invariants, with their values

    @property
    def ok(self) -> bool:
        """Whether the PDF was written."""
        return self.error is None and self.pdf is not None


def export_notebook(path: Path, out_dir: Path, *, profile: str | None = None, execute: bool = True,
                    via: str = "webpdf", timeout: int = DEFAULT_TIMEOUT, force: bool = False,
                    pagebreaks: bool = False) -> ExportResult:
    """Execute (optionally) and export one notebook to ``out_dir/<name>.pdf``; never raises on failure."""
    path, out_dir = Path(path), Path(out_dir)
    _check_route(via)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = ExportResult(notebook=path)
    start = time.perf_counter()
    try:
        if execute:
            def render(nb: NotebookNode, path: Path, via: str) -> bytes:
                return _to_pdf(nb, path, via, profile, findings=result.findings, pagebreaks=pagebreaks)

            built = build_sheet(path, out_dir, render, profile=profile, via=via, timeout=timeout, force=force,
                                findings=result.findings, pagebreaks=pagebreaks)
            result.executed, result.pdf, result.pages, result.how = built.notebook, built.pdf, built.pages, built.how
            if built.record is not None:
                result.invariants = failed_invariants(json.loads(built.record.read_text(encoding="utf-8")))
        else:
            import nbformat
            from pypdf import PdfReader

            nb = nbformat.read(path, as_version=4)
            result.pdf = out_dir / f"{path.stem}.pdf"
            result.pdf.write_bytes(_to_pdf(nb, path, via, profile, findings=result.findings, pagebreaks=pagebreaks))
            result.pages = len(PdfReader(result.pdf).pages)
            result.invariants = failed_invariants(nb.metadata.get("kit", {}).get("record") or {})
    except Exception as error:  # one notebook's failure must not stop the others
        result.pdf = None
        # A PDF left from an earlier run would look like this run's result.
        (out_dir / f"{path.stem}.pdf").unlink(missing_ok=True)
        if isinstance(error, NotebookFailed) and error.partial is not None:
            # Students and TAs open this to see the traceback in context.
            import nbformat

            result.executed = out_dir / f"{path.stem}.ipynb"
            nbformat.write(error.partial, result.executed)
        result.error = str(error) if isinstance(error, NotebookFailed) else f"{path}: {type(error).__name__}: {error}"
    result.seconds = time.perf_counter() - start
    return result


def export_notebooks(paths: Iterable[Path], out_dir: Path, *, profile: str | None = None, execute: bool = True,
                     via: str = "webpdf", timeout: int = DEFAULT_TIMEOUT, merge: bool | None = None,
                     log: Callable[[str], object] = print, force: bool = False,
                     pagebreaks: bool = False) -> list[ExportResult]:
    """Export each notebook in order, report failures as they happen, merge the PDFs that worked."""
    paths = list(paths)
    results = []
    for number, path in enumerate(paths, 1):
        what = {"cached": "unchanged, from the cache", "reprinted": "code unchanged, printing stored outputs again",
                "executed": "executing"}[plan(path, profile, via, force, pagebreaks)] if execute else "stored outputs"
        log(f"[{number}/{len(paths)}] {path} ({what}, profile {get_profile(profile)}, via {via})")
        result = export_notebook(path, out_dir, profile=profile, execute=execute, via=via, timeout=timeout,
                                 force=force, pagebreaks=pagebreaks)
        if result.error:
            print(f"FAILED {result.error}", file=sys.stderr)
        results.append(result)
    if len(paths) > 1 if merge is None else merge:
        from .merge import Sheet, merge_pdfs, merge_sheets

        target = Path(out_dir) / MERGED_NAME
        if via == "webpdf":
            from .browser import KitWebPDFExporter
            from .tidy import sheet_title

            sheets = [Sheet(sheet_title(r.notebook), r.pdf if r.ok else None, r.error, len(r.findings),
                            len(r.invariants)) for r in results]
            offset = seed_offset()
            subtitle = (f"Run profile {get_profile(profile)}" + (f", seed offset KIT_SEED={offset}" if offset else "")
                        + f", exported {datetime.date.today().isoformat()}")
            log(f"merged {len(sheets)} sheet(s) into "
                f"{merge_sheets(sheets, target, KitWebPDFExporter().print_html, subtitle)}")
        elif pdfs := [r.pdf for r in results if r.ok]:
            log(f"merged {len(pdfs)} PDF(s) into {merge_pdfs(pdfs, target)}")
        else:
            target.unlink(missing_ok=True)
    return results


def summary_table(results: Sequence[ExportResult]) -> str:
    """A plain-text table: notebook, status, pages, seconds, PDF or error."""
    rows = [("notebook", "status", "pages", "time", "result")]
    for r in results:
        detail = str(r.pdf) if r.ok else (r.error or "").splitlines()[0].removeprefix(f"{r.notebook}: ")
        status = ("ok" + (f" ({r.how})" if r.how else "")) if r.ok else "FAILED"
        if r.invariants:
            status += f", {len(r.invariants)} invariant(s) ✗"
        rows.append((r.notebook.name, status, str(r.pages) if r.ok else "-",
                     f"{r.seconds:.1f}s", detail))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:4], widths)) + "  " + row[4] for row in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    broken = [(r.notebook.stem, claim) for r in results for claim in r.invariants]
    if broken:
        lines += ["", f"Invariants: {len(broken)} invariant(s) do not hold (the PDF shows them; the code disagrees with itself):"]
        lines += [f"  {sheet}: invariant does not hold: {claim}" for sheet, claim in broken]
    findings = [str(f) for r in results for f in r.findings]
    if findings:
        lines += ["", f"Preflight: {len(findings)} thing(s) wider than the printed text:"]
        lines += [f"  {finding}" for finding in findings]
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
    """Command line: export notebooks to PDF (or submit, verify, reproduce); 1 when any failed."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    args = _parser().parse_args(argv)
    results = _run_export(args)
    return 2 if results is None else _report(results, args.strict)


def _run_export(args: argparse.Namespace) -> list[ExportResult] | None:
    """Check the settings before anything runs, then export; None (after saying why) when they are wrong."""
    pin_kit_paths()   # a relative KIT_DATA/KIT_CACHE means: relative to where the command started
    try:
        paths = notebook_paths(args.notebooks)
        if not paths:
            raise ValueError(f"no notebooks found in {' '.join(args.notebooks)}")
        profile = get_profile(args.profile)
        _check_out_dir(args.out)
        if args.via == "webpdf" and (not args.execute or any(plan(p, profile, args.via, args.force, args.pagebreaks) != "cached"
                                                             for p in paths)):
            _check_browser()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return None
    return export_notebooks(paths, args.out, profile=profile, execute=args.execute, via=args.via,
                            timeout=args.timeout, merge=args.merge, force=args.force,
                            pagebreaks=args.pagebreaks)


def _report(results: Sequence[ExportResult], strict: bool = False) -> int:
    """Print the summary table; exit code 1 when any notebook failed, any run has an invariant ✗ (in every
    profile: its numbers cannot be trusted), or, strict, anything did not fit the page."""
    print("\n" + summary_table(results))
    failed = [r for r in results if not r.ok]
    if failed:
        print(f"\n{len(failed)} of {len(results)} notebook(s) failed.", file=sys.stderr)
    broken = [r for r in results if r.invariants]
    for r in broken:
        for claim in r.invariants:
            print(f"{r.notebook.stem}: invariant does not hold: {claim}", file=sys.stderr)
    if broken:
        print(f"\n{len(broken)} notebook(s) ran with an invariant ✗ (listed above): a fact of the code does not hold, "
              "so the numbers beside it cannot be trusted. The PDFs are written so you can look; fix the code "
              "the invariant checks (or report it), then export again.", file=sys.stderr)
    unfit = [r for r in results if r.findings]
    if strict and unfit:
        print(f"\n--strict: {len(unfit)} notebook(s) have content wider than the page (listed above); "
              "shorten the line, narrow or transpose the table, or split the equation.", file=sys.stderr)
    return 1 if failed or broken or (strict and unfit) else 0


def _check_out_dir(out: Path) -> None:
    """Refuse an output folder that is a file or cannot be created."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder; name a folder for the PDFs (it is created if missing).")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"--out {out}: cannot create the output folder ({error.strerror}); "
                         "choose a folder you can write to.") from error


def _check_browser() -> None:
    """Find the browser before any notebook runs (a wrong CHROMIUM_PATH raises ValueError)."""
    from .browser import find_browser

    find_browser()


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
    parser.add_argument("--strict", action="store_true",
                        help="fail (exit code 1) when anything is wider than the printed page (preflight)")
    parser.add_argument("--force", action="store_true",
                        help="execute even when the export cache holds this sheet's run")
    parser.add_argument("--pagebreaks", action="store_true",
                        help="start each question of a student notebook on a new page (Gradescope-style grading)")
    return parser


def _to_pdf(nb: NotebookNode, path: Path, via: str, profile: str | None = None,
            findings: list[Finding] | None = None, pagebreaks: bool = False) -> bytes:
    """PDF bytes of an executed notebook by the chosen route; the preflight's findings go into ``findings``."""
    from .browser import KitWebPDFExporter
    from .tidy import with_title_block

    resources = {"metadata": {"name": path.stem, "path": str(path.parent.resolve())}}
    nb = with_title_block(nb, path, get_profile(profile))
    if via == "latex":
        return _latex_pdf(nb, resources)
    pdf, resources = KitWebPDFExporter(pagebreaks=pagebreaks).from_notebook_node(nb, resources=resources)
    if findings is not None:
        findings.extend(resources.get("kit_findings", []))
    return pdf


def _latex_pdf(nb: NotebookNode, resources: dict) -> bytes:
    """PDF bytes via nbconvert's LaTeX route (needs xelatex and pandoc)."""
    from nbconvert import PDFExporter

    from .tidy import tidy_notebook

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


# --- submit, verify, reproduce ------------------------------------------------------------------

def _submit(argv: Sequence[str]) -> int:
    """``submit``: export (through the cache), then write one verifiable zip per sheet."""
    from .bundle import make_bundle

    parser = _parser()
    parser.prog += " submit"
    parser.add_argument("--bundles", type=Path, default=Path("build/submit"), help="zip folder (default build/submit)")
    parser.set_defaults(merge=False)
    args = parser.parse_args(argv)
    if not args.execute:
        print("error: submit bundles executed notebooks; drop --no-execute.", file=sys.stderr)
        return 2
    results = _run_export(args)
    if results is None:
        return 2
    for r in results:
        if r.ok:
            print(f"bundle: {make_bundle(r.executed, r.pdf, args.bundles / f'{r.notebook.stem}.zip')}")
    return _report(results, args.strict)


def _verify(argv: Sequence[str]) -> int:
    """``verify``: check submission bundles; exit code 1 naming every mismatch."""
    from .bundle import verify

    parser = argparse.ArgumentParser(prog="python -m helpers.export verify",
                                     description="Check submission bundles written by `submit`.")
    parser.add_argument("bundles", nargs="+", type=Path, help="bundle zips")
    bad = 0
    for bundle in parser.parse_args(argv).bundles:
        report, problems = verify(bundle)
        print(f"{bundle}:")
        print("\n".join(f"  {line}" for line in report))
        print("\n".join(f"  MISMATCH {p}" for p in problems) or "  verified: notebook, PDF and manifest agree")
        bad += bool(problems)
    return 1 if bad else 0


def _reproduce(argv: Sequence[str]) -> int:
    """``reproduce``: run sheets in the full profile, collect their reference tables into a document."""
    from .reproduce import REPRODUCTION, write_reproduction

    parser = _parser()
    parser.prog += " reproduce"
    parser.add_argument("--doc", type=Path, default=REPRODUCTION, help="document to update (docs/REPRODUCTION.md)")
    parser.set_defaults(profile="full", out=Path("build/reproduce"), merge=False)
    args = parser.parse_args(argv)
    results = _run_export(args)
    if results is None:
        return 2
    records = {r.notebook.stem: r.pdf.with_suffix(".run.json") for r in results if r.ok}
    print(f"reference tables of {len(records)} sheet(s) written to {write_reproduction(records, args.doc)}")
    return _report(results, args.strict)


COMMANDS = {"submit": _submit, "verify": _verify, "reproduce": _reproduce}

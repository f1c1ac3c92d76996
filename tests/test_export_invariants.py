"""An invariant ✗ in any sheet's run is an error of the export command in every profile; a finding ✗ is not.

The command runs as ``make pdf`` runs it (``python -m helpers.export``, a real kernel and printer), on two
one-cell sheets: one whose only ✗ is a finding of the text, one with a ✗ invariant of the code.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from helpers.export.browser import find_browser, playwright_browser

REPO = Path(__file__).resolve().parents[1]
BROKEN = "the delta rule's gradient equals autograd's"


def _sheet(path: Path, title: str, code: str) -> Path:
    nbformat.write(new_notebook(cells=[new_markdown_cell(f"# {title}"), new_code_cell(code)]), path)
    return path


def _export(*args: str, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "KIT_CACHE": str(cache), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "helpers.export", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def sheets(tmp_path_factory) -> dict[str, Path]:
    if find_browser() is None and playwright_browser() is None:
        pytest.skip("no Chromium/Chrome to print with (run scripts/setup_pdf_tools.sh)")
    folder = tmp_path_factory.mktemp("invariants")
    return {
        "folder": folder,
        "finding": _sheet(folder / "01_finding.ipynb", "A finding that this run disagrees with",
                          'from helpers.checks import check, invariant\n'
                          'check("batch norm doubles the accuracy", False, bn=0.61, plain=0.5)\n'
                          'invariant("the grid has 12 settings", True, settings=12)'),
        "broken": _sheet(folder / "02_broken.ipynb", "An invariant that does not hold",
                         'from helpers.checks import invariant\n'
                         f'invariant("{BROKEN}", 0.3 < 1e-6, max_diff=0.3)\n'
                         'invariant("the grid has 12 settings", True, settings=12)'),
    }


def test_an_invariant_fails_make_pdf_and_make_submit_in_every_profile_naming_it_while_the_pdf_is_written(sheets):
    folder, out, cache = sheets["folder"], sheets["folder"] / "pdf", sheets["folder"] / "cache"
    both = [str(sheets["finding"]), str(sheets["broken"]), "--out", str(out), "--no-merge"]

    done = _export(*both, "--profile", "quick", cache=cache)
    assert done.returncode == 1, done.stdout + done.stderr
    named = f"02_broken: invariant does not hold: {BROKEN}  (max_diff=0.3)"
    assert named in done.stdout and named in done.stderr             # in the summary, and in the error lines
    assert "ran with an invariant ✗" in done.stderr and "Traceback" not in done.stderr
    assert "01_finding: invariant" not in done.stdout + done.stderr     # a ✗ finding is worth discussing, no error
    # The student still gets to see both PDFs and the run records that say why.
    assert (out / "01_finding.pdf").is_file() and (out / "02_broken.pdf").is_file()
    record = json.loads((out / "02_broken.run.json").read_text())
    assert [(c["claim"], c["ok"]) for c in record["checks"]][0] == (BROKEN, False)
    summary = [line for line in done.stdout.splitlines() if line.startswith("02_broken.ipynb")]
    assert summary and "1 invariant(s) ✗" in summary[0]

    # From the export cache (nothing runs again) the verdict is the same; the sheet with a ✗ finding alone passes.
    again = _export(str(sheets["broken"]), "--out", str(out), "--profile", "quick", cache=cache)
    assert again.returncode == 1 and named in again.stderr and "from the cache" in again.stdout
    alone = _export(str(sheets["finding"]), "--out", str(out), "--profile", "quick", cache=cache)
    assert alone.returncode == 0, alone.stdout + alone.stderr
    # make submit: the bundle is written (a student hands in what ran) and the command fails the same way.
    submit = _export("submit", str(sheets["broken"]), "--out", str(out), "--profile", "quick",
                     "--bundles", str(folder / "submit"), cache=cache)
    assert submit.returncode == 1 and named in submit.stderr and (folder / "submit" / "02_broken.zip").is_file()


def test_the_contents_page_of_all_sheets_marks_a_sheet_with_an_invariant_x(tmp_path):
    from helpers.export.merge import Sheet, cover_html

    sheets = [Sheet("Sheet 1", tmp_path / "01.pdf"), Sheet("Sheet 2", tmp_path / "02.pdf", invariants=1, findings=2),
              Sheet("Sheet 3", None, "boom")]
    assert [s.status for s in sheets] == ["ok", "ok, 1 invariant(s) ✗, 2 preflight finding(s)", "FAILED"]
    cover = cover_html(sheets, [2, 9, 20])
    assert "<td class='failed'>ok, 1 invariant(s) ✗, 2 preflight finding(s)</td>" in cover
    assert "1 sheet(s) ran with an invariant ✗" in cover and "<td class=''>ok</td>" in cover

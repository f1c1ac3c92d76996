"""The export cache: what invalidates a stored run, what reuses it, and a cache hit that stays light."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from pypdf import PdfWriter

from helpers.export import build, cache
from helpers.export import execute as execute_module
from helpers.export.bundle import NOTEBOOK_HASH_KEY, sha256

REPO = Path(__file__).resolve().parents[1]


def _sheet(path: Path, heading: str = "# Sheet", code: str = "x = 6 * 7\nprint(x)") -> Path:
    nbformat.write(new_notebook(cells=[new_markdown_cell(heading), new_code_cell(code)]), path)
    return path


class Printer:
    """Stands in for Chromium: a one-page PDF, counting the calls and keeping what it printed."""

    def __init__(self):
        self.printed = []

    def __call__(self, nb, path, via) -> bytes:
        self.printed.append(nb)
        writer = PdfWriter()
        writer.add_blank_page(width=595, height=842)
        import io
        out = io.BytesIO()
        writer.write(out)
        return out.getvalue()


@pytest.fixture
def runs(monkeypatch):
    """Count real executions (they still run)."""
    calls = []
    real = execute_module.execute_notebook

    def counting(path, **kw):
        calls.append(Path(path))
        return real(path, progress=None, **kw)

    monkeypatch.setattr(execute_module, "execute_notebook", counting)
    return calls


def test_code_edit_changes_the_execution_key_markdown_edit_only_the_render_key(tmp_path):
    sheet = _sheet(tmp_path / "s.ipynb")
    before = cache.keys(sheet, "smoke")
    _sheet(sheet, heading="# Sheet, reworded")
    markdown = cache.keys(sheet, "smoke")
    assert markdown.execution == before.execution and markdown.render != before.render
    _sheet(sheet, heading="# Sheet, reworded", code="x = 6 * 8\nprint(x)")
    assert cache.keys(sheet, "smoke").execution != before.execution
    assert cache.keys(sheet, "quick").execution != cache.keys(sheet, "smoke").execution
    assert cache.keys(sheet, "smoke", via="latex").render != cache.keys(sheet, "smoke").render


def test_helpers_edit_invalidates_but_a_printer_edit_only_reprints(tmp_path, monkeypatch):
    kit = tmp_path / "helpers"
    (kit / "export").mkdir(parents=True)
    for name in ("training.py", "export/execute.py", "export/browser.py"):
        (kit / name).write_text("# v1\n")
    monkeypatch.setattr(cache, "HELPERS", kit)
    monkeypatch.setattr(cache, "EXPORT", kit / "export")
    sheet = _sheet(tmp_path / "s.ipynb")
    first = cache.keys(sheet)
    (kit / "training.py").write_text("# v2\n")
    second = cache.keys(sheet)
    assert second.execution != first.execution
    (kit / "export" / "browser.py").write_text("# v2\n")
    third = cache.keys(sheet)
    assert third.execution == second.execution and third.render != second.render
    (kit / "export" / "execute.py").write_text("# v2\n")
    assert cache.keys(sheet).execution != third.execution


def test_data_files_are_part_of_the_key(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("KIT_DATA", str(data))
    sheet = _sheet(tmp_path / "s.ipynb")
    empty = cache.keys(sheet).execution
    (data / "train.csv").write_text("a,b\n1,2\n")
    added = cache.keys(sheet).execution
    assert added != empty
    os.utime(data / "train.csv", ns=(1, 1))
    assert cache.keys(sheet).execution != added


def test_unchanged_reuses_pdf_markdown_edit_reprints_without_executing_force_executes(tmp_path, runs):
    sheet, out, printer = _sheet(tmp_path / "s.ipynb"), tmp_path / "out", Printer()
    first = build.build_sheet(sheet, out, printer, profile="smoke", timeout=120)
    assert (first.how, len(runs), len(printer.printed)) == ("executed", 1, 1)
    pdf_bytes = first.pdf.read_bytes()

    again = build.build_sheet(sheet, out, printer, profile="smoke", timeout=120)
    assert (again.how, len(runs), len(printer.printed)) == ("cached", 1, 1)
    assert again.pdf.read_bytes() == pdf_bytes and again.pages == 1

    _sheet(sheet, heading="# Sheet, reworded")
    reworded = build.build_sheet(sheet, out, printer, profile="smoke", timeout=120)
    assert (reworded.how, len(runs), len(printer.printed)) == ("reprinted", 1, 2)
    printed = printer.printed[-1]
    assert printed.cells[0].source == "# Sheet, reworded"
    assert printed.cells[1].outputs[0].text == "42\n"                 # outputs of the stored run
    assert printed.cells[-1].metadata["kit"]["run_record"]            # the record stays at the end
    assert nbformat.read(reworded.notebook, as_version=4).cells[0].source == "# Sheet, reworded"

    forced = build.build_sheet(sheet, out, printer, profile="smoke", timeout=120, force=True)
    assert (forced.how, len(runs)) == ("executed", 2)

    _sheet(sheet, heading="# Sheet, reworded", code="print(6 * 8)")
    assert build.plan(sheet, "smoke") == "executed"


def test_printed_pdf_carries_the_notebook_hash_and_the_record_is_saved(tmp_path, runs):
    from pypdf import PdfReader

    built = build.build_sheet(_sheet(tmp_path / "s.ipynb"), tmp_path / "out", Printer(), profile="smoke", timeout=120)
    assert PdfReader(built.pdf).metadata[NOTEBOOK_HASH_KEY] == sha256(built.notebook.read_bytes())
    record = json.loads(built.record.read_text())
    assert record["profile"] == "smoke" and record["wall_s"] > 0 and record["executed_at"]


def test_a_damaged_rendering_is_a_miss(tmp_path, runs):
    sheet, printer = _sheet(tmp_path / "s.ipynb"), Printer()
    build.build_sheet(sheet, tmp_path / "out", printer, profile="smoke", timeout=120)
    k = cache.keys(sheet, "smoke")
    (cache.entry_dir(k.execution) / f"{k.render}.json").write_text("{not json")
    assert build.plan(sheet, "smoke") == "reprinted"
    assert build.build_sheet(sheet, tmp_path / "out", printer, profile="smoke", timeout=120).how == "reprinted"


def test_splice_refuses_a_run_whose_code_differs():
    executed = {"cells": [{"cell_type": "code", "source": "a = 1", "outputs": [], "metadata": {}}], "metadata": {}}
    current = {"cells": [{"cell_type": "code", "source": "a = 2", "metadata": {}}], "metadata": {}}
    with pytest.raises(ValueError, match="code cells differ"):
        cache.splice(executed, current)


def test_a_cached_export_imports_no_torch_nbformat_or_printer(tmp_path, runs):
    sheet, out = _sheet(tmp_path / "s.ipynb"), tmp_path / "out"
    build.build_sheet(sheet, out, Printer(), profile="smoke", timeout=120)
    probe = ("import sys\nfrom helpers.export.cli import main\n"
             f"code = main([{str(sheet)!r}, '--out', {str(out)!r}, '--profile', 'smoke'])\n"
             "heavy = ('torch', 'pandas', 'matplotlib', 'nbformat', 'nbclient', 'nbconvert', 'pypdf', 'playwright')\n"
             "print(code, sorted(m for m in heavy if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(REPO), "CHROMIUM_PATH": "/nonexistent/chrome"}  # no browser needed
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 []"
    assert "ok (cached)" in done.stdout

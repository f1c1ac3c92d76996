"""PDF export: a real notebook printed by Chromium, failures named, merging, tidy outputs."""
from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from pypdf import PdfReader, PdfWriter

from helpers.export.browser import find_browser, playwright_browser
from helpers.export.cli import main
from helpers.export.merge import merge_pdfs
from helpers import machine
from helpers.export.tidy import WIDGET_STATE, WIDGET_VIEW, tidy_notebook, with_title_block

MINI = Path(__file__).parent / "fixtures" / "mini.ipynb"
ON_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _require(what: str, available: bool) -> None:
    """Skip when a system tool is missing, except on CI where that is a failure."""
    if available:
        return
    message = f"{what} not installed (run scripts/setup_pdf_tools.sh)"
    if ON_CI:
        pytest.fail(f"{message}; CI must be able to build the PDFs")
    pytest.skip(message)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    """Run the command line once on a failing notebook and the mini notebook (both executed)."""
    folder = tmp_path_factory.mktemp("export")
    bad = folder / "00_bad.ipynb"
    nbformat.write(new_notebook(cells=[
        new_markdown_cell("# Broken sheet"),
        new_code_cell("x = 1"),
        new_code_cell("learning_rate = 0\nsteps = 1 / learning_rate"),
        new_code_cell("print('never reached')"),
    ]), bad)
    out = folder / "pdf"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), pytest.MonkeyPatch.context() as mp:
        mp.setenv("KIT_CACHE", str(folder / "cache"))    # a fresh export cache: the sheets really execute
        code = main([str(bad), str(MINI), "--out", str(out), "--profile", "smoke"])
    return {"code": code, "out": out, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}


@pytest.fixture(scope="module")
def mini_pdf(exported) -> Path:
    """The mini notebook's PDF, where a browser and poppler are available."""
    _require("Chromium/Chrome", find_browser() is not None or playwright_browser() is not None)
    _require("poppler-utils (pdftotext, pdfimages)", bool(shutil.which("pdftotext") and shutil.which("pdfimages")))
    pdf = exported["out"] / "mini.pdf"
    assert pdf.is_file(), f"mini.pdf was not written; files: {sorted(p.name for p in exported['out'].iterdir())}"
    return pdf


def _text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout


def test_mini_pdf_has_pages_heading_table_and_rendered_math(mini_pdf):
    assert len(PdfReader(mini_pdf).pages) >= 1
    text = _text(mini_pdf)
    assert "Mini sheet: export check" in text
    assert "learning rate" in text                     # the pandas table
    assert "$" not in text and "\\frac" not in text    # MathJax typeset the formulas
    assert "∑" in text or "∂" in text


def test_mini_pdf_embeds_the_plot(mini_pdf):
    listing = subprocess.run(["pdfimages", "-list", str(mini_pdf)], check=True, capture_output=True,
                             text=True).stdout.splitlines()
    images = [line for line in listing[2:] if line.strip()]   # two header lines
    assert len(images) >= 1


def test_progress_bar_leaves_no_residue_in_the_pdf(mini_pdf):
    text = _text(mini_pdf)
    assert "training:" not in text and "100/100" not in text and "|█" not in text


def test_each_sheet_opens_with_its_title_block(mini_pdf):
    first = subprocess.run(["pdftotext", "-l", "1", str(mini_pdf), "-"], check=True, capture_output=True,
                           text=True).stdout
    for label in ("Sheet", "Mini sheet: export check (mini.ipynb)", "Run profile", "smoke", "Device",
                  "Kit version", "Date", "CPU", machine.cpu_model()):
        assert label in first, label


def test_the_cover_names_the_cpu_and_torch_threads_the_run_recorded(tmp_path):
    """The run's machine, not the printing one's: a notebook without a run record says so."""
    record = {"cpu": "Intel(R) Xeon(R) Gold 6338", "cpu_cores": 2, "torch_threads": 2, "cpu_capability": "AVX512"}
    nb = new_notebook(cells=[new_markdown_cell("# A sheet")], metadata={"kit": {"device": "cpu", "record": record}})
    cover = with_title_block(nb, tmp_path / "01_a.ipynb", "quick").cells[0].source
    assert "<b>CPU</b></td><td>Intel(R) Xeon(R) Gold 6338, 2 cores; torch 2 threads, AVX512</td>" in cover
    stored = new_notebook(cells=[new_markdown_cell("# A sheet")], metadata={"kit": {"device": "cpu"}})
    assert "<b>CPU</b></td><td>not recorded</td>" in with_title_block(stored, tmp_path / "01_a.ipynb", "quick").cells[0].source


def test_pdf_has_bookmarks_from_the_headings(mini_pdf):
    titles = [item.title for item in PdfReader(mini_pdf).outline if not isinstance(item, list)]
    assert any("Mini sheet" in title for title in titles), titles


def test_merged_pdf_has_a_cover_and_a_page_for_the_failed_sheet(exported, mini_pdf):
    merged = exported["out"] / "all-sheets.pdf"
    reader = PdfReader(merged)
    cover = reader.pages[0].extract_text()
    assert "Broken sheet" in cover and "FAILED" in cover and "Mini sheet: export check" in cover
    failure = reader.pages[1].extract_text()
    assert "Broken sheet" in failure and "ZeroDivisionError" in failure
    assert len(reader.pages) == 2 + len(PdfReader(mini_pdf).pages)
    titles = [item.title for item in reader.outline if not isinstance(item, list)]
    assert titles[0] == "Contents" and titles[1].startswith("Broken sheet (FAILED")
    # The mini sheet's bookmark and its cover row both point at page 3 (cover, failure page, sheet).
    mini = next(item for item in reader.outline if not isinstance(item, list) and item.title.startswith("Mini"))
    assert reader.get_destination_page_number(mini) == 2
    assert re.search(r"Mini sheet: export check\s+ok\s+3", cover), cover


def test_failing_notebook_is_named_with_its_cell_and_others_still_export(exported):
    assert exported["code"] == 1
    assert "00_bad.ipynb: cell 3 of 4 failed: ZeroDivisionError: division by zero" in exported["stderr"]
    assert "| steps = 1 / learning_rate" in exported["stderr"]
    summary = exported["stdout"].split("notebook", 1)[-1]
    assert "00_bad.ipynb" in summary and "FAILED" in summary and "mini.ipynb" in summary
    assert (exported["out"] / "00_bad.ipynb").is_file()          # partial run kept for the student
    assert not (exported["out"] / "00_bad.pdf").exists()
    assert (exported["out"] / "mini.ipynb").is_file()            # executed copy kept for TAs


def _blank_pdf(path: Path, pages: int) -> Path:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    writer.write(path)
    return path


def test_merge_concatenates_all_pages(tmp_path):
    parts = [_blank_pdf(tmp_path / "a.pdf", 2), _blank_pdf(tmp_path / "b.pdf", 3)]
    merged = merge_pdfs(parts, tmp_path / "out" / "all-sheets.pdf")
    assert merged.name == "all-sheets.pdf"
    assert len(PdfReader(merged).pages) == 5


def _with_outputs(*outputs, metadata=None):
    nb = new_notebook(cells=[new_code_cell("pass")])
    nb.cells[0].outputs = list(outputs)
    nb.metadata.update(metadata or {})
    return nb


def test_huge_stream_output_is_trimmed_with_a_note():
    text = "".join(f"epoch {i}\n" for i in range(500))
    out = tidy_notebook(_with_outputs(new_output("stream", name="stdout", text=text))).cells[0].outputs[0]
    lines = out.text.splitlines()
    assert len(lines) <= 60
    assert "[… 442 lines trimmed …]" in lines
    assert lines[0] == "epoch 0" and lines[-1] == "epoch 499"


def test_one_huge_line_is_trimmed_by_characters():
    out = tidy_notebook(_with_outputs(new_output("stream", name="stdout", text="x" * 50_000))).cells[0].outputs[0]
    assert len(out.text) < 11_000
    assert "[… 40000 characters trimmed …]" in out.text


def test_carriage_return_progress_collapses_to_last_state():
    chunks = [f"\r{p:3d}%|{'#' * (p // 10):10s}| {p}/100" for p in range(0, 101, 5)]
    outputs = [new_output("stream", name="stdout", text=c) for c in chunks] + \
              [new_output("stream", name="stdout", text="\ndone\n")]
    cell = tidy_notebook(_with_outputs(*outputs)).cells[0]
    assert len(cell.outputs) == 1
    assert cell.outputs[0].text == "100%|##########| 100/100\ndone\n"


def test_stderr_progress_does_not_print():
    outputs = [new_output("stream", name="stderr", text=f"\r{p:3d}%|") for p in range(0, 101, 50)]
    assert tidy_notebook(_with_outputs(*outputs)).cells[0].outputs == []


def test_progress_widgets_vanish_and_other_widgets_print_their_final_text():
    def model(name, **state):
        return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}
    states = {
        "box": model("HBoxModel", children=["IPY_MODEL_left", "IPY_MODEL_bar", "IPY_MODEL_right"], layout="IPY_MODEL_l1"),
        "left": model("HTMLModel", value="train:\u2007100%"),
        "bar": model("FloatProgressModel", min=0, max=40, value=40),
        "right": model("HTMLModel", value="\u200740/40\u2007[00:01&lt;00:00]"),
        "l1": model("LayoutModel"),
        "gone": model("HBoxModel", children=[], layout="IPY_MODEL_l2"),
        "l2": model("LayoutModel", visibility="hidden"),
        "label": model("LabelModel", value="best lr: 0.01"),
    }
    def view(model_id):
        return new_output("display_data", data={WIDGET_VIEW: {"model_id": model_id, "version_major": 2},
                                                "text/plain": "HBox(children=(HTML(value=''), ...))"})
    nb = _with_outputs(view("box"), view("gone"), view("label"),
                       metadata={"widgets": {WIDGET_STATE: {"state": states, "version_major": 2}}})
    tidy = tidy_notebook(nb)
    # The tqdm bar (a box holding a progress model) is dropped; its story is in the run record.
    assert [o.data["text/plain"] for o in tidy.cells[0].outputs] == ["best lr: 0.01"]
    assert "widgets" not in tidy.metadata      # no widget renderer fetched from a CDN


def test_chromium_path_setting_wins_and_a_wrong_one_is_explained(tmp_path, monkeypatch):
    fake = tmp_path / "my-chrome"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CHROMIUM_PATH", str(fake))
    assert find_browser() == str(fake)
    monkeypatch.setenv("CHROMIUM_PATH", str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="CHROMIUM_PATH"):
        find_browser()

"""The printed page loses nothing: wide code, tables and equations fit, or the preflight says so."""
from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from helpers.export.browser import find_browser, playwright_browser
from helpers.export.cli import main
from helpers.export.coverage import missing_from_pdf, pdf_text
from helpers.export.tidy import hide_paths, png_size_inches, tidy_notebook

# 300+ characters with spaces, nested two levels deep: it must wrap, and hang under its own indent.
LONG_LINE = "total = " + " + ".join(f"weight_{i:03d} * feature_{i:03d}" for i in range(11)) + "  # tail_word_kept"
EQUATION = "$$L(w) = " + " + ".join(f"\\alpha_{{{i}}} (y_{{{i}}} - w^\\top x_{{{i}}})^2" for i in range(14)) + "$$"


@pytest.fixture(scope="module")
def wide(tmp_path_factory) -> dict:
    """Export, with --strict, a notebook of wide things, one of which cannot be fitted."""
    if find_browser() is None and playwright_browser() is None or not shutil.which("pdftotext"):
        pytest.skip("Chromium and poppler-utils are needed (scripts/setup_pdf_tools.sh)")
    folder = tmp_path_factory.mktemp("wide")
    nb = new_notebook(cells=[
        new_markdown_cell("# Wide things\n\n" + EQUATION),
        new_code_cell("import numpy as np\nimport pandas as pd\npd.set_option('display.max_columns', 40)"),
        new_code_cell("def f():\n    if True:\n        " + LONG_LINE + "\n    return total"),
        new_code_cell("pd.DataFrame(np.arange(90).reshape(3, 30), columns=[f'c{i}' for i in range(30)])"),
        new_code_cell("pd.DataFrame(np.full((2, 30), 0.123456789), columns=[f'column_{i}' for i in range(30)])"),
        new_code_cell("hidden_plumbing_word = 'shown_result_word'\nprint(hidden_plumbing_word)",
                      metadata={"tags": ["remove-input"]}),
        new_code_cell("print('removed_output_word')", metadata={"tags": ["remove-output"]}),
        new_code_cell("print('removed_cell_word')", metadata={"tags": ["remove-cell"]}),
    ])
    path = folder / "wide.ipynb"
    nbformat.write(nb, path)
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main([str(path), "--out", str(folder / "pdf"), "--profile", "smoke", "--strict"])
    return {"code": code, "stdout": stdout.getvalue(), "stderr": stderr.getvalue(),
            "pdf": folder / "pdf" / "wide.pdf", "executed": folder / "pdf" / "wide.ipynb"}


def test_long_code_line_wide_table_and_equation_print_whole(wide):
    assert len(LONG_LINE) >= 300
    missing = missing_from_pdf(wide["executed"], wide["pdf"])
    # Only the unfixable table (cell 5) may lose cells; the 30-column table and the code are whole.
    assert not [m for m in missing if not m.startswith("cell 5:")], missing
    text = pdf_text(wide["pdf"])
    assert "tail_word_kept" in text and "c29" in text and "89" in text
    assert "α13" in text.replace("\n", "") or "α" in text     # MathJax typeset the equation


def test_cell_tags_hold_in_the_pdf(wide):
    text = pdf_text(wide["pdf"])
    assert "shown_result_word" in text and "hidden_plumbing_word" not in text
    assert text.count("removed_output_word") == 1          # the code, not its output
    assert "removed_cell_word" not in text


def test_unfixable_table_is_reported_and_strict_fails(wide):
    assert wide["code"] == 1
    findings = [line for line in wide["stdout"].splitlines() if "wider than the text" in line]
    assert len(findings) == 1, wide["stdout"]
    assert "wide cell 5: table" in findings[0]
    assert "--strict" in wide["stderr"]


def test_code_keeps_its_indentation_when_it_wraps(wide):
    import subprocess
    layout = subprocess.run(["pdftotext", "-layout", str(wide["pdf"]), "-"], capture_output=True, text=True,
                            check=True).stdout.splitlines()
    start = next(i for i, line in enumerate(layout) if "total = weight_000" in line)
    first_indent = len(layout[start]) - len(layout[start].lstrip())
    continuation = layout[start + 1]
    # The continuation hangs to the right of where the statement started, not at column 0.
    assert len(continuation) - len(continuation.lstrip()) > first_indent, layout[start:start + 3]


def _cell(*outputs, tags=()):
    cell = new_code_cell("x = 1", metadata={"tags": list(tags)})
    cell.outputs = list(outputs)
    return cell


def test_tags_remove_cell_input_and_output():
    nb = new_notebook(cells=[_cell(new_output("stream", name="stdout", text="a\n"), tags=["remove-cell"]),
                             _cell(new_output("stream", name="stdout", text="b\n"), tags=["remove-input"]),
                             _cell(new_output("stream", name="stdout", text="c\n"), tags=["remove-output"])])
    tidy = tidy_notebook(nb)
    assert [c.id for c in tidy.cells] == ["kit-cell-2", "kit-cell-3"]
    assert tidy.cells[0].metadata.transient == {"remove_source": True} and tidy.cells[0].outputs[0].text == "b\n"
    assert tidy.cells[1].outputs == []


def test_stderr_download_lines_and_local_paths_do_not_print(monkeypatch, tmp_path):
    monkeypatch.setenv("KIT_CACHE", str(tmp_path / "cache"))
    nb = new_notebook(cells=[_cell(
        new_output("stream", name="stderr", text="UserWarning: something\n 50%|█████     | 1/2\n"),
        new_output("stream", name="stdout",
                   text=f"Downloading: https://download.pytorch.org/x.pth\nstudy at sqlite:///{tmp_path}/cache/s.db\n"),
    )])
    outputs = tidy_notebook(nb).cells[0].outputs
    assert len(outputs) == 1
    assert outputs[0].text == "study at sqlite:///<cache>/s.db\n"
    assert hide_paths(f"{tmp_path}/cache/x") == "<cache>/x"


def test_png_size_in_inches_comes_from_its_dpi():
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.0, 2.5), dpi=100)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    width, height = png_size_inches(buffer.getvalue())
    assert width == pytest.approx(4.0, abs=0.02) and height == pytest.approx(2.5, abs=0.02)


def _table_notebook(table_html: str):
    """A one-cell notebook whose code 'x = 1' printed ``table_html``."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1", outputs=[nbformat.v4.new_output(
        "execute_result", data={"text/html": table_html, "text/plain": "t"}, execution_count=1)])]
    return nb


def test_coverage_reads_wrapped_table_cells_word_by_word_but_still_finds_a_lost_cell(monkeypatch):
    from helpers.export import coverage

    nb = _table_notebook("<table><tr><td>delta-rule gradients against autograd</td><td>zebra quokka</td></tr></table>")
    # pdftotext reads a wrapped cell interleaved with its neighbour's lines.
    monkeypatch.setattr(coverage, "pdf_text", lambda pdf: "x = 1\ndelta-rule gradients\nzebra quokka\nagainst autograd\n")
    assert coverage.missing_from_pdf(nb, Path("unused.pdf")) == []
    monkeypatch.setattr(coverage, "pdf_text", lambda pdf: "x = 1\ndelta-rule gradients against autograd\nzebra\n")
    assert coverage.missing_from_pdf(nb, Path("unused.pdf")) == ["cell 1: table cell 'zebra quokka'"]


def test_coverage_forgives_a_hyphen_broken_at_a_line_end_but_not_a_lost_minus_sign(monkeypatch):
    from helpers.export import coverage

    nb = _table_notebook("<table><tr><td>linear_probe, lr 1e-05: 0.5050</td><td>-0.0133</td></tr></table>")
    monkeypatch.setattr(coverage, "pdf_text", lambda pdf: "x = 1\nlinear_probe, lr 1e05: 0.5050\n-0.0133\n")
    assert coverage.missing_from_pdf(nb, Path("unused.pdf")) == []
    monkeypatch.setattr(coverage, "pdf_text", lambda pdf: "x = 1\nlinear_probe, lr 1e05: 0.5050\n0.0133\n")
    assert coverage.missing_from_pdf(nb, Path("unused.pdf")) == ["cell 1: table cell '-0.0133'"]

"""Committed notebooks carry no outputs: diffs stay readable and no run's numbers or paths leak into git.

JupyterLab's autosave writes outputs into the tracked files as soon as a sheet runs, so this test
fails until they are cleared again (README, "Working in JupyterLab").
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tracked_notebooks() -> list[Path]:
    """The notebooks git tracks (all under notebooks/ when this is not a git checkout)."""
    try:
        listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "*.ipynb"], capture_output=True, text=True,
                                check=True, timeout=30).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return sorted((ROOT / "notebooks").glob("*.ipynb"))
    return [ROOT / name for name in listed if not name.startswith("tests/fixtures/")]


NOTEBOOKS = _tracked_notebooks()


def dirty_cells(nb: nbformat.NotebookNode) -> list[int]:
    """Numbers (1-based) of code cells that hold outputs or an execution count."""
    return [number for number, cell in enumerate(nb.cells, 1)
            if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)]


def test_the_sheets_are_tracked():
    assert any(path.parent.name == "notebooks" for path in NOTEBOOKS), NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_notebook_has_no_outputs(path):
    cells = dirty_cells(nbformat.read(path, as_version=4))
    assert not cells, (f"{path.relative_to(ROOT)} has outputs in cell(s) {cells}; clear them before committing: "
                       f"jupyter nbconvert --clear-output --inplace {path.relative_to(ROOT)}")


def test_a_notebook_with_outputs_is_caught():
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    cell = new_code_cell("1 + 1", execution_count=1, outputs=[new_output("execute_result", {"text/plain": "2"},
                                                                         execution_count=1)])
    assert dirty_cells(new_notebook(cells=[new_code_cell("x = 1"), cell])) == [2]

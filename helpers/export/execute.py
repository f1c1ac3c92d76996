"""Run a notebook top to bottom with nbclient and, when a cell fails, say which one and why."""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbformat import NotebookNode

from ..config import get_profile
from .tidy import trim_text

DEFAULT_TIMEOUT = 1800
SOURCE_LINES = 3


class NotebookFailed(RuntimeError):
    """A notebook could not be executed; the message says where and why."""

    def __init__(self, message: str, partial: NotebookNode | None = None):
        super().__init__(message)
        self.partial = partial  # the notebook as far as it ran, traceback included


def execute_notebook(path: Path, profile: str | None = None, timeout: int = DEFAULT_TIMEOUT,
                     kernel_name: str = "python3") -> NotebookNode:
    """Run every cell of the notebook at ``path`` (cwd its folder, KIT_PROFILE set) and return it."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    env = {**os.environ, "KIT_PROFILE": get_profile(profile),
           # Silences debugpy's frozen-modules warning that would otherwise flood the terminal.
           "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    try:
        client.execute(env=env)
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
        raise NotebookFailed(describe_failure(path, nb, error), partial=nb) from error
    return nb


def describe_failure(path: Path, nb: NotebookNode, error: Exception) -> str:
    """Name the notebook, the failing cell (number, first source lines) and the error."""
    index = _failing_cell(nb)
    summary = _error_summary(nb, index, error)
    if index is None:
        return f"{path}: execution failed: {summary}"
    source = nb.cells[index].source.splitlines()[:SOURCE_LINES]
    shown = "\n".join(f"    | {line}" for line in source)
    return f"{path}: cell {index + 1} of {len(nb.cells)} failed: {summary}\n{shown}"


def _failing_cell(nb: NotebookNode) -> int | None:
    """Index of the first code cell holding an error output (where execution stopped)."""
    for index, cell in enumerate(nb.cells):
        if any(out.get("output_type") == "error" for out in cell.get("outputs", [])):
            return index
    return None


def _error_summary(nb: NotebookNode, index: int | None, error: Exception) -> str:
    """'Type: message' of the error, from the cell's error output where there is one."""
    if index is not None:
        out = next(o for o in nb.cells[index].outputs if o.get("output_type") == "error")
        return f"{out.get('ename')}: {out.get('evalue')}"
    # A timeout or a dead kernel leaves no error output; nbclient's message previews the cell.
    return f"{type(error).__name__}: {trim_text(str(error).strip(), max_lines=12)}"

"""Run a notebook top to bottom with nbclient: one progress line per cell, a run record at the end,
and, when a cell fails or times out, say which one and why.

- Progress: while a sheet runs, each code cell prints ``sheet  cell i/n  elapsed  first line`` on
  stderr; each cell's duration is kept in its metadata (``kit.duration_s``) for the bundle.
- Run record: a last cell, executed in the same kernel, shows profile, device, wall time, runs
  trained or cached and every claim check (``helpers.checks.run_record``), and saves the same as
  JSON at the path in ``KIT_RUN_RECORD``; it lands in the notebook's metadata (``kit.record``).
- The kernel's own stderr (ipykernel's "running over TCP" warning, ZMQ noise after an interrupt)
  goes to a temporary log; only a dead kernel shows its tail.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ..config import get_profile
from .provenance import environment

if TYPE_CHECKING:
    from nbformat import NotebookNode

# nbclient and nbformat are imported where a notebook is executed: the command line imports this
# module for its defaults, and a sheet served from the cache must not pay seconds for them.

DEFAULT_TIMEOUT = 1800
SOURCE_LINES = 3
RECORD_ENV = "KIT_RUN_RECORD"
# Folders the kernel reads from the environment; the kernel runs in the notebook's folder, so a
# relative one must be made absolute against where the command was started, once.
PATH_VARS = ("KIT_DATA", "KIT_CACHE", "KIT_SHARED_DATA")
RECORD_SOURCE = "from helpers.checks import run_record\nrun_record()"


class NotebookFailed(RuntimeError):
    """A notebook could not be executed; the message says where and why."""

    def __init__(self, message: str, partial: NotebookNode | None = None):
        super().__init__(message)
        self.partial = partial  # the notebook as far as it ran, traceback included


def pin_kit_paths(environ: dict | None = None) -> None:
    """Make relative KIT_DATA / KIT_CACHE / KIT_SHARED_DATA absolute against the current folder."""
    environ = os.environ if environ is None else environ
    for name in PATH_VARS:
        value = environ.get(name)
        if value and not Path(value).expanduser().is_absolute():
            environ[name] = str(Path(value).expanduser().resolve())


def with_run_record(nb: NotebookNode) -> NotebookNode:
    """Append the run-record heading and cell (marked ``kit.run_record``) to ``nb``."""
    from nbformat.v4 import new_code_cell, new_markdown_cell

    mark = {"kit": {"run_record": True}}
    nb.cells.append(new_markdown_cell("## Run record", metadata=mark))
    nb.cells.append(new_code_cell(RECORD_SOURCE, metadata=mark))
    return nb


class Progress:
    """nbclient cell hooks: one line per code cell on ``stream`` and each cell's duration."""

    def __init__(self, name: str, total: int, stream: TextIO | None = None):
        self.name, self.total, self.stream = name, total, stream
        self.started = time.perf_counter()
        self.current: int | None = None
        self._cell_start = self.started

    def on_cell_start(self, cell: NotebookNode, cell_index: int, **_) -> None:
        """Print the line for a code cell about to run."""
        if cell.cell_type != "code" or not cell.source.strip():
            return
        self.current, self._cell_start = cell_index, time.perf_counter()
        if self.stream is not None:
            first = cell.source.strip().splitlines()[0][:70]
            where = f"cell {cell_index + 1}/{self.total}" if cell_index < self.total else "run record"
            elapsed = self._cell_start - self.started
            print(f"  {self.name}  {where}  {elapsed:6.1f}s  {first}", file=self.stream, flush=True)

    def on_cell_executed(self, cell: NotebookNode, cell_index: int, **_) -> None:
        """Keep the cell's duration in its metadata."""
        cell.metadata.setdefault("kit", {})["duration_s"] = round(time.perf_counter() - self._cell_start, 3)


def execute_notebook(path: Path, profile: str | None = None, timeout: int = DEFAULT_TIMEOUT,
                     kernel_name: str = "python3", progress: TextIO | None = sys.stderr,
                     record: bool = True) -> NotebookNode:
    """Run every cell of the notebook at ``path`` (cwd its folder, KIT_PROFILE set) and return it."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    total = len(nb.cells)   # the student's cells: messages count these, not the appended record
    if record:
        with_run_record(nb)
    profile = get_profile(profile)
    pin_kit_paths()
    hooks = Progress(path.stem, total, progress)
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(path.parent.resolve())}},
                            on_cell_start=hooks.on_cell_start, on_cell_executed=hooks.on_cell_executed)
    with tempfile.TemporaryDirectory(prefix="kit-run-") as tmp:
        record_file = Path(tmp) / "record.json"
        env = {**os.environ, "KIT_PROFILE": profile, RECORD_ENV: str(record_file),
               # Silences debugpy's frozen-modules warning that would otherwise flood the terminal.
               "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
        with open(Path(tmp) / "kernel.log", "w+", encoding="utf-8") as kernel_log:
            try:
                client.execute(env=env, stderr=kernel_log)
            except CellTimeoutError as error:
                raise NotebookFailed(describe_timeout(path, nb, hooks.current, timeout, total), partial=nb) from error
            except DeadKernelError as error:
                kernel_log.seek(0)
                tail = _tail(kernel_log.read().strip())
                raise NotebookFailed(describe_failure(path, nb, error, total) + (f"\n  kernel log:\n{tail}" if tail else ""),
                                     partial=nb) from error
            except CellExecutionError as error:
                raise NotebookFailed(describe_failure(path, nb, error, total), partial=nb) from error
        saved = json.loads(record_file.read_text(encoding="utf-8")) if record_file.is_file() else None
    nb.metadata["kit"] = {"profile": profile, "executed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                          "wall_s": round(time.perf_counter() - hooks.started, 1), "timeout_s": timeout,
                          "device": (saved or {}).get("device"),   # the title block prints it
                          "environment": environment(), "record": saved}
    return nb


def describe_timeout(path: Path, nb: NotebookNode, index: int | None, timeout: int, total: int | None = None) -> str:
    """Name the notebook and the cell that ran past the per-cell time limit."""
    where = f"cell {index + 1} of {total or len(nb.cells)}" if index is not None else "a cell"
    message = (f"{path}: {where} timed out after {timeout} s "
               "(raise --timeout / NB_TIMEOUT, or use a smaller profile)")
    if index is None:
        return message
    return message + "\n" + _shown_source(nb.cells[index])


def describe_failure(path: Path, nb: NotebookNode, error: Exception, total: int | None = None) -> str:
    """Name the notebook, the failing cell (number, first source lines) and the error."""
    index = _failing_cell(nb)
    summary = _error_summary(nb, index, error)
    if index is None:
        return f"{path}: execution failed: {summary}"
    where = f"cell {index + 1} of {total or len(nb.cells)}" if index < (total or len(nb.cells)) else "the run record"
    return f"{path}: {where} failed: {summary}\n{_shown_source(nb.cells[index])}"


def _shown_source(cell: NotebookNode) -> str:
    """The cell's first source lines, indented with a bar."""
    return "\n".join(f"    | {line}" for line in cell.source.splitlines()[:SOURCE_LINES])


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
    # A dead kernel leaves no error output; nbclient's message previews the cell.
    return f"{type(error).__name__}: {_tail(str(error).strip())}"


def _tail(text: str, lines: int = 12) -> str:
    """The last ``lines`` lines of ``text``."""
    return "\n".join(text.splitlines()[-lines:])

"""The kit's otter-grader plugin: grade a notebook the way students really hand it in.

otter runs each ``grader.check("q…")`` cell where it stands and keeps that result, so a student who
moved a check cell above the solution, or deleted it, would be graded on the wrong state. Before
the submission runs, this plugin (named in each sheet's assignment config, so otter's own grading
on Gradescope or in Docker uses it too):

- starts every cell with a time budget (``KIT_CELL_TIMEOUT`` seconds, default 300): a cell that
  loops forever raises ``TimeoutError`` in that cell, and the rest of the notebook still runs;
- appends one cell that checks every question, by name, on the notebook's final state (the last
  result of a question counts, so this one wins over any moved or duplicated check cell).

After grading it writes what the kit's gradebook needs as JSON (never a pickle) to the file named
by ``KIT_GRADE_REPORT``: each question's score and test cases, and the cells that raised errors.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from otter.plugins import AbstractOtterPlugin

from .. import store

REPORT_ENV = "KIT_GRADE_REPORT"
CELL_TIMEOUT_ENV = "KIT_CELL_TIMEOUT"
DEFAULT_CELL_TIMEOUT = 300
ADDED = "kit_grading"       # metadata key of the cells this plugin adds
NUMBER = "kit_code_cell"    # metadata key: a submitted code cell's number (otter adds cells of its own)

# Runs first, in the student's kernel: IPython's cell events arm and disarm an alarm around each
# cell. The names start with __kit_ so that a student's variables cannot clash with them.
_TIMER_CELL = """\
import signal as __kit_signal
def __kit_cell_timeout(signum, frame):
    raise TimeoutError("this cell ran longer than {seconds} s (an endless loop?); the grader stopped it")
__kit_signal.signal(__kit_signal.SIGALRM, __kit_cell_timeout)
get_ipython().events.register("pre_run_cell", lambda info: __kit_signal.alarm({seconds}))
get_ipython().events.register("post_run_cell", lambda result: __kit_signal.alarm(0))
"""

_FINAL_CHECKS = """\
from otter.execute import Checker as __KitChecker
from otter.nbmeta_config import NBMetadataConfig as __KitNBMetadataConfig
for __kit_test in {tests}:
    __KitChecker.check(__kit_test, __KitNBMetadataConfig(), global_env=globals())
"""


def _test_function_names(path: str | None) -> list[str]:
    """The test functions of an otter test file, in order ('test_product', …): otter only numbers them."""
    import ast

    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, TypeError, ValueError):
        return []
    return [node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.decorator_list]


class KitGrading(AbstractOtterPlugin):
    """Grade every question on the notebook's final state, each cell under a time budget; report as JSON."""

    def before_execution(self, submission: Any) -> Any:
        """Add the cell timer at the top and the final checks at the end of the submitted notebook."""
        if isinstance(submission, str):  # a .py submission: nothing of ours applies
            return submission
        import nbformat

        tests = sorted(str(p) for p in (Path(self.submission_path).parent / "tests").glob("*.py"))
        seconds = int(os.environ.get(CELL_TIMEOUT_ENV) or DEFAULT_CELL_TIMEOUT)
        code = [cell for cell in submission.cells if cell.get("cell_type") == "code"]
        for number, cell in enumerate(code, 1):
            cell.setdefault("metadata", {})[NUMBER] = number
        meta = {ADDED: True}
        submission.cells.insert(0, nbformat.v4.new_code_cell(_TIMER_CELL.format(seconds=seconds), metadata=meta))
        submission.cells.append(nbformat.v4.new_code_cell(_FINAL_CHECKS.format(tests=json.dumps(tests)),
                                                          metadata=meta))
        return submission

    def after_grading(self, results: Any) -> None:
        """Write each question's score, its test cases and the cells that raised errors to KIT_GRADE_REPORT."""
        target = os.environ.get(REPORT_ENV)
        if not target:
            return
        questions = {}
        for name, test_file in results.results.items():
            data = test_file.to_dict()
            names = _test_function_names(data.get("path"))
            tests = []
            for i, r in enumerate(data["test_case_results"]):
                case = r["test_case"]
                tests.append({"name": names[i] if i < len(names) else case["name"], "hidden": bool(case.get("hidden")),
                              "passed": bool(r["passed"]), "message": (r.get("message") or "").strip()})
            questions[name] = {"score": data["score"], "possible": data["possible"], "tests": tests}
        errors = []
        for cell in getattr(results.notebook, "cells", None) or []:
            number = cell.get("metadata", {}).get(NUMBER)
            for out in cell.get("outputs", []) if number is not None else []:
                if out.get("output_type") == "error":
                    first = (cell.get("source", "").strip().splitlines() or [""])[0]
                    errors.append({"code_cell": number, "error": f"{out.get('ename')}: {out.get('evalue')}"[:300],
                                   "first_line": first[:120]})
        store.write_json(target, {"questions": questions, "errors": errors}, indent=1)

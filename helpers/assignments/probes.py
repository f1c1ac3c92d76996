"""A sheet's tests as probes: run in the student's kernel, they report what the student's code gave, as plain data.

While grading, each test function of a question (public or hidden) runs in the kernel that ran the student's
notebook, with ``expect_close``/``expect_equal`` reporting the value they got instead of asserting
(``helpers.exercises._observer``). What a probe reports is plain data: numbers, strings, lists, and arrays as
``{"array": [...], "shape": [...]}``; never a pickle. The verdict (``helpers.assignments.verdict``) compares it
with what the master's own solution gave on the same probe, in the grader's process, which never runs student
code. Nothing here decides a grade: a student who patches this module only changes the data it reports.
"""
from __future__ import annotations

import ast
import builtins
import inspect
import json
import signal
from collections.abc import Callable
from typing import Any

MAX_ELEMENTS = 200_000   # an array larger than this is reported by its shape alone
MAX_ITEMS = 10_000       # list and dict entries kept
MAX_TEXT = 2_000         # characters kept of a string
PROBE_CPU_SECONDS = 120  # CPU budget of one probe (a test's own time_limit uses the wall clock)


def to_plain(value: Any, depth: int = 0) -> Any:
    """``value`` as plain JSON data: numbers, strings, lists, dicts, and arrays/tensors as {"array", "shape"}."""
    if depth > 20:
        return {"object": "nested too deep"}
    if value is None or isinstance(value, (bool, str)):
        return value[:MAX_TEXT] if isinstance(value, str) else value
    if isinstance(value, int):
        return value if abs(value) < 2 ** 63 else float(value)
    if isinstance(value, float):
        return value
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, without importing torch here
        value = value.detach().cpu()
        value = value.float().numpy() if str(getattr(value, "dtype", "")) == "torch.bfloat16" else value.numpy()
    module = type(value).__module__
    if module == "numpy":
        import numpy as np

        if isinstance(value, np.generic):
            return to_plain(value.item(), depth + 1)
        if isinstance(value, np.ndarray):
            if value.size > MAX_ELEMENTS or value.dtype.kind not in "biuf":
                return {"array": None, "shape": list(value.shape), "dtype": str(value.dtype)}
            return {"array": value.ravel().tolist(), "shape": list(value.shape), "dtype": str(value.dtype)}
    if isinstance(value, (list, tuple)):
        return [to_plain(v, depth + 1) for v in list(value)[:MAX_ITEMS]]
    if isinstance(value, dict):
        return {str(k)[:MAX_TEXT]: to_plain(v, depth + 1) for k, v in list(value.items())[:MAX_ITEMS]}
    if isinstance(value, type):
        return {"type": f"{value.__module__}.{value.__qualname__}"}
    return {"object": type(value).__qualname__}


OBSERVE = "__kit_observe__"   # what a probe calls where its test called expect_close / expect_equal
EXPECTATIONS = ("expect_close", "expect_equal", "expect_reference")


class _ToProbe(ast.NodeTransformer):
    """A test becomes its probe: each expectation reports only what the student's code gave."""

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST | None:
        if node.module == "helpers.exercises":
            node.names = [a for a in node.names if a.name not in EXPECTATIONS]
            return node if node.names else None
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id in EXPECTATIONS and node.args:
            return ast.Call(func=ast.Name(id=OBSERVE, ctx=ast.Load()), args=[node.args[0]], keywords=[])
        return node


def probe_source(test_source: str) -> str:
    """The probe of a test: its code with every ``expect_close(got, want, what, where)`` turned into a report of
    ``got`` alone. The expected values, tolerances and messages stay with the grader; only this enters a sandbox."""
    tree = _ToProbe().visit(ast.parse(test_source))
    return ast.unparse(ast.fix_missing_locations(tree))


def _function(source: str, name: str, observe: Callable[..., None]):
    """The test function ``name`` defined by ``source``, in a namespace of its own."""
    namespace: dict[str, Any] = {"__builtins__": builtins, "__name__": "kit_probe", OBSERVE: observe}
    exec(compile(source, f"<test {name}>", "exec"), namespace)
    return namespace[name]


def _interrupt(signum: int, frame: Any) -> None:
    raise TimeoutError(f"this test used more than {PROBE_CPU_SECONDS} s of CPU (an endless loop?)")


def run_probe(test: dict, namespace: dict) -> dict:
    """Run one test function on the notebook's names; return what its expectations got and how it ended."""
    from helpers import exercises

    observations: list[dict] = []

    def observe(kind: str, got: Any, want: Any, what: str, where: str, **tolerance: float) -> None:
        """A whole test's expectation (make assign runs the tests themselves on the master's solution)."""
        observations.append({"kind": kind, "got": to_plain(got), "want": to_plain(want), "what": str(what)[:MAX_TEXT],
                             "where": str(where)[:MAX_TEXT], **{k: float(v) for k, v in tolerance.items()}})

    def report(got: Any) -> None:
        """A probe's report: the value alone."""
        observations.append({"got": to_plain(got)})

    error = None
    previous = signal.signal(signal.SIGPROF, _interrupt) if hasattr(signal, "SIGPROF") else None
    try:
        function = _function(test["source"], test["name"], report)
        missing = [p for p in inspect.signature(function).parameters if p not in namespace]
        if missing:
            raise NameError(f"{', '.join(missing)} is not defined in the notebook (write it and run its cell)")
        arguments = [namespace[p] for p in inspect.signature(function).parameters]
        exercises._observer = observe
        if previous is not None:
            signal.setitimer(signal.ITIMER_PROF, PROBE_CPU_SECONDS)
        function(*arguments)
    except BaseException as failure:  # noqa: BLE001 - whatever the student's code raises is this test's outcome
        error = f"{type(failure).__name__}: {str(failure)[:MAX_TEXT]}"
    finally:
        exercises._observer = None
        if previous is not None:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, previous)
    return {"observations": observations, "error": error}


def run_probes(tests: list[dict], namespace: dict, out: str) -> None:
    """Run every test on the notebook's names and write ``{test id: outcome}`` to ``out`` as JSON."""
    from helpers import store

    results = {test["id"]: run_probe(test, namespace) for test in tests}
    store.write_text(out, json.dumps(results))  # NaN allowed: a student's code may well compute one

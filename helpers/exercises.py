"""What a sheet's exercises stand on: a guard for the cells that use them, and test messages to learn from.

Every sheet is a master notebook in otter-grader's format (see README, "For instructors"); in the
student version an exercise's body is ``raise NotImplementedError("<task>: …")`` until the student
writes it.

- ``needs(task)``: a cell that uses an exercise runs once the exercise is written. Until then the cell
  prints one line naming the task and is skipped, so an unfinished sheet still runs top to bottom.
- ``expect_close`` / ``expect_equal``: the assertions of the sheets' tests; a failure says what was
  expected, what came, and where to look. When a sheet is graded they only report what they got: the
  verdict is decided outside the student's process (``helpers.assignments.verdict``).
- ``expect_reference``: a value that must match the course's solution on the same inputs; only the grader
  knows it, so a student's check sees whether a number came, and grading sees whether it is the right one.
- ``time_limit``: a test's time budget, so a correct but exponential solution fails with a reason
  instead of hanging the grader.
"""
from __future__ import annotations

import math
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

# Tasks whose exercise raised NotImplementedError in a guarded cell of this kernel.
_UNFINISHED: set[str] = set()


class needs:
    """``with needs("2b"):`` runs the block, or skips it with a note while task 2b is not written yet."""

    def __init__(self, *tasks: str):
        if not tasks:
            raise ValueError('needs() takes the task numbers the cell depends on, e.g. needs("2b").')
        self.tasks = tuple(str(t) for t in tasks)
        self.task = f"task {self.tasks[0]}" if len(self.tasks) == 1 else \
            "tasks " + ", ".join(self.tasks[:-1]) + " and " + self.tasks[-1]

    def __enter__(self) -> needs:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> bool:
        if kind is None:
            _UNFINISHED.difference_update(self.tasks)
            return False
        if issubclass(kind, NotImplementedError):
            _UNFINISHED.update(self.tasks)
            print(f"⏸ Skipped: this cell needs {self.task}, and an exercise it uses is not written yet "
                  f"({error}). Write it above, run its cell, then run this cell again.")
            return True
        # A name an earlier skipped cell would have defined: the same unfinished task, not a new bug.
        if issubclass(kind, NameError) and _UNFINISHED.intersection(self.tasks):
            print(f"⏸ Skipped: this cell uses results of a cell skipped above because {self.task} "
                  "is not written yet.")
            return True
        return False


def _shown(value: Any) -> str:
    """A value as a test message shows it: arrays and tensors as short lists, floats to 6 digits."""
    import numpy as np

    if hasattr(value, "detach"):  # a torch tensor, without importing torch here
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return np.array2string(value, precision=6, threshold=12, edgeitems=3, separator=", ")
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value)


# While a grader runs a sheet's tests (helpers.assignments.probes), it sets this: each expectation then hands
# what the test got to the grader and goes on. The grader decides pass or fail in another process.
_observer: Callable[..., None] | None = None


def close_mismatch(got: Any, want: Any, what: str, where: str, *, rtol: float = 1e-6, atol: float = 1e-9) -> str | None:
    """Why ``got`` is not ``want`` up to rounding (expected, got, where to look), or None when it is."""
    import numpy as np

    if got is None or got is Ellipsis:
        return f"{what}: expected {_shown(want)}, got {got!r} (nothing computed yet). Look at {where}."
    try:
        got_arr = np.asarray(got.detach().cpu() if hasattr(got, "detach") else got, dtype=float)
    except (TypeError, ValueError):
        return (f"{what}: expected a number or an array like {_shown(want)}, got "
                f"{type(got).__name__} {str(got)[:200]}. Look at {where}.")
    want_arr = np.asarray(want, dtype=float)
    if got_arr.shape != want_arr.shape:
        return f"{what}: expected shape {want_arr.shape}, got shape {got_arr.shape}. Look at {where}."
    if not np.allclose(got_arr, want_arr, rtol=rtol, atol=atol, equal_nan=True):
        diff = np.abs(got_arr - want_arr)
        worst = float(np.nanmax(diff)) if diff.size else math.nan
        return (f"{what}: expected {_shown(want)}, got {_shown(got)} (largest difference "
                f"{worst:.3g}). Look at {where}.")
    return None


def equal_mismatch(got: Any, want: Any, what: str, where: str) -> str | None:
    """Why ``got`` is not ``want`` (expected, got, where to look), or None when they are equal."""
    try:
        same = bool(got == want)
    except (TypeError, ValueError):  # e.g. an array compared with a list: not the plain value asked for
        same = False
    return None if same else mismatch_message(got, want, what, where)


def mismatch_message(got: Any, want: Any, what: str, where: str) -> str:
    """What a failed expectation says: what was expected, what came, where to look."""
    return f"{what}: expected {_shown(want)}, got {_shown(got)}. Look at {where}."


def expect_close(got: Any, want: Any, what: str, where: str, *, rtol: float = 1e-6, atol: float = 1e-9) -> None:
    """Raise AssertionError (expected, got, where to look) unless ``got`` equals ``want`` up to rounding."""
    if _observer is not None:
        _observer("close", got, want, what, where, rtol=rtol, atol=atol)
        return
    message = close_mismatch(got, want, what, where, rtol=rtol, atol=atol)
    if message:
        raise AssertionError(message)


def expect_equal(got: Any, want: Any, what: str, where: str) -> None:
    """Raise AssertionError (expected, got, where to look) unless ``got == want``."""
    if _observer is not None:
        _observer("equal", got, want, what, where)
        return
    message = equal_mismatch(got, want, what, where)
    if message:
        raise AssertionError(message)


def expect_reference(got: Any, what: str, where: str, *, rtol: float = 1e-6, atol: float = 1e-9) -> None:
    """``got`` must equal what the course's own solution gives on the same inputs, up to rounding.

    Only the grader knows that value: here (``grader.check``) this checks that ``got`` is a number or an array
    of numbers; when the sheet is graded, ``got`` is compared with the solution's, outside the notebook.
    """
    expect_close(got, got, what, where, rtol=rtol, atol=atol)


@contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Raise TimeoutError naming ``what`` if the block runs longer than ``seconds`` (no limit off the main thread)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield  # Windows, or a worker thread: signals cannot interrupt the block, so it runs unlimited
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise TimeoutError(f"{what} took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

"""The verdict: what a submission's probes reported, compared with what the master's solution gave.

This runs in the grader's process, which never runs student code, and reads only plain JSON that the
sandbox wrote. For each test, the values the student's code gave (``got``) are compared, in order, with the
values the master's own solution gave on the same probe at ``make assign``; the tolerance, the messages and
the expected values all come from the master's record, never from the student's process. A question's points
are split evenly over its tests (public and hidden), as otter-grader splits them; but a failed
``test_…_written_in_this_notebook`` saying the exercise was imported or handed to the kit's code (not merely
unfinished) scores the question 0.
"""
from __future__ import annotations

from typing import Any

from ..exercises import close_mismatch, mismatch_message


WRITTEN_HERE = "written_in_this_notebook"  # a test of this name that fails takes its question's points with it,
NOT_YET = ("not written yet", "nothing: ")  # unless the exercise is simply unfinished (helpers.provenance's words)


def from_plain(value: Any) -> Any:
    """Plain data back as numbers, lists and numpy arrays (``probes.to_plain``'s inverse)."""
    import numpy as np

    if isinstance(value, list):
        return [from_plain(v) for v in value]
    if isinstance(value, dict):
        if "array" in value and "shape" in value:
            if value["array"] is None:
                return f"<an array of shape {tuple(value['shape'])}>"
            try:
                return np.asarray(value["array"], dtype=float).reshape(value["shape"])
            except (TypeError, ValueError):
                return "<a malformed array>"
        if "type" in value:
            return f"<class {value['type']}>"
        if "object" in value:
            return f"<a {value['object']}>"
        return {k: from_plain(v) for k, v in value.items()}
    return value


def plain_equal(a: Any, b: Any) -> bool:
    """Equality of plain data in which a bool is never a number (``True == 1.0`` would let a forged 1.0 pass)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(plain_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(plain_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _mismatch(master: dict, got: Any) -> str | None:
    """Why the student's value fails the master's observation, or None when it passes."""
    what, where = str(master.get("what", "a value")), str(master.get("where", "the exercise"))
    if master.get("kind") == "close":
        return close_mismatch(from_plain(got), from_plain(master["got"]), what, where,
                              rtol=float(master.get("rtol", 1e-6)), atol=float(master.get("atol", 1e-9)))
    if plain_equal(got, master["got"]):
        return None
    return mismatch_message(from_plain(got), from_plain(master["got"]), what, where)


def judge_test(master: dict, student: Any) -> tuple[bool, str]:
    """(passed, message) for one test: the student's probe outcome against the master's."""
    if not isinstance(student, dict) or not isinstance(student.get("observations"), list):
        return False, "this test did not run (the notebook stopped before it, or the kernel died)"
    error = student.get("error")
    error = str(error)[:500] if error else None
    seen = student["observations"]
    for index, expected in enumerate(master["observations"]):
        if index >= len(seen):
            return False, error or "the test stopped before all of its checks ran"
        observed = seen[index]
        if not isinstance(observed, dict) or "got" not in observed:
            return False, "the test's report is malformed"
        message = _mismatch(expected, observed["got"])
        if message:
            return False, message
    if error:
        return False, error
    return True, ""


def judge(expected: dict, probes: Any) -> dict[str, dict]:
    """Each question's score, possible points and tests ``{name, hidden, passed, message}``."""
    probes = probes if isinstance(probes, dict) else {}
    questions = {}
    for name, question in expected["questions"].items():
        tests = []
        for test in question["tests"]:
            passed, message = judge_test(test, probes.get(test["id"]))
            tests.append({"name": test["name"], "hidden": bool(test["hidden"]), "passed": passed, "message": message})
        points = float(question["points"])
        share = points / len(tests) if tests else 0.0
        score = round(share * sum(t["passed"] for t in tests), 6)
        if any(t["name"].endswith(WRITTEN_HERE) and not t["passed"] and not any(
                mark in t["message"] for mark in NOT_YET) for t in tests):
            score = 0.0  # written elsewhere (imported, or handed to the kit's code): no other test of it counts
        questions[name] = {"score": score, "possible": points, "tests": tests}
    return questions

"""What the master's own solution gives on each probe: the expected values the verdict compares with.

``make assign`` runs the solved notebook of each sheet exactly as a submission is graded (the student kit, the
same sandbox, the same skipped lesson cells), with every test of the master as a probe, and keeps what each
expectation got. The master must pass every one of its own tests there, or ``make assign`` stops and names the
test. The result, ``dist/autograder/<sheet>.grading.json``, holds the probes, the lesson cells grading skips
and the expected values. It is the instructor's: it never ships to students and never enters a sandbox
(only the probes' source goes in, on the sandbox's standard input).
"""
from __future__ import annotations

import json
from pathlib import Path

from .. import master_format as mf
from ..exercises import close_mismatch
from . import grading_run
from .kernel_run import cell_digest
from .probes import probe_source
from .verdict import from_plain

WHOLE = "whole:"         # the id prefix of a test run whole (with its expected values) on the master
RUN_IN_GRADING = "run"   # a lesson cell whose master metadata says kit.grading: run is never skipped


def skippable(student: dict) -> list[str]:
    """Digests of the student version's lesson cells that grading skips: all but the setup cell, the answer
    cells and the cells the master marks ``kit.grading: run``."""
    code = [c for c in student["cells"] if c.get("cell_type") == "code"]
    out = set()
    for cell in code[1:]:
        meta = cell.get("metadata", {})
        if "otter_answer_cell" in meta.get("tags", []) or (meta.get("kit") or {}).get("grading") == RUN_IN_GRADING:
            continue
        source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
        out.add(cell_digest(source))
    return sorted(out)


def _own_failure(observation: dict) -> str | None:
    """Why the master's value fails its own test (compared with the test's own expected value), or None."""
    got, want = from_plain(observation["got"]), from_plain(observation["want"])
    if observation["kind"] == "close":
        return close_mismatch(got, want, observation["what"], observation["where"],
                              rtol=observation.get("rtol", 1e-6), atol=observation.get("atol", 1e-9))
    return None if observation["got"] == observation["want"] else f"{observation['what']}: {got!r} != {want!r}"


def build(master: Path, student: Path, solved: Path, kit: bytes, *, timeout: int = 900) -> dict:
    """The grading file of one sheet: probes, skipped cells and the master's values; ValueError if it fails."""
    cells = json.loads(Path(master).read_text(encoding="utf-8"))["cells"]
    tests = mf.question_tests(cells)
    probes = [{"id": f"{t.question}/{t.name}", "name": t.name, "source": probe_source(t.source)} for t in tests]
    whole = [{"id": f"{WHOLE}{t.question}/{t.name}", "name": t.name, "source": t.source} for t in tests]
    skip = skippable(json.loads(Path(student).read_text(encoding="utf-8")))
    # The tests themselves (checked against their own expected values) and their probes, on the master's solution
    ran = grading_run.run_sandboxed(Path(solved).read_bytes(), Path(master).name, whole + probes, skip, kit,
                                    timeout=timeout, cell_timeout=timeout)
    results = ran["probes"] if isinstance(ran["probes"], dict) else {}
    problems = []
    if not isinstance(ran["run"], dict) or ran["timed_out"]:
        tail = "\n".join(ran["log"].strip().splitlines()[-8:])
        raise ValueError(f"{Path(master).name}: its solved notebook did not run as a submission would:\n{tail}")
    for error in ran["run"].get("errors", []):
        problems.append(f"code cell {error['code_cell']} ({error['first_line']}) raised {error['error']}")
    questions: dict[str, dict] = {}
    for q in mf.questions(cells):
        if q.manual:
            continue
        entries = []
        for test, probe in zip(tests, probes):
            if test.question != q.name:
                continue
            outcome = results.get(WHOLE + probe["id"]) or {"observations": [], "error": "did not run"}
            reported = results.get(probe["id"]) or {"observations": [], "error": "did not run"}
            if outcome.get("error"):
                problems.append(f"{probe['id']}: {outcome['error']}")
            problems += [f"{probe['id']}: {why}" for why in map(_own_failure, outcome["observations"]) if why]
            if not outcome["observations"]:
                problems.append(f"{probe['id']}: checks nothing (no expect_close/expect_equal ran)")
            if [o["got"] for o in reported["observations"]] != [o["got"] for o in outcome["observations"]]:
                problems.append(f"{probe['id']}: its probe reports other values than the test got (does the test "
                                "draw unseeded random numbers, or time something?)")
            entries.append({"id": probe["id"], "name": test.name, "hidden": test.hidden,
                            "observations": [{k: o[k] for k in ("kind", "got", "what", "where", "rtol", "atol") if k in o}
                                             for o in outcome["observations"]]})
        questions[q.name] = {"points": q.points, "tests": entries}
    if problems:
        raise ValueError(f"{Path(master).name}: graded as a submission, the master fails its own tests "
                         "(a lesson cell that an answer needs may be skipped: mark it kit.grading: run):\n  "
                         + "\n  ".join(problems[:12]))
    return {"skip": skip, "probes": probes, "expected": {"questions": questions}}

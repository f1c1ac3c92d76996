"""make report and make similarity on 300 generated submissions of sheet 3: wall time of each (goal: ≤ 60 s on 2 cores).

Builds sheet 3's student version and autograder (``make assign``'s code) in a temporary folder, generates a class
of 300 (``helpers.assignments.classgen``: own answers, pasted master solutions, planted copies) with made-up
grades, then runs the two steps as ``make report`` and ``make report``'s neighbour ``make similarity`` run them
(``python -m helpers.assignments report|similarity``, in a fresh process, the PDF included).

    python -m benchmarks.report              # writes benchmarks/RESULTS.md
    python -m benchmarks.report --no-write --students 100
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._results import write_section
from helpers.assignments import classgen
from helpers.assignments.assign import assign
from helpers.assignments.grade import load_sheets, usable_cores

REPO = Path(__file__).resolve().parent.parent
MASTER = REPO / "notebooks" / "03_mlp_cnn_studies.ipynb"
GOAL_S = 60


def timed(args: list[str]) -> float:
    """Seconds one CLI step takes in a fresh process (imports included, as make runs it)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "helpers.assignments", *args], cwd=REPO, check=True,
                   env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> int:
    """Generate the class, time both steps, print and record them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=300)
    parser.add_argument("--no-write", action="store_true", help="do not update benchmarks/RESULTS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kit-bench-report-") as tmp:
        tmp = Path(tmp)
        dist, grades = tmp / "dist", tmp / "grades"
        assign([MASTER], dist, extras=False, progress=None)
        sheet = next(iter(load_sheets(dist / "autograder").values()))
        cells = json.loads(MASTER.read_text(encoding="utf-8"))["cells"]
        student = json.loads((dist / "student" / MASTER.name).read_text(encoding="utf-8"))
        code = [q["name"] for q in sheet.questions if not q["manual"]]
        written = [q["name"] for q in sheet.questions if q["manual"]]
        started = time.perf_counter()
        klass = classgen.generate(student, cells, args.students, seed=1, planted=code[0], planted_written=written[0])
        classgen.write_graded(klass, sheet, cells, tmp / "submissions", grades)
        generate_s = time.perf_counter() - started
        report_s = timed(["report", "--grades", str(grades), "--autograders", str(dist / "autograder")])
        similarity_s = timed(["similarity", "--grades", str(grades), "--autograders", str(dist / "autograder"),
                              "--students", str(dist / "student"), "--masters", str(REPO / "notebooks")])
        ranked = json.loads((grades / "similarity.json").read_text())
        top = next(r for r in ranked if r["question"] == code[0])["pairs"][:3]
        planted = {frozenset(p[:2]) for p in klass.copies[code[0]]}
        found = sum(frozenset((p["a"], p["b"])) in planted for p in top)
    cores = usable_cores()
    table = (f"| submissions | cores | generate + grade book | make report (HTML + PDF) | make similarity | "
             f"planted copies in top 3 |\n|---|---|---|---|---|---|\n"
             f"| {args.students} of sheet 3 | {cores} | {generate_s:.0f} s | {report_s:.1f} s | {similarity_s:.1f} s | "
             f"{found} of 3 |")
    print(table)
    ok = report_s <= GOAL_S and similarity_s <= GOAL_S and found == 3
    if not args.no_write:
        write_section("Report and similarity: 300 submissions of sheet 3", table + "\n\n" + (
            f"Goal: each step ≤ {GOAL_S} s on 2 cores. Generated class (`helpers.assignments.classgen`): own answers, "
            "master solutions pasted (verbatim, renamed, reordered, commented), three planted copy pairs in "
            f"{code[0]}; grades made up (no kernel runs). Each step timed as `make` runs it, in a fresh process. "
            f"{'Within the goal.' if ok else 'NOT within the goal.'}"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""make grade on every sheet × 8 sample submissions: wall time, and whether each grade is the expected one.

Builds the student versions and autograders (``make assign``'s code) into a temporary folder, writes 8 sample
submissions per sheet (``helpers.assignments.samples``: the master, the untouched student version, single
questions solved, a broken cell, a deleted and a moved ``grader.check`` cell), grades them all in one run as
``make grade`` does, and reports the wall time, the submissions per minute and the rows that disagree with
what each sample should score.

    python -m benchmarks.grading            # all four sheets, every core; writes benchmarks/RESULTS.md
    python -m benchmarks.grading --jobs 1 --no-write
    python -m benchmarks.grading --sheets 01 --local-cluster 2 --no-write   # sheet 1 on a 2-worker Dask cluster
"""
from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

from benchmarks._results import write_section
from helpers import master_format as mf
from helpers.assignments.assign import assign, read_cells
from helpers.assignments.grade import grade, usable_cores
from helpers.assignments.samples import samples

REPO = Path(__file__).resolve().parent.parent
PER_SHEET = 8


# Tests that need another question's answer: 2l's hidden training test trains a network made of the notebook's
# own Var (2b), since the kit ships none. Solved alone, 2l loses that test's share: (question, tests, needing it).
NEEDS_ANOTHER = {"q2l": (5, 1)}


def expected(name: str, questions: list[mf.Question]) -> float:
    """The autograded points a sample should score."""
    code = [q for q in questions if not q.manual]
    if name == "untouched":
        return 0.0
    if name.startswith("solved-"):
        question = next(q for q in code if q.name == name.removeprefix("solved-"))
        tests, needing = NEEDS_ANOTHER.get(question.name, (1, 0))
        return round(question.points * (tests - needing) / tests, 6)
    return sum(q.points for q in code)  # the master, and the solved sheet with a failing cell or moved check cells


def main() -> int:
    """Grade 8 samples of every sheet at once; print and record the wall time and any unexpected score."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=None, help=f"submissions at once (default {usable_cores()})")
    parser.add_argument("--no-write", action="store_true", help="do not update benchmarks/RESULTS.md")
    parser.add_argument("--sheets", nargs="*", default=None, help="only masters whose name starts so (e.g. 01)")
    parser.add_argument("--local-cluster", type=int, default=0, metavar="WORKERS",
                        help="grade on a Dask LocalCluster of this many one-thread worker processes")
    args = parser.parse_args()
    masters = sorted(m for m in (REPO / "notebooks").glob("[0-9]*.ipynb")
                     if not args.sheets or any(m.name.startswith(s) for s in args.sheets))
    cluster = None
    if args.local_cluster:
        from distributed import LocalCluster

        cluster = LocalCluster(n_workers=args.local_cluster, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
    with tempfile.TemporaryDirectory(prefix="kit-bench-grade-") as tmp:
        dist, subs, out = Path(tmp) / "dist", Path(tmp) / "submissions", Path(tmp) / "grades"
        started = time.perf_counter()
        assign(masters, dist, extras=False, progress=None)
        assign_s = time.perf_counter() - started
        want = {}
        for master in masters:
            for name, nb in list(samples(master, dist).items())[:PER_SHEET]:
                path = subs / master.stem / f"{name}.ipynb"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(nb))
                want[f"{master.stem}/{name}.ipynb"] = expected(name, mf.questions(read_cells(master)))
        started = time.perf_counter()
        try:
            book = grade(subs, dist / "autograder", out, jobs=args.jobs, progress=None,
                         scheduler=cluster.scheduler_address if cluster else None)
        finally:
            if cluster is not None:
                cluster.close()
        grade_s = time.perf_counter() - started
        rows = list(csv.DictReader(book.open()))
        details = json.loads((out / "gradebook.json").read_text())
    wrong = [f"{r['submission']}: {r['status']} {r['autograded']} (expected {want[r['submission']]:g})"
             for r in rows if r["autograded"] == "" or float(r["autograded"]) != want[r["submission"]]]
    jobs = args.local_cluster or args.jobs or usable_cores()
    where = f"{args.local_cluster} Dask workers" if args.local_cluster else f"{jobs} local"
    table = (f"| sheets | submissions | jobs | otter assign | grading (wall) | per submission | unexpected |\n"
             f"|---|---|---|---|---|---|---|\n"
             f"| {len(masters)} | {len(rows)} | {where} | {assign_s:.0f} s | {grade_s:.0f} s | "
             f"{grade_s * jobs / max(len(rows), 1):.1f} s of a core | {len(wrong)} |")
    per_sheet: dict[str, list[float]] = {}
    for d in details:
        cpu = d["outcome"].get("cpu_s")
        if cpu is not None:
            per_sheet.setdefault(d["submission"].split("/")[0], []).append(float(cpu))
    cpu_rows = [f"| {sheet} | {len(v)} | {sum(v) / len(v):.1f} s | {max(v):.1f} s |" for sheet, v in sorted(per_sheet.items())]
    means = [sum(v) / len(v) for v in per_sheet.values()]
    table += ("\n\nCPU per submission, as the sandbox counts it (its runner and kernel, user + system):\n\n"
              "| sheet | submissions | mean | max |\n|---|---:|---:|---:|\n" + "\n".join(cpu_rows) +
              (f"\n| **mean of the sheets** | | **{sum(means) / len(means):.1f} s** | |" if means else ""))
    print(table)
    for line in wrong:
        print("  unexpected:", line)
    if not args.no_write:
        write_section("Grading: make grade on every sheet × 8 sample submissions", table + "\n\n" + (
            "Samples per sheet: the master, the untouched student version, single questions solved, a broken cell, "
            "a deleted and a moved `grader.check` cell (`helpers.assignments.samples`); each run in a bubblewrap "
            "sandbox of its own (setup cell, answer cells and changed cells; the lesson's unchanged experiments "
            "skipped), its probes judged outside. Before issue 34 (`otter run`, every cell in the smoke profile): "
            "22.9 s of a core per submission (wall x jobs / submissions), 343 s for 30 submissions."))
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())

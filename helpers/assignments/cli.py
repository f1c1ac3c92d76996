"""The command line behind ``make assign`` and ``make grade``.

    python -m helpers.assignments assign notebooks/0*.ipynb --out dist
    python -m helpers.assignments grade SUBMISSIONS --autograders dist/autograder --out build/grades
    python -m helpers.assignments roster roster.csv --grades build/grades       # after grade, with a roster
    python -m helpers.assignments report --grades build/grades                  # report.html and report.pdf
    python -m helpers.assignments export canvas --grades build/grades --assignment-id sheet1=1234
    python -m helpers.assignments similarity --grades build/grades --students dist/student --masters notebooks
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ..cluster import SCHEDULER_ENV, ClusterError
from . import lms, report, roster, similarity
from .assign import AssignError, assign
from .grade import DEFAULT_CELL_TIMEOUT, DEFAULT_TIMEOUT, grade, usable_cores


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``assign``, ``grade``, ``roster``, ``report``, ``export`` or ``similarity``; return the exit code (errors are one clear message, not a traceback)."""
    parser = argparse.ArgumentParser(prog="python -m helpers.assignments", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("assign", help="student notebooks and autograders from the master notebooks")
    a.add_argument("masters", nargs="+", type=Path, help="master notebooks (notebooks/0*.ipynb)")
    a.add_argument("--out", type=Path, default=Path("dist"), help="output folder (default dist)")
    g = sub.add_parser("grade", help="grade a folder of submissions into a gradebook")
    g.add_argument("submissions", type=Path, help="folder of submitted notebooks or submission zips")
    g.add_argument("--autograders", type=Path, default=Path("dist/autograder"), help="what make assign wrote")
    g.add_argument("--out", type=Path, default=Path("build/grades"), help="gradebook folder (default build/grades)")
    g.add_argument("--jobs", type=int, default=None, help=f"submissions graded at once (default: {usable_cores()})")
    g.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT, help="seconds allowed per submission")
    g.add_argument("--cell-timeout", type=int, default=DEFAULT_CELL_TIMEOUT, help="seconds allowed per cell")
    g.add_argument("--profile", default="smoke", help="run profile the notebooks are graded in (default smoke)")
    g.add_argument("--scheduler", default=None,
                   help=f"grade on this Dask cluster (default: {SCHEDULER_ENV}, else on this machine)")
    r = sub.add_parser("roster", help="match graded submissions to a roster (after grade)")
    r.add_argument("roster", type=Path, help="CSV: student id, name, email (and optionally section)")
    r.add_argument("--grades", type=Path, default=Path("build/grades"), help="what grade wrote")
    rep = sub.add_parser("report", help="report.html (and report.pdf) on the graded class")
    rep.add_argument("--grades", type=Path, default=Path("build/grades"), help="what grade wrote")
    rep.add_argument("--autograders", type=Path, default=Path("dist/autograder"), help="what make assign wrote")
    rep.add_argument("--no-pdf", action="store_true", help="only the HTML page")
    e = sub.add_parser("export", help="the grades as an LMS's import CSV (after roster)")
    e.add_argument("lms", choices=["canvas", "moodle"])
    e.add_argument("--grades", type=Path, default=Path("build/grades"), help="what grade and roster wrote")
    e.add_argument("--autograders", type=Path, default=Path("dist/autograder"), help="what make assign wrote")
    e.add_argument("--assignment-id", action="append", default=[], metavar="SHEET=ID",
                   help="Canvas assignment id of a sheet (repeat per sheet)")
    m = sub.add_parser("similarity", help="answers that look alike, per question (similarity.html)")
    m.add_argument("--grades", type=Path, default=Path("build/grades"), help="what grade wrote")
    m.add_argument("--autograders", type=Path, default=Path("dist/autograder"), help="what make assign wrote")
    m.add_argument("--students", type=Path, default=Path("dist/student"), help="student versions (starter code)")
    m.add_argument("--masters", type=Path, default=Path("notebooks"), help="master notebooks (solutions)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        if args.command == "assign":
            missing = [str(m) for m in args.masters if not m.is_file()]
            if missing:
                raise FileNotFoundError(f"No such master notebook: {', '.join(missing)}")
            print(f"otter assign: {len(args.masters)} sheets into {args.out}/")
            assign(args.masters, args.out)
            print(f"Wrote {args.out}/student/ and {args.out}/autograder/ in {time.perf_counter() - started:.0f} s.")
        elif args.command == "roster":
            path, found = roster.write(args.grades, args.roster)
            print(f"Wrote {path}: {found['matched']} submissions matched to {found['students']} students; "
                  f"{len(found['missing'])} missing, {len(found['unknown'])} matching no student, "
                  f"{len(found['several'])} students with several submissions.")
        elif args.command == "report":
            written = report.write(args.grades, args.autograders, pdf=not args.no_pdf)
            print(f"Wrote {' and '.join(map(str, written))} in {time.perf_counter() - started:.0f} s.")
        elif args.command == "export":
            ids = lms.parse_ids([i for item in args.assignment_id for i in item.split()])
            written = lms.export(args.grades, args.autograders, args.lms, ids)
            print(f"Wrote {', '.join(map(str, written))}.")
        elif args.command == "similarity":
            page = similarity.write(args.grades, args.autograders, args.students, args.masters)
            print(f"Wrote {page} in {time.perf_counter() - started:.0f} s. A high score is a reason to look, "
                  "not a verdict.")
        else:
            book = grade(args.submissions, args.autograders, args.out, jobs=args.jobs, timeout=args.timeout,
                         cell_timeout=args.cell_timeout, profile=args.profile, scheduler=args.scheduler)
            print(f"Wrote {book} and {book.parent / 'feedback'}/ in {time.perf_counter() - started:.0f} s.")
    except (AssignError, ClusterError, FileNotFoundError, NotADirectoryError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0

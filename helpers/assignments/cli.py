"""The command line behind ``make assign`` and ``make grade``.

    python -m helpers.assignments assign notebooks/0*.ipynb --out dist
    python -m helpers.assignments grade SUBMISSIONS --autograders dist/autograder --out build/grades
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ..cluster import SCHEDULER_ENV, ClusterError
from .assign import AssignError, assign
from .grade import DEFAULT_CELL_TIMEOUT, DEFAULT_TIMEOUT, grade, usable_cores


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``assign`` or ``grade``; return the exit code (errors are one clear message, not a traceback)."""
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
        else:
            book = grade(args.submissions, args.autograders, args.out, jobs=args.jobs, timeout=args.timeout,
                         cell_timeout=args.cell_timeout, profile=args.profile, scheduler=args.scheduler)
            print(f"Wrote {book} and {book.parent / 'feedback'}/ in {time.perf_counter() - started:.0f} s.")
    except (AssignError, ClusterError, FileNotFoundError, NotADirectoryError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0

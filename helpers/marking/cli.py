"""The command line behind ``make mark``.

    python -m helpers.marking [--grades build/grades] [--dist dist]           # the marking page
    python -m helpers.marking --host 0.0.0.0 --tas alice,bob                  # for several TAs on a network
    python -m helpers.marking --export-csv marks.csv | --import-csv marks.csv | --export-rubrics rubrics.txt
    python -m helpers.marking --gradebook                                     # gradebook.csv and feedback with every point
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .. import store as files
from .answers import graded_answers, written_questions
from .store import FILE, MarkingStore

LOCAL = ("127.0.0.1", "localhost", "::1")


def open_store(grades: Path, dist: Path) -> tuple[MarkingStore, dict]:
    """The class's marking store, loaded with what ``make grade`` last wrote (marks of unchanged answers kept)."""
    questions = written_questions(dist)
    graded = graded_answers(grades, questions)  # first: a wrong folder must not get a store
    store = MarkingStore(Path(grades) / FILE)
    counts = store.sync(questions, graded)
    return store, counts


def sheet_points(dist: Path) -> dict[str, float]:
    """Every sheet's points, all questions."""
    out = {}
    for info in sorted((Path(dist) / "autograder").glob("*.json")):
        data = files.read_json(info)
        if isinstance(data, dict) and "questions" in data:
            out[data["assignment"]] = sum(float(q["points"]) for q in data["questions"])
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the marking page, or export/import marks, or write the merged gradebook; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m helpers.marking", description=__doc__.split("\n")[0])
    parser.add_argument("--grades", type=Path, default=Path("build/grades"), help="what make grade wrote")
    parser.add_argument("--dist", type=Path, default=Path("dist"), help="what make assign wrote")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--tas", default="", help="comma-separated TA names, one token each (needed off 127.0.0.1)")
    parser.add_argument("--export-csv", type=Path, help="write every answer and its mark to this CSV, and stop")
    parser.add_argument("--import-csv", type=Path, help="read marks from this CSV (all rows or none), and stop")
    parser.add_argument("--export-rubrics", type=Path, help="write the rubrics as text for the masters, and stop")
    parser.add_argument("--gradebook", action="store_true", help="write gradebook.csv and feedback/ with the marks")
    args = parser.parse_args(argv)
    tas = [t.strip() for t in args.tas.split(",") if t.strip()]
    if args.host not in LOCAL and not tas:
        print(f"error: --host {args.host} opens the marking page to the network; give each TA a token of their own "
              "with --tas name1,name2 (make mark HOST=0.0.0.0 TAS=name1,name2).", file=sys.stderr)
        return 2
    try:
        store, counts = open_store(args.grades, args.dist)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    from . import merge, transfer  # the CLI's jobs, each one module
    try:
        if args.export_csv:
            print(f"Wrote {transfer.export_csv(store, args.export_csv)} answers to {args.export_csv}.")
        elif args.import_csv:
            print(f"Imported {transfer.import_csv(store, args.import_csv)} marks from {args.import_csv}.")
        elif args.export_rubrics:
            files.write_text(args.export_rubrics, transfer.export_rubrics(store))
            print(f"Wrote the rubrics to {args.export_rubrics}: paste each into its master's BEGIN QUESTION cell.")
        elif args.gradebook:
            book = merge.merge(args.grades, store, sheet_points(args.dist))
            print(f"Wrote {book} and {book.parent / 'feedback'}/ (.md and .html) with the written marks.")
        else:
            return serve(store, counts, args.host, args.port, tas or ["instructor"])
    except (transfer.ImportRefused, FileNotFoundError) as error:
        print(f"error: {error}\nNothing was imported.", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0


def serve(store: MarkingStore, counts: dict, host: str, port: int, tas: list[str]) -> int:
    """Run the marking server until Ctrl-C, after printing its address and each TA's token."""
    import uvicorn

    from .server import create_app, mathjax_dir
    tokens = store.tokens(tas)
    shown = "127.0.0.1" if host in LOCAL else host
    print(f"Marking store {store.path}: {counts['new']} new answers, {counts['changed']} changed since marked "
          f"(to mark again), {counts['unchanged']} unchanged.", flush=True)
    if mathjax_dir() is None:
        print("note: no local MathJax (apt install libjs-mathjax); math shows as TeX source.", flush=True)
    for token, name in sorted(tokens.items(), key=lambda kv: kv[1]):
        print(f"  {name}: http://{shown}:{port}/?token={token}", flush=True)
    print("Open your address in a browser; Ctrl-C stops the server (every acknowledged mark is on disk).", flush=True)
    uvicorn.run(create_app(store, tokens), host=host, port=port, log_level="warning")
    return 0

"""``make export LMS=canvas|moodle``: the grades as the CSV an LMS imports, one grade per student and sheet.

Reads the grades folder after the roster step (``roster.json``: who handed in which submission, and which one
counts). A student's grade for a sheet is the counted submission's autograded points plus the written marks
given so far; a student with no submission gets an empty cell (the LMS leaves it as it is).

Canvas (Grades > Import, "How do I import grades in the Gradebook?", Canvas Instructor Guide; summarised at
https://teaching.resources.osu.edu/toolsets/carmencanvas/guides/calculating-final-grades/import-csv-file-carmen-grades):
the columns are ``Student``, ``ID``, ``SIS User ID``, ``SIS Login ID``, ``Section``, then one column per assignment
named ``<assignment name> (<assignment id>)``; Canvas finds the student by ``ID`` (its own user id) or the SIS ids,
and the assignment by the id in brackets (a column without one creates a new assignment). The roster's student
id goes into ``SIS User ID``; a roster column ``canvas id`` or ``login`` fills ``ID`` or ``SIS Login ID``.

Moodle (Grades > Import > CSV file, https://docs.moodle.org/311/en/Grade_import): any columns, mapped on import;
the user is identified by "Email address" (useremail) or "ID number" (useridnumber), and a grade item takes a
grade column and, optionally, a feedback column ("include both feedback and grades"). One file per sheet:
``email, idnumber, grade, feedback``.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd

from .. import store
from .grade import GRADEBOOK, load_sheets
from .roster import ROSTER_JSON

CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
MOODLE_COLUMNS = ("email", "idnumber", "grade", "feedback")
CANVAS_FILE, MOODLE_FILE = "canvas.csv", "moodle-{sheet}.csv"


def _csv(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _number(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".")


def grades_of(grades: Path, autograders: Path) -> tuple[dict, dict[tuple[str, str], dict]]:
    """roster.json, and per (sheet, student) the counted submission's grade, possible points and feedback."""
    found = store.read_json(Path(grades) / ROSTER_JSON)
    if not isinstance(found, dict):
        raise FileNotFoundError(f"No {Path(grades) / ROSTER_JSON}: grade with a roster first "
                                "(make grade SUBMISSIONS=<folder> ROSTER=<roster.csv>).")
    sheets = load_sheets(autograders)
    book = pd.read_csv(Path(grades) / GRADEBOOK, dtype=str, keep_default_na=False).set_index("submission")
    out = {}
    for r in found["rows"]:
        if not r["counts"] or r["sheet"] not in sheets:
            continue
        row, sheet = book.loc[r["submission"]], sheets[r["sheet"]]
        written = [q for q in sheet.questions if q["manual"]]
        marks = pd.to_numeric(pd.Series([row[q["name"]] for q in written], dtype=object), errors="coerce")
        auto = pd.to_numeric(row["autograded"], errors="coerce")
        possible = sum(q["points"] for q in sheet.questions)
        pending = [q["name"] for q, m in zip(written, marks) if pd.isna(m)]
        if pd.isna(auto):
            grade, note = None, f"not graded ({row['status']}): {row['note'][:200]}"
        else:
            grade = float(auto) + float(marks.fillna(0).sum())
            note = (f"autograded {_number(float(auto))}, written {_number(float(marks.fillna(0).sum()))} of "
                    f"{_number(possible)} points" + (f"; written answers not marked yet: {', '.join(pending)}"
                                                      if pending else ""))
        out[(r["sheet"], r["student"])] = {"grade": grade, "possible": possible, "feedback": note,
                                           "submission": r["submission"]}
    return found, out


def canvas(found: dict, graded: dict, assignment_ids: dict[str, str]) -> str:
    """Canvas's gradebook import CSV: the five student columns, then ``<sheet> (<assignment id>)`` per sheet."""
    sheets = found["sheets"]
    header = list(CANVAS_COLUMNS) + [f"{s} ({assignment_ids[s]})" if assignment_ids.get(s) else s for s in sheets]
    rows = [header]
    for person in found["roster"]:
        cells = [person.get("name", ""), person.get("canvas id", person.get("canvas_id", "")), person["id"],
                 person.get("login", person.get("sis login id", "")), person.get("section", "")]
        for s in sheets:
            g = graded.get((s, person["id"]))
            cells.append(_number(g["grade"]) if g and g["grade"] is not None else "")
        rows.append(cells)
    return _csv(rows)


def moodle(found: dict, graded: dict, sheet: str) -> str:
    """Moodle's grade import CSV for one sheet: email, idnumber, grade, feedback."""
    rows = [list(MOODLE_COLUMNS)]
    for person in found["roster"]:
        g = graded.get((sheet, person["id"]))
        rows.append([person.get("email", ""), person["id"],
                     _number(g["grade"]) if g and g["grade"] is not None else "",
                     g["feedback"] if g else "no submission"])
    return _csv(rows)


def export(grades: Path, autograders: Path, lms: str, assignment_ids: dict[str, str] | None = None) -> list[Path]:
    """Write the LMS's import file(s) into the grades folder; return them."""
    found, graded = grades_of(grades, autograders)
    if lms == "canvas":
        return [store.write_text(Path(grades) / CANVAS_FILE, canvas(found, graded, assignment_ids or {}))]
    if lms == "moodle":
        return [store.write_text(Path(grades) / MOODLE_FILE.format(sheet=s), moodle(found, graded, s))
                for s in found["sheets"]]
    raise ValueError(f"LMS={lms!r} is not known: use LMS=canvas or LMS=moodle.")


def parse_ids(items: list[str]) -> dict[str, str]:
    """``["sheet1=1234", ...]`` (the CANVAS_ASSIGNMENTS setting) as a dict; a clear error for a malformed item."""
    out = {}
    for item in items:
        sheet, sep, number = item.partition("=")
        if not sep or not sheet.strip() or not number.strip():
            raise ValueError(f"CANVAS_ASSIGNMENTS item {item!r} is not <sheet>=<assignment id>, e.g. sheet1=1234 "
                             "(the id is the number in the assignment's Canvas URL).")
        out[sheet.strip()] = number.strip()
    return out

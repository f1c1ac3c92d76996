"""``make grade ROSTER=roster.csv``: which student handed in which submission, who is missing, who handed in twice.

Runs after grading, on the grades folder. A submission belongs to a student when

1. a roster id is a word of its file or folder names (``s1234567_sheet1.ipynb``, ``s1234567/sheet1.ipynb``,
   an LMS download's ``doe_s1234567_...``), else
2. the student typed their id into the notebook's setup cell (``STUDENT_ID = "s1234567"``).

Per sheet it finds students with no submission (and files of theirs that are no notebook of a sheet), submissions that match no student (and why), and students
with several submissions: the newest by collection time (``collected`` in ``gradebook.json``) counts, the
others are listed. The result is ``roster.json`` in the grades folder (the report shows it; ``make export``
reads it), with the roster itself, so the export needs nothing else.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from .. import store
from .answers import student_id
from .grade import DETAILS

ROSTER_JSON = "roster.json"
# Accepted spellings of the roster's columns (compared lower-cased, spaces and underscores alike).
ALIASES = {"id": ("student id", "id", "studentid", "sis user id", "student number", "matriculation number"),
           "name": ("name", "student", "student name", "full name"),
           "email": ("email", "e mail", "email address", "mail"),
           "section": ("section", "group")}
OPTIONAL = ("section",)


def _norm(column: str) -> str:
    return re.sub(r"[\s_\-]+", " ", column.strip().lower())


def read_roster(path: Path) -> pd.DataFrame:
    """The roster as columns ``id, name, email, section`` (plus any others it has); a clear error when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ROSTER={path} does not exist: give a CSV with columns student id, name, email "
                                "(and optionally section).")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    rename = {}
    for key, names in ALIASES.items():
        found = [c for c in table.columns if _norm(c) in names]
        if found:
            rename[found[0]] = key
        elif key not in OPTIONAL:
            raise ValueError(f"{path} has no {key} column (columns: {', '.join(table.columns)}); name it one of: "
                             f"{', '.join(names)}.")
    table.columns = [rename.get(c, c) for c in table.columns]
    if "section" not in table:
        table["section"] = ""
    table["id"] = table["id"].str.strip()
    empty = table.index[table["id"] == ""].tolist()
    if empty:
        raise ValueError(f"{path}: rows {', '.join(str(i + 2) for i in empty)} have no student id.")
    doubles = sorted(table["id"][table["id"].str.lower().duplicated()].unique())
    if doubles:
        raise ValueError(f"{path}: student ids listed twice: {', '.join(doubles)}.")
    return table


def ids_in_name(submission: str, ids: dict[str, str]) -> set[str]:
    """Roster ids (given lower-cased → as written) that are a word of a submission's file or folder names."""
    words = {w.lower() for w in re.split(r"[^A-Za-z0-9]+", submission) if w}
    return {ids[w] for w in words if w in ids}


def match(grades: Path, roster: pd.DataFrame) -> dict:
    """Match every graded submission to a student; return what ``roster.json`` holds (see the module's notes)."""
    grades = Path(grades)
    details = store.read_json(grades / DETAILS)
    if not isinstance(details, list):
        raise FileNotFoundError(f"No {grades / DETAILS}: run `make grade SUBMISSIONS=<folder>` first.")
    ids = {i.lower(): i for i in roster["id"]}
    people = roster.set_index("id")
    rows, unknown, unreadable = [], [], []
    for d in details:
        sheet = d["row"].get("sheet", "")
        if not sheet:
            # not a notebook of any sheet (the gradebook says why); if it names a student, say whose it is
            for who in sorted(ids_in_name(d["submission"], ids)):
                unreadable.append({"submission": d["submission"], "student": who, "why": d["row"].get("note", "")})
            continue
        who, how, why = None, "", ""
        named = ids_in_name(d["submission"], ids)
        if len(named) == 1:
            who, how = next(iter(named)), "file name"
        typed = None
        if d.get("notebook") and (grades / d["notebook"]).is_file():
            typed = student_id(json.loads((grades / d["notebook"]).read_text(encoding="utf-8")))
        if who is None and typed:
            if typed.lower() in ids:
                who, how = ids[typed.lower()], "notebook"
            else:
                why = f"the notebook's STUDENT_ID {typed!r} is not on the roster"
        if who is None:
            why = why or (f"its name holds several roster ids ({', '.join(sorted(named))})" if len(named) > 1 else
                          "no roster id in its file or folder name, and no STUDENT_ID in the notebook")
            unknown.append({"submission": d["submission"], "sheet": sheet, "why": why})
        rows.append({"submission": d["submission"], "sheet": sheet, "student": who, "how": how,
                     "collected": d.get("collected", 0.0), "typed": typed, "counts": False})
    several = []
    matched = [r for r in rows if r["student"]]
    for (sheet, student), group in _groups(matched).items():
        group.sort(key=lambda r: r["collected"])
        group[-1]["counts"] = True
        if len(group) > 1:
            several.append({"sheet": sheet, "student": student, "counted": group[-1]["submission"],
                            "ignored": [r["submission"] for r in group[:-1]]})
    sheets = sorted({r["sheet"] for r in rows})
    missing = [{"sheet": sheet, "student": sid, "name": people.at[sid, "name"], "email": people.at[sid, "email"]}
               for sheet in sheets for sid in roster["id"]
               if not any(r["student"] == sid and r["sheet"] == sheet for r in matched)]
    return {"students": len(roster), "matched": len(matched), "sheets": sheets, "rows": rows, "missing": missing,
            "unknown": unknown, "several": several, "unreadable": unreadable,
            "roster": roster.to_dict(orient="records")}


def _groups(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        out.setdefault((r["sheet"], r["student"]), []).append(r)
    return out


def write(grades: Path, roster_csv: Path) -> tuple[Path, dict]:
    """Match the grades folder's submissions to the roster; write ``roster.json``; return it and its content."""
    found = match(grades, read_roster(roster_csv))
    return store.write_json(Path(grades) / ROSTER_JSON, found, indent=1), found

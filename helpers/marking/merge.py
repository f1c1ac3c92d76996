"""The gradebook with every point: written marks beside the code scores, and feedback with the rubric in it.

``make grade`` wrote ``gradebook.csv``, ``gradebook.json`` and ``feedback/``; this module rewrites the CSV and the
feedback from ``gradebook.json`` and the marking store (so it can run again after every marking session):

- each written question's column holds its score, or ``unmarked``;
- ``written`` sums the written scores, ``total`` is code plus written over ``total possible`` (every point of the
  sheet), and ``marking`` says ``complete`` or names the unmarked answers. ``written`` and ``total`` are left empty
  while any answer is unmarked: no sum is ever computed from missing marks;
- ``feedback/<submission>.md`` (and an ``.html`` copy) lists the failed tests, every rubric item received with its
  explanation, and the TA's comments.
"""
from __future__ import annotations

import csv
import html
import io
from pathlib import Path

from markdown_it import MarkdownIt

from .. import store as files
from .store import MarkingStore

EXTRA = ["written", "total", "total possible", "marking"]
SCORED = ("graded", "tampered")


def _number(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".")


def merge(grades: Path, store: MarkingStore, sheet_points: dict[str, float]) -> Path:
    """Rewrite ``gradebook.csv`` and ``feedback/`` of ``grades`` with the written marks; return the gradebook."""
    grades = Path(grades)
    entries = files.read_json(grades / "gradebook.json") or []
    header = next(csv.reader(io.StringIO((grades / "gradebook.csv").read_text(encoding="utf-8"))))
    base = [c for c in header if c not in EXTRA]
    at = base.index("note") if "note" in base else len(base)  # the marks before the note (and make grade's sandbox)
    columns = base[:at] + EXTRA + base[at:]
    marks: dict[str, dict[str, dict]] = {}
    for answer in store.table():
        marks.setdefault(answer["submission"], {})[answer["question"]] = answer
    rows = []
    for entry in entries:
        row = dict(entry["row"])
        written = marks.get(entry["submission"], {})
        unmarked = [q for q, a in written.items() if not a["marked"]]
        for question, answer in written.items():
            row[question] = _number(answer["score"]) if answer["marked"] else "unmarked"
        scored = row.get("status") in SCORED and entry.get("notebook")
        if scored:
            got = sum(a["score"] for a in written.values() if a["marked"])
            row["written"] = "" if unmarked else _number(got)
            row["total possible"] = _number(sheet_points.get(row.get("sheet"), 0.0))
            row["marking"] = "complete" if not unmarked else f"{len(unmarked)} unmarked: {', '.join(unmarked)}"
            row["total"] = "" if unmarked else _number(float(row.get("autograded") or 0) + got)
        else:
            row.update({"written": "", "total": "", "total possible": "", "marking": ""})
        rows.append(row)
        if entry.get("notebook"):
            name = Path(entry["notebook"]).stem  # the name make grade gave the kept notebook and the feedback
            text = feedback(entry, row, written)
            files.write_text(grades / "feedback" / f"{name}.md", text)
            files.write_text(grades / "feedback" / f"{name}.html", as_html(text, entry["submission"]))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return files.write_text(grades / "gradebook.csv", buffer.getvalue())


def feedback(entry: dict, row: dict, written: dict[str, dict]) -> str:
    """A student's feedback: scores, failed tests, and each written answer's rubric items and comment."""
    lines = [f"# Feedback: {entry['submission']}", "", f"Sheet: {row.get('sheet')}. Status: {row.get('status')}."]
    if row.get("total"):
        lines.append(f"Total: {row['total']} of {row['total possible']} points "
                     f"(tests {row.get('autograded')} of {row.get('possible')}, written answers {row['written']}).")
    else:
        if row.get("autograded"):
            lines.append(f"Autograded score: {row['autograded']} of {row.get('possible')} points.")
        if row.get("marking") and row["marking"] != "complete":
            lines.append(f"Written answers not marked yet ({row['marking']}): your total follows when they are.")
    if row.get("note"):
        lines += ["", "Notes:"] + [f"- {n}" for n in row["note"].split(" | ")]
    for name, result in entry.get("outcome", {}).get("questions", {}).items():
        failed = [t for t in result.get("tests", []) if not t.get("passed")]
        lines += ["", f"## {name}: {_number(float(result['score']))} of {_number(float(result['possible']))}"]
        if not failed:
            lines.append("All tests passed.")
        for test in failed:
            kind = "hidden test" if test.get("hidden") else "public test"
            message = (test.get("message") or "").strip().splitlines()
            lines.append(f"- {test['name']} ({kind}) failed: " + (message[-1] if message else "no message"))
    for name, answer in written.items():
        if not answer["marked"]:
            lines += ["", f"## {name} (written): not marked yet"]
            continue
        lines += ["", f"## {name} (written): {_number(answer['score'])} of {_number(answer['points'])}"]
        for item in answer["items"]:
            sign = "+" if item["points"] > 0 else "−"
            lines.append(f"- {sign}{_number(abs(item['points']))}: {item['explanation']}")
        if not answer["items"]:
            lines.append("- No rubric item applied.")
        if answer["comment"]:
            lines.append(f"\nComment: {answer['comment']}")
    return "\n".join(lines) + "\n"


def as_html(text: str, title: str) -> str:
    """The feedback's markdown as a small standalone HTML page (student text escaped)."""
    body = MarkdownIt("commonmark", {"html": False}).render(text)
    return (f"<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:46em;margin:2em auto;padding:0 1em}</style>"
            f"<body>{body}</body></html>\n")

"""Marks as a spreadsheet (``--export-csv`` / ``--import-csv``) and rubrics as text for the masters (``--export-rubrics``).

The CSV has one row per answer: submission code, question, answer text, the ticked rubric items (their numbers in
the question's rubric, ``1;3``), the score they give, and the comment. On import the items decide the score; a
score given beside them must be that score. The import checks every row first and writes nothing if one is wrong,
naming the row; the rows it writes go into the store in one transaction.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from .. import store as files
from .store import MarkingStore

COLUMNS = ["code", "question", "answer", "items", "score", "comment"]


class ImportRefused(ValueError):
    """A CSV row is wrong; nothing was written."""


def _number(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}".rstrip("0").rstrip(".")


def export_csv(store: MarkingStore, path: Path) -> int:
    """Write every answer of the class as a CSV row; return the number of rows."""
    rubrics = store.rubrics()
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    rows = store.table()
    for r in rows:
        numbers = {item["id"]: n for n, item in enumerate(rubrics[r["question"]], 1)}
        writer.writerow({"code": r["code"], "question": r["question"], "answer": r["text"],
                         "items": ";".join(str(numbers[i["id"]]) for i in r["items"]), "score": _number(r["score"]),
                         "comment": r["comment"] or ""})
    files.write_text(path, buffer.getvalue())
    return len(rows)


def import_csv(store: MarkingStore, path: Path, who: str = "csv import") -> int:
    """Read marks back from a CSV; every row is checked before any is written. Returns the marks changed."""
    text = Path(path).read_text(encoding="utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("code", "question", "items", "comment") if c not in (reader.fieldnames or [])]
    if missing:
        raise ImportRefused(f"{path}: no column {', '.join(missing)} (the header must be {','.join(COLUMNS)}).")
    rubrics = store.rubrics()
    answers = {(r["code"], r["question"]): r for r in store.table()}
    changes = []
    for number, row in enumerate(reader, 2):  # row 1 is the header, as a spreadsheet numbers it
        where = f"{path}, row {number} ({row.get('code')}, {row.get('question')})"
        answer = answers.get((row["code"], row["question"]))
        if row["question"] not in rubrics:
            raise ImportRefused(f"{where}: no written question {row['question']!r}.")
        if answer is None:
            raise ImportRefused(f"{where}: no submission with code {row['code']!r} answers {row['question']}.")
        items = rubrics[row["question"]]
        try:
            ticked = [int(n) for n in (row.get("items") or "").replace(",", ";").split(";") if n.strip()]
        except ValueError:
            raise ImportRefused(f"{where}: items must be rubric item numbers separated by ';', got {row['items']!r}.") from None
        bad = [n for n in ticked if not 1 <= n <= len(items)]
        if bad:
            raise ImportRefused(f"{where}: {row['question']} has rubric items 1 to {len(items)}, not {bad}.")
        score_text = (row.get("score") or "").strip()
        comment = row.get("comment") or ""
        if score_text:
            try:
                score = float(score_text)
            except ValueError:
                raise ImportRefused(f"{where}: the score {score_text!r} is not a number.") from None
            if not 0 <= score <= answer["points"]:
                raise ImportRefused(f"{where}: the score {score_text} is outside 0..{_number(answer['points'])}.")
            given = min(answer["points"], max(0.0, sum(items[n - 1]["points"] for n in ticked)))
            if abs(given - score) > 1e-9:
                raise ImportRefused(f"{where}: the score {score_text} is not what items {row['items'] or '(none)'} "
                                    f"give ({_number(given)}); change the items, the score follows them.")
        elif not ticked and not comment:
            continue  # left unmarked
        ids = [items[n - 1]["id"] for n in ticked]
        if answer["marked"] and ids == [i["id"] for i in answer["items"]] and comment == answer["comment"]:
            continue
        changes.append({"answer": answer["answer"], "items": ids, "comment": comment})
    return store.replace_marks(changes, who)


def export_rubrics(store: MarkingStore) -> str:
    """Every question's rubric as the YAML lines of its master's BEGIN QUESTION cell, to paste there."""
    out = ["# Rubrics from the marking store: replace each question's `rubric:` lines in its master's BEGIN QUESTION cell."]
    for question, items in store.rubrics().items():
        out += ["", f"# {question}", "rubric:"]
        for item in items:
            out.append(f"- points: {_number(item['points'])}")
            out.append(f"  explanation: {json.dumps(item['explanation'], ensure_ascii=False)}")
            if item["note"]:
                out.append(f"  note: {json.dumps(item['note'], ensure_ascii=False)}")
    return "\n".join(out) + "\n"

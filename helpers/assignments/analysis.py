"""Item analysis of a graded class: what ``make report`` shows, computed with pandas and scipy.

Read from a grades folder (``gradebook.csv`` and ``gradebook.json``, written by ``make grade``) and the sheets'
questions (``dist/autograder/<sheet>.json``). Only rows that were graded (status ``graded`` or ``tampered``)
count; a written question counts where it holds a mark (a number), and is *waiting* where it does not.

- **difficulty** of a question: its mean score / its points (1 = everyone got everything);
- **discrimination**: ``scipy.stats.pointbiserialr`` of the question's score with the rest of the total (the
  total without this question). scipy computes Pearson's r, which for a 0/full question is the point-biserial
  correlation; for partial credit it is the same formula on the raw scores, i.e. the *corrected item-total
  correlation*. It is NaN where either side is constant (nothing to correlate).
- per **test**: the share of graded rows where it failed, its three commonest failure messages (the message's
  last line, as a student reads it), and flags for tests that no one or everyone passes.
"""
from __future__ import annotations

import json
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .grade import DETAILS, GRADEBOOK, GRADED, TAMPERED, Sheet, load_sheets

SCORED = (GRADED, TAMPERED)
# A marking page may add a column saying whether a row's written answers are marked; these values mean done.
MARKING_STATUS_COLUMNS = ("marking", "marking_status", "marking status", "written_status", "manual_status")
MARKED = {"done", "marked", "complete", "completed", "final"}


@dataclass
class Graded:
    """A grades folder, read: the gradebook rows, their details, and the sheets' questions."""

    book: pd.DataFrame        # gradebook.csv, every cell a string
    details: list[dict]       # gradebook.json
    sheets: dict[str, Sheet]  # by assignment name
    folder: Path


def load(grades: Path, autograders: Path) -> Graded:
    """Read a grades folder and the autograders it was graded with; a clear error when either is missing."""
    grades = Path(grades)
    for name in (GRADEBOOK, DETAILS):
        if not (grades / name).is_file():
            raise FileNotFoundError(f"No {grades / name}: run `make grade SUBMISSIONS=<folder>` first "
                                    f"(it writes {GRADEBOOK} and {DETAILS} into {grades}/).")
    book = pd.read_csv(grades / GRADEBOOK, dtype=str, keep_default_na=False)
    details = json.loads((grades / DETAILS).read_text(encoding="utf-8"))
    return Graded(book, details, load_sheets(autograders), grades)


def marking_column(book: pd.DataFrame) -> str | None:
    """The column a marking page added to say whether written answers are marked, if any."""
    return next((c for c in book.columns if c.strip().lower() in MARKING_STATUS_COLUMNS), None)


def scores(g: Graded, sheet: str) -> pd.DataFrame:
    """Scored rows of one sheet: a number per question (NaN where not marked yet), indexed by submission."""
    rows = g.book[(g.book["sheet"] == sheet) & g.book["status"].isin(SCORED)]
    names = [q["name"] for q in g.sheets[sheet].questions]
    table = rows.set_index("submission")[names].apply(pd.to_numeric, errors="coerce")
    return table.astype(float)


def questions(g: Graded, sheet: str) -> pd.DataFrame:
    """Per question: points, kind, rows scored, mean, difficulty and discrimination (see the module's notes)."""
    table = scores(g, sheet)
    total = table.sum(axis=1, min_count=1)
    out = []
    for q in g.sheets[sheet].questions:
        s = table[q["name"]]
        have = s.notna()
        rest = (total - s)[have]
        out.append({"question": q["name"], "kind": "written" if q["manual"] else "code", "points": q["points"],
                    "scored": int(have.sum()), "mean": s[have].mean() if have.any() else np.nan,
                    "difficulty": s[have].mean() / q["points"] if have.any() and q["points"] else np.nan,
                    "discrimination": discrimination(s[have], rest)})
    return pd.DataFrame(out)


def discrimination(item: pd.Series, rest: pd.Series) -> float:
    """Point-biserial r of a question's scores with the rest of the total; NaN when either is constant."""
    if len(item) < 3 or item.nunique() < 2 or rest.nunique() < 2:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.pointbiserialr(item.to_numpy(), rest.to_numpy()).statistic)


def _scored_details(g: Graded, sheet: str) -> list[dict]:
    return [d for d in g.details if d["row"].get("sheet") == sheet and d["row"].get("status") in SCORED]


def message_line(message: str) -> str:
    """What a failure says, as a student reads it: the message's last non-empty line, at most 160 characters."""
    lines = [line.strip() for line in (message or "").strip().splitlines() if line.strip()]
    return (lines[-1] if lines else "(no message)")[:160]


def tests(g: Graded, sheet: str) -> pd.DataFrame:
    """Per test (public and hidden): rows run, share failing, flag, and its three commonest failure messages."""
    seen: dict[tuple[str, str], dict] = {}
    for d in _scored_details(g, sheet):
        for qname, result in (d["outcome"].get("questions") or {}).items():
            for t in result.get("tests", []):
                entry = seen.setdefault((qname, t["name"]), {"question": qname, "test": t["name"],
                                                             "hidden": bool(t["hidden"]), "run": 0, "failed": 0,
                                                             "messages": Counter()})
                entry["run"] += 1
                if not t["passed"]:
                    entry["failed"] += 1
                    entry["messages"][message_line(t.get("message", ""))] += 1
    order = {q["name"]: i for i, q in enumerate(g.sheets[sheet].questions)}
    rows = []
    for entry in sorted(seen.values(), key=lambda e: (order.get(e["question"], 1e9), e["hidden"], e["test"])):
        share = entry["failed"] / entry["run"]
        rows.append({"question": entry["question"], "test": entry["test"], "hidden": entry["hidden"],
                     "run": entry["run"], "failed": entry["failed"], "share_failing": share,
                     "flag": "no one passes" if share == 1 else "everyone passes" if share == 0 else "",
                     "messages": entry["messages"].most_common(3)})
    return pd.DataFrame(rows, columns=["question", "test", "hidden", "run", "failed", "share_failing", "flag",
                                       "messages"])


def hidden_only(g: Graded, sheet: str) -> pd.DataFrame:
    """Rows that pass every public test of a question but fail a hidden one: (question, submission, hidden failed)."""
    rows = []
    for d in _scored_details(g, sheet):
        for qname, result in (d["outcome"].get("questions") or {}).items():
            public = [t for t in result.get("tests", []) if not t["hidden"]]
            failed = [t["name"] for t in result.get("tests", []) if t["hidden"] and not t["passed"]]
            if public and all(t["passed"] for t in public) and failed:
                rows.append({"question": qname, "submission": d["submission"], "hidden_failed": ", ".join(failed)})
    return pd.DataFrame(rows, columns=["question", "submission", "hidden_failed"])


def totals(g: Graded, sheet: str) -> pd.DataFrame:
    """Per scored row: autograded points, written points marked so far, total, and the points possible."""
    table = scores(g, sheet)
    auto = [q["name"] for q in g.sheets[sheet].questions if not q["manual"]]
    written = [q["name"] for q in g.sheets[sheet].questions if q["manual"]]
    out = pd.DataFrame({"autograded": table[auto].sum(axis=1), "written": table[written].sum(axis=1)})
    out["total"] = out["autograded"] + out["written"]
    out["possible"] = sum(q["points"] for q in g.sheets[sheet].questions)
    return out


def waiting(g: Graded, sheet: str) -> pd.DataFrame:
    """Scored rows still waiting for written marks: which questions hold no mark (or a marking status not done)."""
    written = [q["name"] for q in g.sheets[sheet].questions if q["manual"]]
    rows = g.book[(g.book["sheet"] == sheet) & g.book["status"].isin(SCORED)]
    status = marking_column(g.book)
    out = []
    for _, row in rows.iterrows():
        unmarked = [n for n in written if pd.isna(pd.to_numeric(row[n], errors="coerce"))]
        open_status = bool(written) and status is not None and row[status].strip().lower() not in MARKED
        if unmarked or open_status:
            out.append({"submission": row["submission"], "unmarked": ", ".join(unmarked) or "—",
                        "marking status": row[status] if status else "—"})
    return pd.DataFrame(out, columns=["submission", "unmarked", "marking status"])

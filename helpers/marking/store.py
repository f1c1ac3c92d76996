"""The marking store: one SQLite file in WAL mode beside the gradebook (``<grades>/marking.sqlite``).

It holds the written questions and their rubric items, each submission's short code and answers, each answer's
mark (the items ticked and a comment) and an audit log of every change. SQLite because a class's marks are a few
thousand small rows written by a handful of TAs: one file, transactions, nothing to run. WAL mode lets pages read
while a mark is written, and ``synchronous=FULL`` makes a mark the server acknowledged survive a crash of the
server and of the machine (each commit is on disk before the reply).

A score is never stored: it is the sum of the points of the ticked items, clamped to 0..points, computed when read,
so editing an item's points or wording re-scores and re-words every answer that has it at once.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import render
from .answers import Answer, WrittenQuestion

FILE = "marking.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tas (name TEXT PRIMARY KEY, token TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS submissions (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, code TEXT NOT NULL UNIQUE,
    sheet TEXT NOT NULL, present INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS questions (name TEXT PRIMARY KEY, sheet TEXT NOT NULL, points REAL NOT NULL,
    position INTEGER NOT NULL, text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, question TEXT NOT NULL REFERENCES questions(name),
    position INTEGER NOT NULL, points REAL NOT NULL, explanation TEXT NOT NULL, note TEXT NOT NULL DEFAULT '',
    origin TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS answers (id INTEGER PRIMARY KEY, submission INTEGER NOT NULL REFERENCES submissions(id),
    question TEXT NOT NULL REFERENCES questions(name), digest TEXT NOT NULL, text TEXT NOT NULL,
    html TEXT NOT NULL, outputs TEXT NOT NULL, ord TEXT NOT NULL, UNIQUE (submission, question));
CREATE INDEX IF NOT EXISTS answers_by_question ON answers (question, ord);
CREATE TABLE IF NOT EXISTS marks (answer INTEGER PRIMARY KEY REFERENCES answers(id), items TEXT NOT NULL,
    comment TEXT NOT NULL, digest TEXT NOT NULL, version INTEGER NOT NULL, who TEXT NOT NULL, at REAL NOT NULL,
    open INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS audit (id INTEGER PRIMARY KEY, at REAL NOT NULL, who TEXT NOT NULL, kind TEXT NOT NULL,
    answer INTEGER, item INTEGER, before TEXT, after TEXT);
"""


class Conflict(Exception):
    """Someone else changed the mark since it was read; ``current`` is their mark."""

    def __init__(self, current: dict):
        super().__init__("the mark changed since it was read")
        self.current = current


class MarkingStore:
    """The marks of one graded class; safe to share between the server's threads."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._lock = threading.RLock()  # one connection; sqlite3 objects must not be used by two threads at once
        with self._lock:
            self._db.executescript(SCHEMA)
            if self._meta("secret") is None:
                self._db.execute("INSERT OR IGNORE INTO meta VALUES ('secret', ?)", (secrets.token_hex(16),))
        self.secret = self._meta("secret")

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row["value"] if row else None

    def _tx(self):
        return _Transaction(self)

    def _audit(self, who: str, kind: str, answer: int | None = None, item: int | None = None,
               before: Any = None, after: Any = None) -> None:
        self._db.execute("INSERT INTO audit (at, who, kind, answer, item, before, after) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (time.time(), who, kind, answer, item, json.dumps(before), json.dumps(after)))

    # --- TAs and their tokens ------------------------------------------------------------------------------
    def tokens(self, names: Iterable[str]) -> dict[str, str]:
        """A token per TA name (made once, kept across restarts), as {token: name}."""
        with self._tx():
            for name in names:
                self._db.execute("INSERT OR IGNORE INTO tas VALUES (?, ?)", (name, secrets.token_urlsafe(18)))
        wanted = set(names)
        return {r["token"]: r["name"] for r in self._db.execute("SELECT * FROM tas") if r["name"] in wanted}

    # --- loading a graded class ------------------------------------------------------------------------------
    def code(self, submission: str) -> str:
        """The short code a submission is shown by (stable for this store, tells nothing of the name)."""
        digest = hmac.new(self.secret.encode(), submission.encode(), hashlib.sha256).hexdigest()
        return digest[:6].upper()

    def _order(self, question: str, code: str) -> str:
        """Each question's own stable pseudo-random order of the answers (marking in sequence biases)."""
        return hashlib.sha256(f"{self.secret}|{question}|{code}".encode()).hexdigest()

    def sync(self, questions: dict[str, WrittenQuestion], graded: list[tuple[dict, list[Answer]]],
             who: str = "make grade") -> dict[str, int]:
        """Load (or reload, after a regrade) the class; marks of unchanged answers stay. Returns counts."""
        counts = {"new": 0, "changed": 0, "unchanged": 0}
        with self._tx():
            for q in questions.values():
                self._db.execute("INSERT INTO questions VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                                 "sheet=excluded.sheet, points=excluded.points, position=excluded.position, "
                                 "text=excluded.text", (q.name, q.sheet, q.points, q.position, q.text))
                if self._reseed(q):
                    # The master's rubric seeds the store, and replaces it while nothing was marked or added by a TA;
                    # after that the store's rubric is the one in use (--export-rubrics writes it for the master).
                    self._db.execute("DELETE FROM items WHERE question = ?", (q.name,))
                    for position, item in enumerate(q.rubric):
                        self._db.execute("INSERT INTO items (question, position, points, explanation, note, origin) "
                                         "VALUES (?, ?, ?, ?, ?, 'master')", (q.name, position, item["points"],
                                                                               item["explanation"], item.get("note", "")))
            self._db.execute("UPDATE submissions SET present = 0")
            for entry, answers in graded:
                name = entry["submission"]
                code = self.code(name)
                self._db.execute("INSERT INTO submissions (name, code, sheet) VALUES (?, ?, ?) ON CONFLICT(name) DO "
                                 "UPDATE SET present = 1, sheet = excluded.sheet", (name, code, entry["row"].get("sheet", "")))
                sid = self._db.execute("SELECT id FROM submissions WHERE name = ?", (name,)).fetchone()["id"]
                for answer in answers:
                    digest = answer.digest
                    old = self._db.execute("SELECT id, digest FROM answers WHERE submission = ? AND question = ?",
                                           (sid, answer.question)).fetchone()
                    shown = render.markdown(answer.text, answer.attachments) if answer.text else ""
                    outputs = render.outputs(answer.outputs)
                    if old is None:
                        self._db.execute("INSERT INTO answers (submission, question, digest, text, html, outputs, ord) "
                                         "VALUES (?, ?, ?, ?, ?, ?, ?)", (sid, answer.question, digest, answer.text,
                                                                          shown, outputs, self._order(answer.question, code)))
                        counts["new"] += 1
                    elif old["digest"] != digest:
                        # A regraded answer whose text changed is marked again; its old mark stays, in the audit log too.
                        self._db.execute("UPDATE answers SET digest = ?, text = ?, html = ?, outputs = ? WHERE id = ?",
                                         (digest, answer.text, shown, outputs, old["id"]))
                        self._audit(who, "answer changed", old["id"], before=old["digest"], after=digest)
                        counts["changed"] += 1
                    else:
                        self._db.execute("UPDATE answers SET outputs = ? WHERE id = ?", (outputs, old["id"]))
                        counts["unchanged"] += 1
        return counts

    def _reseed(self, q: WrittenQuestion) -> bool:
        """Whether the store's rubric of ``q`` should (again) be the master's: nothing marked with it, no TA's item."""
        items = [(r["points"], r["explanation"], r["note"], r["origin"]) for r in self._db.execute(
            "SELECT * FROM items WHERE question = ? ORDER BY position, id", (q.name,))]
        master = [(float(i["points"]), i["explanation"], i.get("note", ""), "master") for i in q.rubric]
        if items == master:
            return False
        used = self._db.execute("SELECT 1 FROM marks m JOIN answers a ON a.id = m.answer WHERE a.question = ? LIMIT 1",
                                (q.name,)).fetchone()
        return not used and all(origin == "master" for *_, origin in items)

    # --- reading ---------------------------------------------------------------------------------------------
    def _items(self, question: str) -> list[dict]:
        return [dict(r) for r in self._db.execute("SELECT id, position, points, explanation, note, origin FROM items "
                                                  "WHERE question = ? ORDER BY position, id", (question,))]

    @staticmethod
    def _score(ticked: Iterable[int], points_of: dict[int, float], possible: float) -> float:
        """The sum of the ticked items' points, between 0 and the question's points."""
        return min(possible, max(0.0, sum(points_of.get(i, 0.0) for i in ticked)))

    def questions(self) -> list[dict]:
        """Every written question with its progress: answers, marked, in course order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT q.name, q.sheet, q.points, COUNT(a.id) AS answers, "
                "SUM(CASE WHEN m.answer IS NOT NULL AND m.digest = a.digest AND m.open = 0 THEN 1 ELSE 0 END) AS marked "
                "FROM questions q LEFT JOIN answers a ON a.question = q.name "
                "LEFT JOIN submissions s ON s.id = a.submission AND s.present = 1 "
                "LEFT JOIN marks m ON m.answer = a.id WHERE a.id IS NULL OR s.id IS NOT NULL "
                "GROUP BY q.name ORDER BY q.position").fetchall()
        return [{**dict(r), "marked": r["marked"] or 0} for r in rows]

    def question(self, name: str) -> dict | None:
        """A question's text, points and rubric items."""
        with self._lock:
            row = self._db.execute("SELECT * FROM questions WHERE name = ?", (name,)).fetchone()
            return {**dict(row), "items": self._items(name)} if row else None

    def _mark_of(self, row: sqlite3.Row | None, digest: str, points_of: dict[int, float], possible: float) -> dict | None:
        if row is None:
            return None
        ticked = json.loads(row["items"])
        return {"items": ticked, "comment": row["comment"], "version": row["version"], "by": row["who"],
                "at": row["at"], "open": bool(row["open"]), "current": row["digest"] == digest,
                "score": self._score(ticked, points_of, possible)}

    def answers(self, question: str) -> list[dict]:
        """The question's answers in its own order: id, code, whether marked, score."""
        with self._lock:
            q = self._db.execute("SELECT points FROM questions WHERE name = ?", (question,)).fetchone()
            if q is None:
                return []
            points_of = {i["id"]: i["points"] for i in self._items(question)}
            rows = self._db.execute(
                "SELECT a.id, a.digest, s.code, m.items, m.digest AS mdigest, m.open FROM answers a "
                "JOIN submissions s ON s.id = a.submission AND s.present = 1 "
                "LEFT JOIN marks m ON m.answer = a.id WHERE a.question = ? ORDER BY a.ord", (question,)).fetchall()
        out = []
        for r in rows:
            marked = r["items"] is not None and r["mdigest"] == r["digest"] and not r["open"]
            score = self._score(json.loads(r["items"]), points_of, q["points"]) if marked else None
            out.append({"id": r["id"], "code": r["code"], "marked": marked, "score": score})
        return out

    def answer(self, answer_id: int) -> dict | None:
        """One answer, rendered, with its mark (``mark.current`` is False when the answer changed since)."""
        with self._lock:
            row = self._db.execute("SELECT a.*, s.code, q.points FROM answers a JOIN submissions s ON s.id = a.submission "
                                   "JOIN questions q ON q.name = a.question WHERE a.id = ?", (answer_id,)).fetchone()
            if row is None:
                return None
            points_of = {i["id"]: i["points"] for i in self._items(row["question"])}
            mark = self._db.execute("SELECT * FROM marks WHERE answer = ?", (answer_id,)).fetchone()
        return {"id": row["id"], "code": row["code"], "question": row["question"], "html": row["html"],
                "outputs": row["outputs"], "empty": not row["text"].strip(),
                "mark": self._mark_of(mark, row["digest"], points_of, row["points"])}

    # --- writing ---------------------------------------------------------------------------------------------
    def set_mark(self, answer_id: int, items: list[int], comment: str, version: int, who: str) -> dict:
        """Save a mark if nobody changed it since ``version`` (0: unmarked); else raise Conflict with theirs."""
        with self._tx():
            row = self._db.execute("SELECT a.digest, a.question, q.points FROM answers a JOIN questions q "
                                   "ON q.name = a.question WHERE a.id = ?", (answer_id,)).fetchone()
            if row is None:
                raise KeyError(answer_id)
            points_of = {i["id"]: i["points"] for i in self._items(row["question"])}
            unknown = [i for i in items if i not in points_of]
            if unknown:
                raise ValueError(f"no such rubric item of {row['question']}: {unknown}")
            old = self._db.execute("SELECT * FROM marks WHERE answer = ?", (answer_id,)).fetchone()
            before = self._mark_of(old, row["digest"], points_of, row["points"])
            if (old["version"] if old else 0) != version:
                raise Conflict(before)
            ticked = sorted(set(items), key=list(points_of).index)
            new_version = version + 1
            self._db.execute("INSERT INTO marks (answer, items, comment, digest, version, who, at, open) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT(answer) DO UPDATE SET items=excluded.items, "
                             "comment=excluded.comment, digest=excluded.digest, version=excluded.version, "
                             "who=excluded.who, at=excluded.at, open=0",
                             (answer_id, json.dumps(ticked), comment, row["digest"], new_version, who, time.time()))
            after = self._mark_of(self._db.execute("SELECT * FROM marks WHERE answer = ?", (answer_id,)).fetchone(),
                                  row["digest"], points_of, row["points"])
            self._audit(who, "mark", answer_id, before=before, after=after)
        return after

    def reopen(self, answer_id: int, who: str) -> dict | None:
        """Mark an answer as to be marked again; its mark stays visible, and the audit log keeps both."""
        with self._tx():
            old = self._db.execute("SELECT * FROM marks WHERE answer = ?", (answer_id,)).fetchone()
            if old is None:
                return None
            self._db.execute("UPDATE marks SET open = 1, version = version + 1 WHERE answer = ?", (answer_id,))
            self._audit(who, "reopen", answer_id, before=dict(old), after=None)
        return self.answer(answer_id)["mark"]

    def add_item(self, question: str, points: float, explanation: str, note: str, who: str) -> dict:
        """A new rubric item, added by a TA at the end of the question's rubric."""
        _check_item(points, explanation)
        with self._tx():
            if not self._db.execute("SELECT 1 FROM questions WHERE name = ?", (question,)).fetchone():
                raise KeyError(question)
            position = self._db.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM items WHERE question = ?",
                                        (question,)).fetchone()[0]
            cur = self._db.execute("INSERT INTO items (question, position, points, explanation, note, origin) "
                                   "VALUES (?, ?, ?, ?, ?, ?)", (question, position, points, explanation, note, who))
            item = dict(self._db.execute("SELECT * FROM items WHERE id = ?", (cur.lastrowid,)).fetchone())
            self._audit(who, "add item", item=item["id"], after=item)
        return item

    def edit_item(self, item_id: int, points: float, explanation: str, note: str, who: str) -> dict:
        """Change an item's points or wording: every answer that has it is re-scored and re-worded (scores are derived)."""
        _check_item(points, explanation)
        with self._tx():
            old = self._db.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
            if old is None:
                raise KeyError(item_id)
            self._db.execute("UPDATE items SET points = ?, explanation = ?, note = ? WHERE id = ?",
                             (points, explanation, note, item_id))
            new = dict(self._db.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone())
            self._audit(who, "edit item", item=item_id, before=dict(old), after=new)
        return new

    def comments(self, question: str, prefix: str = "", limit: int = 8) -> list[str]:
        """Comments already given on this question (most used first), those starting like ``prefix`` first."""
        with self._lock:
            rows = self._db.execute("SELECT m.comment, COUNT(*) AS n FROM marks m JOIN answers a ON a.id = m.answer "
                                    "WHERE a.question = ? AND m.comment != '' GROUP BY m.comment ORDER BY n DESC",
                                    (question,)).fetchall()
        words = prefix.strip().lower()
        found = [r["comment"] for r in rows if not words or words in r["comment"].lower()]
        found.sort(key=lambda c: not c.lower().startswith(words))
        return found[:limit]

    def audit(self, answer_id: int | None = None) -> list[dict]:
        """The audit log (of one answer, or all), oldest first."""
        with self._lock:
            sql, args = ("SELECT * FROM audit WHERE answer = ? ORDER BY id", (answer_id,)) if answer_id is not None \
                else ("SELECT * FROM audit ORDER BY id", ())
            return [{**dict(r), "before": json.loads(r["before"]), "after": json.loads(r["after"])}
                    for r in self._db.execute(sql, args)]

    def table(self) -> list[dict]:
        """Every answer of the class with its submission, code, text, ticked items and score (None: unmarked)."""
        with self._lock:
            items = {}
            for r in self._db.execute("SELECT * FROM items ORDER BY question, position, id"):
                items.setdefault(r["question"], {})[r["id"]] = dict(r)
            rows = self._db.execute(
                "SELECT a.id, a.question, a.text, a.digest, s.name, s.code, s.sheet, q.points, q.position, m.items, "
                "m.comment, m.digest AS mdigest, m.open, m.who FROM answers a "
                "JOIN submissions s ON s.id = a.submission AND s.present = 1 JOIN questions q ON q.name = a.question "
                "LEFT JOIN marks m ON m.answer = a.id ORDER BY s.name, q.position").fetchall()
        out = []
        for r in rows:
            of = items.get(r["question"], {})
            marked = r["items"] is not None and r["mdigest"] == r["digest"] and not r["open"]
            ticked = json.loads(r["items"]) if marked else []
            out.append({"answer": r["id"], "submission": r["name"], "code": r["code"], "sheet": r["sheet"],
                        "question": r["question"], "points": r["points"], "text": r["text"], "marked": marked,
                        "items": [of[i] for i in ticked if i in of], "comment": r["comment"] if marked else "",
                        "score": self._score(ticked, {i: v["points"] for i, v in of.items()}, r["points"])
                        if marked else None, "by": r["who"] if marked else None})
        return out

    def rubrics(self) -> dict[str, list[dict]]:
        """Every question's rubric items, in order."""
        with self._lock:
            names = [r["name"] for r in self._db.execute("SELECT name FROM questions ORDER BY position")]
            return {n: self._items(n) for n in names}

    def replace_marks(self, rows: list[dict], who: str) -> int:
        """Set many marks at once, in one transaction (a CSV import); each row {answer, items, comment}."""
        with self._tx():
            for row in rows:
                old = self._db.execute("SELECT version FROM marks WHERE answer = ?", (row["answer"],)).fetchone()
                self.set_mark(row["answer"], row["items"], row["comment"], old["version"] if old else 0, who)
        return len(rows)


def _check_item(points: Any, explanation: Any) -> None:
    if isinstance(points, bool) or not isinstance(points, (int, float)) or points == 0:
        raise ValueError("an item's points must be a non-zero number (negative deducts)")
    if not isinstance(explanation, str) or not explanation.strip():
        raise ValueError("an item needs an explanation (what the student reads)")


class _Transaction:
    """``with store._tx():`` one IMMEDIATE transaction under the store's lock; nested uses join the outer one."""

    def __init__(self, store: MarkingStore):
        self.store = store

    def __enter__(self):
        self.store._lock.acquire()
        self.outer = self.store._db.in_transaction
        if not self.outer:
            self.store._db.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, kind, value, tb):
        try:
            if not self.outer:
                self.store._db.execute("COMMIT" if kind is None else "ROLLBACK")
        finally:
            self.store._lock.release()
        return False

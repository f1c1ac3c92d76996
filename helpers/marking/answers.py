"""A graded class read for marking: each submission's written answers, each written question's text and rubric.

``make grade`` keeps each graded notebook beside the gradebook (``gradebook.json`` names it); ``make assign`` wrote
each sheet's questions, rubrics and referred cells into ``dist/autograder/<sheet>.json`` and the student version
into ``dist/student/``. An answer is the markdown of the answer cells of a written question (otter's
``otter_answer_cell`` tag), its cell attachments (images), and the outputs of the question's code cells that the
master names in ``refers``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import store

PLACEHOLDER = "_Type your answer here, replacing this text._"


@dataclass(frozen=True)
class WrittenQuestion:
    """A written question of a sheet: name, points, the text students read, its rubric and referred cells."""

    name: str
    sheet: str
    points: float
    position: int                     # order in the course (sheets in order, questions in sheet order)
    text: str                         # the question's markdown, as the student version shows it
    rubric: tuple[dict, ...]          # {"points", "explanation", "note"}
    refers: tuple[int, ...]


@dataclass
class Answer:
    """One submission's answer to one written question."""

    submission: str
    question: str
    text: str                                                  # markdown, answer cells joined
    attachments: dict[str, dict] = field(default_factory=dict)  # name -> {mime: base64}
    outputs: list[dict] = field(default_factory=list)          # outputs of the referred code cells

    @property
    def digest(self) -> str:
        """What decides whether a regraded answer must be marked again: its text and its images."""
        return hashlib.sha256(json.dumps([self.text.strip(), self.attachments], sort_keys=True).encode()).hexdigest()


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _question_meta(cell: dict) -> dict | None:
    meta = cell.get("metadata")
    kit = meta.get("kit") if isinstance(meta, dict) else None
    question = kit.get("question") if isinstance(kit, dict) else None
    return question if isinstance(question, dict) and question.get("name") else None


def question_cells(cells: list[dict], name: str) -> list[dict]:
    """The cells of question ``name`` in a student notebook: from its first cell to the end marker or the next question."""
    start = next((i for i, c in enumerate(cells) if (_question_meta(c) or {}).get("name") == name), None)
    if start is None:
        return []
    found = [cells[start]]
    for cell in cells[start + 1:]:
        if _question_meta(cell) or _source(cell).lstrip().startswith("<!-- END QUESTION"):
            break
        found.append(cell)
    return found


def _is_answer(cell: dict) -> bool:
    tags = (cell.get("metadata") or {}).get("tags") or []
    return cell.get("cell_type") == "markdown" and "otter_answer_cell" in tags


def read_answer(cells: list[dict], submission: str, question: WrittenQuestion) -> Answer:
    """A submission's answer to ``question`` from its notebook's cells (empty text when the cells are gone)."""
    inside = question_cells(cells, question.name)
    answers = [c for c in inside if _is_answer(c)]
    texts = [_source(c).strip() for c in answers]
    text = "\n\n".join(t for t in texts if t and t != PLACEHOLDER)
    attachments = {name: {m: v for m, v in data.items() if m.startswith("image/")}
                   for c in answers for name, data in (c.get("attachments") or {}).items() if isinstance(data, dict)}
    first_answer = next((i for i, c in enumerate(inside) if _is_answer(c)), len(inside))
    code = [c for c in inside[:first_answer] if c.get("cell_type") == "code"]
    outputs = [o for n in question.refers if 0 < n <= len(code) for o in code[n - 1].get("outputs") or []]
    return Answer(submission, question.name, text, attachments, outputs)


def _question_text(cells: list[dict], name: str) -> str:
    """The question's own markdown (its heading and task), without otter's markers and answer cells."""
    parts = []
    for cell in question_cells(cells, name):
        if cell.get("cell_type") == "markdown" and not _is_answer(cell):
            text = _source(cell).replace("<!-- BEGIN QUESTION -->", "").strip()
            if text:
                parts.append(text)
    return "\n\n".join(parts)


def written_questions(dist: Path) -> dict[str, WrittenQuestion]:
    """Every written question of the sheets ``make assign`` wrote into ``dist``, by name, in course order."""
    autograders = Path(dist) / "autograder"
    infos = sorted(autograders.glob("*.json"))
    if not infos:
        raise FileNotFoundError(f"No sheets in {autograders}: run `make assign` first (it writes <sheet>.json there).")
    found: dict[str, WrittenQuestion] = {}
    for info in infos:
        data = store.read_json(info)
        if not isinstance(data, dict) or "questions" not in data:
            continue
        student = Path(dist) / "student" / data["notebook"]
        cells = json.loads(student.read_text(encoding="utf-8"))["cells"] if student.is_file() else []
        for q in data["questions"]:
            if q.get("manual"):
                found[q["name"]] = WrittenQuestion(q["name"], data["assignment"], float(q["points"]), len(found),
                                                   _question_text(cells, q["name"]), tuple(q.get("rubric", ())),
                                                   tuple(q.get("refers", ())))
    return found


def graded_answers(grades: Path, questions: dict[str, WrittenQuestion]) -> list[tuple[dict, list[Answer]]]:
    """(gradebook.json entry, its answers) for every graded submission of ``grades`` that has a notebook."""
    details = Path(grades) / "gradebook.json"
    entries = store.read_json(details)
    if not isinstance(entries, list):
        raise FileNotFoundError(f"No graded class in {grades}: {details.name} is missing or unreadable; run "
                                "`make grade SUBMISSIONS=<folder>` first.")
    found = []
    for entry in entries:
        if not entry.get("notebook"):
            continue  # nothing to mark: the row says why it was not graded
        nb: Any = json.loads((Path(grades) / entry["notebook"]).read_text(encoding="utf-8"))
        cells = nb.get("cells", [])
        sheet = entry["row"].get("sheet")
        answers = [read_answer(cells, entry["submission"], q) for q in questions.values() if q.sheet == sheet]
        found.append((entry, answers))
    return found

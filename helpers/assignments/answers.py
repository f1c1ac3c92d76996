"""What a notebook answers: each question's answer cells, the master's solutions, and the student's id.

A student notebook (``make assign``) marks each question's first cell with ``metadata.kit.question`` and
each answer cell with the tag ``otter_answer_cell``; the answer to a question is the text of its answer
cells, in order, up to the next question. The master's solution to a question is the text of its
solution cells (code as the solved sheet prints it, markdown as written).

A student says who they are in the setup cell (the first code cell): ``STUDENT_ID = "s1234567"``.
"""
from __future__ import annotations

import re
from typing import Any

from .. import master_format as mf

ANSWER_TAG = "otter_answer_cell"
# The line the masters' setup cells carry; the student fills in the quotes.
STUDENT_ID_LINE = re.compile(r"""^\s*STUDENT_ID\s*=\s*(["'])(?P<id>[^"'\n]*)\1""", re.MULTILINE)


def source(cell: dict) -> str:
    """A cell's source as one string (ipynb files may store it as a list of lines)."""
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def question_of(cell: dict) -> dict | None:
    """The ``metadata.kit.question`` a question's first cell carries ({name, points, manual}), else None."""
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    kit = meta.get("kit") if isinstance(meta, dict) else None
    question = kit.get("question") if isinstance(kit, dict) else None
    return question if isinstance(question, dict) and "name" in question else None


def answers(nb: dict[str, Any]) -> dict[str, list[dict]]:
    """Each question's answer cells (``{"cell_type", "source"}``), by question name, in the notebook's order."""
    found: dict[str, list[dict]] = {}
    current = None
    for cell in nb.get("cells", []):
        if not isinstance(cell, dict):
            continue
        question = question_of(cell)
        if question is not None:
            current = question["name"]
            found.setdefault(current, [])
        tags = (cell.get("metadata") or {}).get("tags") or []
        if current is not None and ANSWER_TAG in tags:
            found[current].append({"cell_type": cell.get("cell_type", "code"), "source": source(cell)})
    return found


def answer_text(nb: dict[str, Any]) -> dict[str, str]:
    """Each question's answer as one text (its answer cells joined by a blank line)."""
    return {name: "\n\n".join(c["source"].rstrip() for c in cells) for name, cells in answers(nb).items()}


def master_solutions(master_cells: list[dict]) -> dict[str, str]:
    """Each question's solution in a master notebook, as a student would write it."""
    solution = {i for i, block in mf.blocks(master_cells) if block == "solution"}
    found: dict[str, list[str]] = {}
    current = None
    for index, cell in enumerate(master_cells):
        head = source(cell).lstrip() if mf.is_boundary(cell) else ""
        if head.startswith("# BEGIN QUESTION"):
            current = mf.questions([cell])[0].name
            found[current] = []
        elif head.startswith("# END QUESTION"):
            current = None
        elif current is not None and index in solution and cell.get("cell_type") in ("code", "markdown"):
            text = mf.printed_form(source(cell)) if cell["cell_type"] == "code" else source(cell)
            found[current].append(text.rstrip())
    return {name: "\n\n".join(parts) for name, parts in found.items()}


def student_id(nb: dict[str, Any]) -> str | None:
    """The id a student typed into ``STUDENT_ID = "..."`` (the setup cell), or None when left empty."""
    for cell in nb.get("cells", []):
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            match = STUDENT_ID_LINE.search(source(cell))
            if match:
                return match.group("id").strip() or None
    return None

"""Sample submissions to try an autograder on: what students hand in, generated from a master and its student version.

``make assign`` builds the student version; these variants say whether the autograder grades as it should
before any student hands anything in (tests/test_assignments.py, benchmarks/grading.py):

- ``master``: the solved sheet (full points);
- ``untouched``: the student version as distributed (0 on every code question);
- ``solved-<q>``: the student version with question q's solution pasted back (exactly q's points);
- ``broken-cell``: the solved sheet with a lesson cell that ends in an error (full points, and the row says so);
- ``no-check-cell`` and ``moved-cells``: a deleted, and a moved and duplicated, ``grader.check`` cell.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

from .. import master_format as mf


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def solution_cells(master_cells: list[dict], name: str) -> list[int]:
    """Indices of the master's solution code cells of question ``name``."""
    solution = {i for i, block in mf.blocks(master_cells) if block == "solution"}
    current, found = None, []
    for index, cell in enumerate(master_cells):
        head = _source(cell).lstrip() if mf.is_boundary(cell) else ""
        if head.startswith("# BEGIN QUESTION"):
            current = mf.questions([cell])[0].name
        elif head.startswith("# END QUESTION"):
            current = None
        elif current == name and index in solution and cell["cell_type"] == "code":
            found.append(index)
    return found


def pasted(student: dict, master_cells: list[dict], name: str) -> dict:
    """The student notebook with question ``name``'s solution pasted into its answer cells, as a student would."""
    nb = copy.deepcopy(student)
    solutions = [mf.printed_form(_source(master_cells[i])) for i in solution_cells(master_cells, name)]
    start = next(i for i, c in enumerate(nb["cells"])
                 if (c.get("metadata", {}).get("kit", {}).get("question") or {}).get("name") == name)
    answers = []
    for cell in nb["cells"][start:]:
        if cell["cell_type"] == "code" and f'grader.check("{name}")' in _source(cell):
            break
        if cell["cell_type"] == "code" and "otter_answer_cell" in cell.get("metadata", {}).get("tags", []):
            answers.append(cell)
    if len(answers) != len(solutions) or not solutions:
        raise ValueError(f"{name}: {len(answers)} answer cells in the student version, {len(solutions)} solution cells "
                         "in the master; they must pair up.")
    for cell, solution in zip(answers, solutions):
        cell["source"] = solution
    return nb


def samples(master: Path, dist: Path) -> dict[str, dict]:
    """Named sample submissions (notebooks as JSON dicts) of one sheet, from its master and ``dist``."""
    master = Path(master)
    cells = json.loads(master.read_text(encoding="utf-8"))["cells"]
    student = json.loads((Path(dist) / "student" / master.name).read_text(encoding="utf-8"))
    solved = json.loads((Path(dist) / "autograder" / master.name).read_text(encoding="utf-8"))
    out = {"master": json.loads(master.read_text(encoding="utf-8")), "untouched": student}
    for q in mf.questions(cells):
        if not q.manual:
            out[f"solved-{q.name}"] = pasted(student, cells, q.name)
    code = [i for i, c in enumerate(solved["cells"]) if c["cell_type"] == "code"
            and "otter_answer_cell" not in c.get("metadata", {}).get("tags", []) and "grader." not in _source(c)]
    broken = copy.deepcopy(solved)
    # A lesson cell midway ends in a line that fails. What ran above it stands, so every question can still
    # pass; a cell that never parses would take its definitions with it, and the questions using them fail.
    lesson = broken["cells"][code[len(code) // 2]]
    lesson["source"] = _source(lesson).rstrip() + "\nprint(a_name_the_student_never_defined)"
    out["broken-cell"] = broken
    # A check cell is the call alone (the setup cell may mention grader.check in a comment).
    checks = [i for i, c in enumerate(solved["cells"]) if c["cell_type"] == "code"
              and _source(c).strip().startswith("grader.check(")]
    missing = copy.deepcopy(solved)
    missing["cells"].pop(checks[0])
    out["no-check-cell"] = missing
    moved = copy.deepcopy(solved)
    check = moved["cells"].pop(checks[-1])
    moved["cells"].insert(1, check)                       # above the solution it checks
    moved["cells"].insert(len(moved["cells"]) // 2, copy.deepcopy(check))  # and once more, in the middle
    out["moved-cells"] = moved
    return out

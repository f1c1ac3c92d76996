"""A generated graded class to try marking on (tests/test_marking.py, benchmarks/marking.py): no kernel runs.

Each submission is the sheet's student version with every written answer filled in (some with math, one with an
image, some left empty), the referred code cells given an output, and a made-up autograder outcome; the class goes
through ``make grade``'s own ``write_gradebook``, so the folder is what ``make grade`` writes.
"""
from __future__ import annotations

import copy
import json
import random
from pathlib import Path

from ..assignments.grade import GRADED, Submission, load_sheets, write_gradebook
from .answers import question_cells

# A 4x4 PNG, red: an image a student pasted into an answer cell.
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAIAAAAmkwkpAAAAEklEQVR4nGP8z4APMOGVZRip0gBBLAEHpdQ3NQAAAABJRU5ErkJggg==")
TEXTS = (
    "The gradient of $E$ with respect to $w_{ji}$ is $\\delta_j z_i$, because $w_{ji}$ reaches $E$ only through $a_j$.",
    "**Answer.** A larger learning rate trains faster at first, then oscillates:\n\n$$\\eta_t = \\eta_0 \\gamma^t$$\n\n"
    "settles the run.",
    "Width helps more than depth here; the table above shows it.\n\n| model | accuracy |\n|---|---|\n| small | 0.81 |",
    "I am not sure. <script>alert('x')</script> The loss goes down.",
    "See my sketch: ![sketch](attachment:sketch.png) The curve falls, then flattens.",
    "",
)


def make_class(dist: Path, out: Path, sheet_notebook: str, n: int, seed: int = 0) -> list[str]:
    """Write a graded class of ``n`` submissions of one sheet into ``out`` (gradebook, notebooks, feedback)."""
    sheets = load_sheets(Path(dist) / "autograder")
    sheet = next(s for s in sheets.values() if s.notebook == sheet_notebook)
    student = json.loads((Path(dist) / "student" / sheet_notebook).read_text(encoding="utf-8"))
    rng = random.Random(seed)
    subs, outcomes = [], {}
    for k in range(n):
        nb = copy.deepcopy(student)
        for q in sheet.questions:
            if not q["manual"]:
                continue
            cells = question_cells(nb["cells"], q["name"])
            for cell in cells:
                if "otter_answer_cell" in (cell.get("metadata") or {}).get("tags", []):
                    text = TEXTS[rng.randrange(len(TEXTS))]
                    cell["source"] = f"{text}\n\n(student {k})" if text else ""
                    if "attachment:" in text:
                        cell["attachments"] = {"sketch.png": {"image/png": PNG}}
                elif cell.get("cell_type") == "code":
                    cell["outputs"] = [{"output_type": "display_data", "metadata": {}, "data": {
                        "text/html": f"<table><tr><th>run</th><th>acc</th></tr><tr><td>{k}</td><td>0.{80 + k % 9}</td></tr></table>",
                        "text/plain": f"run {k}"}}]
        sub = Submission(f"student{k:03d}/{sheet_notebook}", json.dumps(nb).encode(), collected=1.7e9 + k, sheet=sheet)
        questions = {}
        for q in sheet.questions:
            if q["manual"]:
                continue
            passed = rng.random() < 0.7
            questions[q["name"]] = {"score": q["points"] if passed else 0.0, "possible": q["points"], "tests": [
                {"name": f"{q['name']} - 1", "hidden": False, "passed": passed,
                 "message": "" if passed else "AssertionError: expected 0.5, got 0.25"}]}
        subs.append(sub)
        outcomes[sub.id] = {"status": GRADED, "questions": questions, "errors": []}
    write_gradebook(subs, outcomes, {sheet.assignment: sheet}, Path(out))
    return [s.id for s in subs]

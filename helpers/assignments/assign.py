"""``make assign``: the masters in notebooks/ become student notebooks and autograders, through ``otter assign``.

For each master, in a staging folder (nothing is written into notebooks/):

1. the master is copied beside ``assignment.yml`` (the settings all sheets share) and a copy of
   ``helpers/`` (otter only packs files from the master's own folder);
2. each question's first cell gets ``metadata.kit.question`` (its otter name), so the kit's export
   can start each question on a new page and map questions to pages in a student's PDF;
3. ``otter assign`` writes the student notebook (solutions replaced by prompts, hidden tests and
   answers removed, public tests in its metadata) and the autograder zip (every test, and
   ``helpers/`` so that a Docker or Gradescope grader has the kit).

The results land in ``dist/student/<sheet>.ipynb`` and ``dist/autograder/<sheet>.zip``, with the
solved ``<sheet>.ipynb`` and ``<sheet>.json`` (the sheet's questions, for the gradebook; each written question's
rubric and referred cells, for ``make mark``) beside the zip. A rubric never reaches the student folder: it lives
in the BEGIN QUESTION cell, which otter drops, and the question metadata given to students holds no rubric.
The student folder also gets a copy of ``helpers/`` (no master is in it), the packages to install
and a README for students. The copy must hold no answer to a graded question (``leaks.find_answers``):
``assign`` refuses to publish one that does.
"""
from __future__ import annotations

import compileall
import io
import json
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import master_format, store
from . import leaks
from ..config import REPO_ROOT
from . import expected

KIT_ZIP = "kit.zip"  # dist/autograder/kit.zip: the student kit, as each grading sandbox mounts it
SHARED_CONFIG = "assignment.yml"
STUDENT_README = """\
# Your sheets

1. Install what the sheets need once, in a Python 3.11 virtual environment: `pip install -r requirements.txt`.
   The kit itself is the `helpers/` folder beside the notebooks.
2. Open a sheet in JupyterLab (`jupyter lab`) in this folder and run its first code cell.
3. Fill in every cell that says `...` or raises `NotImplementedError`, and every answer cell
   ("_Type your answer here_"). Cells that need an unfinished exercise say so and are skipped.
4. After each exercise, run the `grader.check("q…")` cell below it: it runs the public tests and
   says what was expected, what came, and where to look. Hidden tests run only when grading.
5. Hand in a verifiable bundle (notebook, PDF and manifest):
   `python -m helpers.export submit 01_backprop_autodiff.ipynb --profile quick --out build/pdf --bundles submit`
   and upload `submit/01_backprop_autodiff.zip`. Add `--pagebreaks` if your course grades on Gradescope.
"""


class AssignError(RuntimeError):
    """otter assign could not build a sheet; the message names the master and otter's complaint."""


@dataclass
class Assigned:
    """What ``assign`` wrote for one master."""

    master: Path
    student: Path
    autograder: Path
    questions: list[master_format.Question]


def read_cells(path: Path) -> list[dict]:
    """The cells of a notebook file, as plain JSON."""
    return json.loads(Path(path).read_text(encoding="utf-8"))["cells"]


def check_master(path: Path) -> list[master_format.Question]:
    """The master's questions; a ValueError names what makes ``path`` not a master."""
    cells = read_cells(path)
    if not cells or not master_format.is_boundary(cells[0]) or \
            master_format.ASSIGNMENT_CONFIG not in "".join(cells[0].get("source", "")):
        raise ValueError(f"{path} is not a master notebook: its first cell must be a raw cell starting with "
                         f"'{master_format.ASSIGNMENT_CONFIG}' (otter-grader's format; see README, 'For instructors').")
    try:
        found = master_format.questions(cells)  # checks each rubric, too (master_format.rubric_of)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    if not found:
        raise ValueError(f"{path} has no questions (raw cells '# BEGIN QUESTION' with a name and points).")
    return found


def _staged(master: Path, stage: Path, found: list[master_format.Question]) -> Path:
    """Copy the master (questions marked), the shared config and helpers/ into ``stage``; return the copy."""
    notebooks = stage / "notebooks"
    notebooks.mkdir(parents=True)
    shared = master.parent / SHARED_CONFIG
    if shared.is_file():
        shutil.copy2(shared, notebooks / SHARED_CONFIG)
    shutil.copytree(REPO_ROOT / "helpers", notebooks / "helpers",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    nb = json.loads(master.read_text(encoding="utf-8"))
    for question in found:
        cell = nb["cells"][question.first_cell]
        cell.setdefault("metadata", {}).setdefault("kit", {})["question"] = {
            "name": question.name, "points": question.points, "manual": question.manual}
    for cell in nb["cells"]:  # a master is committed cleared; make sure no stale output reaches students
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
    copy = notebooks / master.name
    copy.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return copy


def student_kit_zip(masters: Sequence[Path] = ()) -> bytes:
    """The student kit as a zip (``helpers/…``): what a sandbox mounts when it grades a submission."""
    with tempfile.TemporaryDirectory(prefix="kit-student-kit-") as tmp:
        root = Path(tmp)
        refuse_answers(student_kit(root), [Path(m) for m in masters])
        # Compiled once here: the sandbox mounts the kit read-only, so each submission would compile it again.
        # Unchecked hash-based .pyc files hold no timestamp, so the same kit zips to the same bytes.
        compileall.compile_dir(root, quiet=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted(root.rglob("*")):
                if path.is_file():
                    info = zipfile.ZipInfo(str(path.relative_to(root)), date_time=(2020, 1, 1, 0, 0, 0))
                    zf.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)  # fixed dates: same kit, same bytes
        return buffer.getvalue()


def assign_one(master: Path, dist: Path, timeout: int = 600, kit: bytes | None = None) -> Assigned:
    """Run otter assign on one master; write its student notebook, autograder and grading file into ``dist``."""
    master = Path(master).resolve()
    found = check_master(master)
    with tempfile.TemporaryDirectory(prefix="kit-assign-") as tmp:
        copy = _staged(master, Path(tmp), found)
        result = Path(tmp) / "out"
        proc = subprocess.run([sys.executable, "-m", "otter", "assign", "--no-pdfs", str(copy), str(result)],
                              cwd=copy.parent, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "PYDEVD_DISABLE_FILE_VALIDATION": "1"})
        zips = sorted((result / "autograder").glob("*.zip"))
        student = result / "student" / master.name
        if proc.returncode != 0 or not zips or not student.is_file():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise AssignError(f"otter assign failed on {master.name} (exit code {proc.returncode}):\n{tail}")
        out_student = store.write_bytes(dist / "student" / master.name, student.read_bytes())
        out_zip = store.write_bytes(dist / "autograder" / f"{master.stem}.zip", zips[-1].read_bytes())
        solved = result / "autograder" / master.name
        if solved.is_file():
            store.write_bytes(dist / "autograder" / master.name, solved.read_bytes())
    kit = kit if kit is not None else student_kit_zip([master])
    out_kit = store.write_bytes(dist / "autograder" / KIT_ZIP, kit)
    try:
        grading = expected.build(master, out_student, dist / "autograder" / master.name, kit, timeout=timeout)
    except ValueError as error:
        raise AssignError(str(error)) from error
    out_grading = store.write_json(dist / "autograder" / f"{master.stem}.grading.json", grading)
    name = master_format.assignment_config(read_cells(master)).get("name") or master.stem
    store.write_json(dist / "autograder" / f"{master.stem}.json", {
        "assignment": str(name), "notebook": master.name, "zip": out_zip.name, "grading": out_grading.name,
        "kit": out_kit.name, "questions": [question_entry(q) for q in found]}, indent=1)
    return Assigned(master, out_student, out_zip, found)


def question_entry(question: master_format.Question) -> dict:
    """A question as ``<sheet>.json`` lists it: name, points, manual, and a written question's rubric and referred cells."""
    entry = {"name": question.name, "points": question.points, "manual": question.manual}
    if question.manual:
        entry["rubric"] = [{"points": i.points, "explanation": i.explanation, "note": i.note} for i in question.rubric]
        entry["refers"] = list(question.refers)
    return entry


def student_kit(target: Path) -> Path:
    """Copy helpers/ as students get it into ``target``/helpers (no caches); return the copy."""
    shutil.copytree(REPO_ROOT / "helpers", Path(target) / "helpers", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return Path(target) / "helpers"


def refuse_answers(kit: Path, masters: Sequence[Path]) -> None:
    """Raise AssignError, naming each file and line, if the kit at ``kit`` holds an answer to a graded question."""
    found = leaks.find_answers(kit, masters)
    if found:
        listed = "\n".join(f"  helpers/{leak}" for leak in found)
        raise AssignError(f"helpers/ would give students the answer to a graded question:\n{listed}\n"
                          "Move that code into the master's solution cell (or under tests/ for the kit's own tests), "
                          "or rename it; see README, 'For instructors'.")


def student_extras(dist: Path, masters: Sequence[Path] = ()) -> None:
    """The student folder's README, its requirements and a copy of helpers/ (no master is in it, nor an answer)."""
    import tomllib

    student = dist / "student"
    store.write_text(student / "README.md", STUDENT_README)
    deps = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    store.write_text(student / "requirements.txt", "\n".join(deps) + "\n")
    tmp = Path(tempfile.mkdtemp(prefix=".helpers-", dir=student))
    try:
        kit = student_kit(tmp)
        refuse_answers(kit, [Path(m) for m in masters])  # before anything is published to students
        store.publish_dir(kit, student / "helpers", replace=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def summary(cells: list[dict]) -> str:
    """One line about a master: questions, points, the lines a student writes, public and hidden tests."""
    found = master_format.questions(cells)
    tests = [cells[i] for i in master_format.test_cells(cells)]
    hidden = sum(master_format.is_hidden_test(c) for c in tests)
    return (f"{len(found)} questions, {sum(q.points for q in found):g} points "
            f"({sum(q.points for q in found if not q.manual):g} autograded), "
            f"{len(master_format.solution_lines(cells))} lines of code to write, "
            f"{len(tests) - hidden} public and {hidden} hidden tests")


def assign(masters: list[Path], dist: Path, extras: bool = True,
           progress: Callable[[str], None] | None = print) -> list[Assigned]:
    """Build every master's student notebook and autograder into ``dist``; return what was written."""
    names = [q.name for m in masters for q in check_master(Path(m))]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:  # the gradebook has one column per question
        raise AssignError(f"Question names must differ across sheets; used more than once: {', '.join(clash)}.")
    done = []
    kit = student_kit_zip(masters)
    for master in masters:
        done.append(assign_one(Path(master), Path(dist), kit=kit))
        if progress:
            progress(f"  {Path(master).name}: {summary(read_cells(Path(master)))}")
    if extras:
        student_extras(Path(dist), [Path(m) for m in masters])
    return done

"""make assign and make grade end to end, on the real sheets, with real otter-grader.

The masters are built into student notebooks and autograders once; then one folder of submissions is
graded once: each master, each untouched student notebook, each with one solution pasted back, and for
sheet 1 what students really hand in: a broken cell, a deleted check cell, moved and duplicated cells,
an endless loop, a kernel that dies, a verified and a tampered bundle, and a file that is no notebook.
"""
from __future__ import annotations

import copy
import csv
import io
import json
import zipfile
from pathlib import Path

import pytest

from helpers import master_format as mf
from helpers.assignments.assign import assign
from helpers.assignments.grade import grade
from helpers.assignments.samples import pasted

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
MASTERS = sorted((REPO / "notebooks").glob("[0-9]*.ipynb"))
SHEET1 = "01_backprop_autodiff.ipynb"


def cells_of(path: Path) -> list[dict]:
    return json.loads(Path(path).read_text())["cells"]


def src(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    assign(MASTERS, out, progress=None)
    return out


def test_assign_writes_a_student_notebook_and_an_autograder_per_sheet(dist):
    for master in MASTERS:
        assert (dist / "student" / master.name).is_file()
        with zipfile.ZipFile(dist / "autograder" / f"{master.stem}.zip") as zf:
            names = zf.namelist()
        assert "otter_config.json" in names and any(n.startswith("tests/") for n in names)
        assert any(n.startswith("files/helpers/") for n in names), "a Docker grader needs the kit"
    student = dist / "student"
    assert (student / "helpers" / "exercises.py").is_file() and (student / "requirements.txt").is_file()
    assert not list(student.rglob("assignment.yml")), "no master's config reaches students"


@pytest.mark.parametrize("master", MASTERS, ids=lambda p: p.stem)
def test_no_solution_line_and_no_hidden_test_reaches_the_student(dist, master):
    cells = cells_of(master)
    secret = set(mf.solution_lines(cells)) - set(mf.given_lines(cells))  # a line the student is given is no leak
    assert secret, "the master marks the code students write"
    student_text = (dist / "student" / master.name).read_text()
    student_lines = {ln.strip() for c in cells_of(dist / "student" / master.name) if c["cell_type"] == "code"
                     for ln in src(c).splitlines()}
    leaked = sorted(secret & student_lines)
    assert not leaked, f"solution lines in the student version of {master.name}: {leaked[:5]}"
    hidden = [src(cells[i]) for i in mf.test_cells(cells) if src(cells[i]).lstrip().startswith("# HIDDEN")]
    assert hidden, "every sheet has hidden tests"
    for test in hidden:
        name = test.split("def ", 1)[1].split("(", 1)[0]
        assert name not in student_text, f"hidden test {name} is in the student notebook"


# --- submissions -----------------------------------------------------------------------------------
def autograded(master: Path) -> list[mf.Question]:
    return [q for q in mf.questions(cells_of(master)) if not q.manual]


def _solved(dist: Path) -> dict:
    """otter's solution version of sheet 1: the student notebook's cells with the solutions in them."""
    return json.loads((dist / "autograder" / SHEET1).read_text())


def _code_cell(nb: dict, text: str) -> int:
    return next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" and text in src(c))


def _bundle(nb: dict, tamper: bool) -> bytes:
    """A kit submission zip of ``nb`` (its PDF a stamped placeholder); ``tamper`` edits the notebook after."""
    from pypdf import PdfWriter

    from helpers.export.bundle import make_bundle, sha256, stamp_pdf

    out = io.BytesIO()
    writer = PdfWriter()
    writer.add_blank_page(595, 842)
    writer.write(out)
    nb_bytes = json.dumps(nb).encode()
    pdf, _ = stamp_pdf(out.getvalue(), sha256(nb_bytes))
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / SHEET1).write_bytes(nb_bytes)
        (Path(tmp) / "sheet.pdf").write_bytes(pdf)
        zipped = make_bundle(Path(tmp) / SHEET1, Path(tmp) / "sheet.pdf", Path(tmp) / "b.zip").read_bytes()
    if not tamper:
        return zipped
    edited = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(zipped)) as zin, zipfile.ZipFile(edited, "w") as zout:
        for item in zin.namelist():
            data = zin.read(item)
            if item == SHEET1:
                data = data.replace(b"def forward_np", b"def forward_np ")  # edited after the export
            zout.writestr(item, data)
    return edited.getvalue()


@pytest.fixture(scope="module")
def gradebook(dist, tmp_path_factory) -> dict[str, dict]:
    subs = tmp_path_factory.mktemp("submissions")
    for master in MASTERS:
        student = json.loads((dist / "student" / master.name).read_text())
        (subs / "master").mkdir(exist_ok=True)
        (subs / "master" / master.name).write_bytes(master.read_bytes())
        (subs / "untouched").mkdir(exist_ok=True)
        (subs / "untouched" / master.name).write_text(json.dumps(student))
        (subs / "pasted").mkdir(exist_ok=True)
        first = autograded(master)[0].name
        (subs / "pasted" / master.name).write_text(json.dumps(pasted(student, cells_of(master), first)))
    solved = _solved(dist)
    broken = copy.deepcopy(solved)
    broken["cells"][_code_cell(broken, "The same network in PyTorch")]["source"] = "this is not python ("
    deleted = copy.deepcopy(solved)
    deleted["cells"].pop(_code_cell(deleted, 'grader.check("q2b")'))
    moved = copy.deepcopy(solved)
    check = moved["cells"].pop(_code_cell(moved, 'grader.check("q2b")'))
    moved["cells"].insert(2, check)  # above the solution it checks
    moved["cells"].append(copy.deepcopy(moved["cells"][_code_cell(moved, "def forward_np")]))
    moved["cells"].insert(5, copy.deepcopy(check))
    endless = copy.deepcopy(solved)
    endless["cells"].insert(_code_cell(endless, "The same network in PyTorch"),
                            {"cell_type": "code", "source": "while True:\n    pass", "metadata": {}, "outputs": [],
                             "execution_count": None})
    dead = copy.deepcopy(solved)
    dead["cells"].insert(3, {"cell_type": "code", "source": "import os\nos._exit(1)", "metadata": {}, "outputs": [],
                             "execution_count": None})
    for name, nb in [("broken", broken), ("deleted", deleted), ("moved", moved), ("endless", endless), ("dead", dead)]:
        (subs / name).mkdir()
        (subs / name / SHEET1).write_text(json.dumps(nb))
    (subs / "zips").mkdir()
    (subs / "zips" / "verified.zip").write_bytes(_bundle(solved, tamper=False))
    (subs / "zips" / "tampered.zip").write_bytes(_bundle(solved, tamper=True))
    (subs / "notes.txt").write_text("my answers are in my head")
    out = tmp_path_factory.mktemp("grades")
    book = grade(subs, dist / "autograder", out, jobs=2, timeout=400, cell_timeout=45, progress=None)
    rows = {row["submission"]: row for row in csv.DictReader(book.open())}
    rows["__out__"] = {"path": out}
    return rows


def _score(row: dict, name: str) -> float:
    return float(row[name])


@pytest.mark.parametrize("master", MASTERS, ids=lambda p: p.stem)
def test_each_master_scores_full_points(gradebook, master):
    row = gradebook[f"master/{master.name}"]
    assert row["status"] == "graded", row["note"]
    assert float(row["autograded"]) == float(row["possible"]) == sum(q.points for q in autograded(master))
    assert all(row[q.name] == "manual" for q in mf.questions(cells_of(master)) if q.manual)


@pytest.mark.parametrize("master", MASTERS, ids=lambda p: p.stem)
def test_an_untouched_student_notebook_runs_and_scores_zero(gradebook, dist, master):
    row = gradebook[f"untouched/{master.name}"]
    assert row["status"] == "graded", row["note"]
    assert all(_score(row, q.name) == 0 for q in autograded(master))
    # It ran top to bottom: any cell that raised is one of the student's answer cells.
    student = cells_of(dist / "student" / master.name)
    code = [c for c in student if c["cell_type"] == "code"]
    details = json.loads((gradebook["__out__"]["path"] / "gradebook.json").read_text())
    outcome = next(d["outcome"] for d in details if d["submission"] == f"untouched/{master.name}")
    for error in outcome["errors"]:
        cell = code[error["code_cell"] - 1]
        assert "otter_answer_cell" in cell["metadata"].get("tags", []), f"{master.name}: {error}"


@pytest.mark.parametrize("master", MASTERS, ids=lambda p: p.stem)
def test_one_pasted_solution_scores_exactly_its_points(gradebook, master):
    row = gradebook[f"pasted/{master.name}"]
    first, *others = autograded(master)
    assert row["status"] == "graded", row["note"]
    assert _score(row, first.name) == first.points
    assert all(_score(row, q.name) == 0 for q in others)
    assert float(row["autograded"]) == first.points


def test_what_students_really_hand_in_gets_a_clear_row(gradebook):
    full = sum(q.points for q in autograded(REPO / "notebooks" / SHEET1))
    broken = gradebook[f"broken/{SHEET1}"]
    assert broken["status"] == "graded" and "cells raised errors" in broken["note"] and "SyntaxError" in broken["note"]
    deleted = gradebook[f"deleted/{SHEET1}"]
    assert float(deleted["autograded"]) == full and "no grader.check cell for q2b" in deleted["note"]
    moved = gradebook[f"moved/{SHEET1}"]
    assert float(moved["autograded"]) == full, moved["note"]
    assert "appears 2 times" in moved["note"]
    endless = gradebook[f"endless/{SHEET1}"]
    assert endless["status"] == "graded" and "the time budget of a cell" in endless["note"], endless["note"]
    assert float(endless["autograded"]) == full  # the rest of the notebook still ran
    dead = gradebook[f"dead/{SHEET1}"]
    assert dead["status"] == "error" and "kernel died" in dead["note"] and dead["autograded"] == ""
    assert gradebook["zips/verified.zip"]["status"] == "graded"
    assert float(gradebook["zips/verified.zip"]["autograded"]) == full
    tampered = gradebook["zips/tampered.zip"]
    assert tampered["status"] == "tampered" and "changed" in tampered["note"]
    other = gradebook["notes.txt"]
    assert other["status"] == "not gradable" and "not a notebook" in other["note"] and other["autograded"] == ""


def test_feedback_names_each_failed_test(gradebook):
    folder = gradebook["__out__"]["path"] / "feedback"
    untouched = next(p for p in folder.iterdir() if p.name.startswith(f"untouched_{SHEET1}"))
    text = untouched.read_text()
    assert "test_product (public test) failed: NotImplementedError: 2b: Var.__mul__" in text
    assert "(hidden test) failed" in text
    assert len(list(folder.iterdir())) == len(gradebook) - 1  # one file per submission, none overwritten


def test_a_second_run_grades_nothing_again(gradebook, dist, tmp_path):
    out = gradebook["__out__"]["path"]
    subs = tmp_path / "again"
    (subs / "untouched").mkdir(parents=True)
    (subs / "untouched" / SHEET1).write_text(json.dumps(json.loads((dist / "student" / SHEET1).read_text())))
    lines = []
    grade(subs, dist / "autograder", out, jobs=1, timeout=400, cell_timeout=45, progress=lines.append)
    assert any(line.startswith("1 submissions: 0 to grade, 1 known") for line in lines), lines


def test_a_student_sheet_exports_with_a_page_per_question(dist, tmp_path):
    """The kit's own export of a student notebook: cover, preflight, bundle; each question findable on its pages."""
    import os
    import subprocess
    import sys

    from helpers.export.coverage import pdf_text

    env = {**os.environ, "KIT_CACHE": str(tmp_path / "cache"), "KIT_PROFILE": "smoke"}
    student = dist / "student"
    proc = subprocess.run([sys.executable, "-m", "helpers.export", "submit", SHEET1, "--profile", "smoke",
                           "--out", str(tmp_path / "pdf"), "--bundles", str(tmp_path / "zips"), "--pagebreaks",
                           "--strict"], cwd=student, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    with zipfile.ZipFile(tmp_path / "zips" / SHEET1.replace(".ipynb", ".zip")) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    questions = mf.questions(cells_of(REPO / "notebooks" / SHEET1))
    assert list(manifest["questions"]) == [q.name for q in questions]
    from pypdf import PdfReader

    reader = PdfReader(tmp_path / "pdf" / SHEET1.replace(".ipynb", ".pdf"))
    import unicodedata

    for q in questions:  # NFKC: the PDF's text holds ligatures (ﬂ for fl)
        first = manifest["questions"][q.name][0]
        assert f"Question {q.name}" in unicodedata.normalize("NFKC", reader.pages[first - 1].extract_text())
    text = pdf_text(tmp_path / "pdf" / SHEET1.replace(".ipynb", ".pdf"))
    for q in questions:
        if q.heading:  # a task's heading is findable by its number
            assert q.heading.split(" — ")[0] in text
    assert text.count("Type your answer here") == sum(q.manual for q in questions)

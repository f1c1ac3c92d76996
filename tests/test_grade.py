"""Reading what students hand in, without running anything: every file gets a clear verdict."""
import io
import json
import zipfile
from pathlib import Path

import pytest

from helpers.assignments import grade as g

QUESTIONS = ({"name": "q1", "points": 2.0, "manual": False}, {"name": "q2", "points": 1.0, "manual": True})


@pytest.fixture
def sheets(tmp_path):
    zip_path = tmp_path / "01_demo.zip"
    zip_path.write_bytes(b"not read here")
    return {"demo": g.Sheet("demo", "01_demo.ipynb", zip_path, QUESTIONS)}


def notebook(cells, name="demo"):
    return {"cells": cells, "metadata": {"otter": {"assignment_name": name}}, "nbformat": 4, "nbformat_minor": 5}


def code(src):
    return {"cell_type": "code", "source": src, "metadata": {}, "outputs": [], "execution_count": None}


def test_every_file_is_found_but_hidden_and_macos_debris(tmp_path):
    for name in ("a/x.ipynb", "b/.ipynb_checkpoints/x.ipynb", "__MACOSX/x.ipynb", "notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    assert [p.relative_to(tmp_path).as_posix() for p in g.discover(tmp_path)] == ["a/x.ipynb", "notes.txt"]
    with pytest.raises(NotADirectoryError, match="SUBMISSIONS"):
        g.discover(tmp_path / "missing")


def test_a_notebook_is_routed_by_its_otter_name_and_its_check_cells_are_noted(tmp_path, sheets):
    path = tmp_path / "alice.ipynb"
    path.write_text(json.dumps(notebook([code('grader.check("q1")'), code('grader.check("q1")')])))
    sub = g.read_submission(path, tmp_path, sheets)
    assert sub.problem is None and sub.sheet.assignment == "demo"
    assert sub.notes == ["grader.check cell for q1 appears 2 times (graded once, at the end)"]


def test_a_notebook_without_otter_metadata_is_routed_by_its_file_name(tmp_path, sheets):
    path = tmp_path / "bob_01_demo.ipynb"
    path.write_text(json.dumps({"cells": [], "metadata": [], "nbformat": 4}))  # metadata of the wrong type, even
    sub = g.read_submission(path, tmp_path, sheets)
    assert sub.sheet.assignment == "demo" and "graded as demo by its file or folder name" in sub.notes[0]
    assert json.loads(sub.notebook)["metadata"]["otter"]["assignment_name"] == "demo"
    assert "no grader.check cell for q1" in sub.notes[-1]


def test_a_folder_per_sheet_names_the_sheet_of_the_notebooks_in_it(tmp_path, sheets):
    (tmp_path / "01_demo").mkdir()
    path = tmp_path / "01_demo" / "alice.ipynb"
    path.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4}))
    assert g.read_submission(path, tmp_path, sheets).sheet.assignment == "demo"
    (tmp_path / "misc").mkdir()
    (tmp_path / "misc" / "alice.ipynb").write_bytes(path.read_bytes())
    sub = g.read_submission(tmp_path / "misc" / "alice.ipynb", tmp_path, sheets)
    assert sub.sheet is None and "cannot tell which sheet" in sub.problem


@pytest.mark.parametrize("name, content, problem", [
    ("essay.docx", b"PK...", "not a notebook"),
    ("broken.ipynb", b"{not json", "not a valid notebook"),
    ("cells.ipynb", b'{"cells": "nope"}', "not a valid notebook"),
    ("other.ipynb", json.dumps(notebook([], name="sheet9")).encode(), "cannot tell which sheet"),
    ("archive.zip", b"not a zip", "not a readable zip"),
])
def test_what_cannot_be_graded_says_why(tmp_path, sheets, name, content, problem):
    (tmp_path / name).write_bytes(content)
    sub = g.read_submission(tmp_path / name, tmp_path, sheets)
    assert sub.notebook is None and problem in sub.problem


def test_zips_a_plain_one_a_crowded_one_and_a_bomb(tmp_path, sheets, monkeypatch):
    def zipped(files):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in files.items():
                zf.writestr(name, data)
        return buffer.getvalue()

    nb = json.dumps(notebook([])).encode()
    (tmp_path / "plain.zip").write_bytes(zipped({"sub/01_demo.ipynb": nb}))
    sub = g.read_submission(tmp_path / "plain.zip", tmp_path, sheets)
    assert sub.sheet is not None and "not a kit bundle" in sub.notes[0]
    (tmp_path / "two.zip").write_bytes(zipped({"a.ipynb": nb, "b.ipynb": nb}))
    assert "exactly one notebook" in g.read_submission(tmp_path / "two.zip", tmp_path, sheets).problem
    (tmp_path / "bomb.zip").write_bytes(zipped({"a.ipynb": b"0" * 5_000_000}))
    monkeypatch.setattr(g, "MAX_BYTES", 1_000_000)
    assert "expands to 5 MB" in g.read_submission(tmp_path / "bomb.zip", tmp_path, sheets).problem


def test_rows_never_give_a_silent_zero(sheets):
    sub = g.Submission("alice.ipynb", b"{}", sheets["demo"])
    timeout = g._row(sub, {"status": g.TIMEOUT, "note": "did not finish within 9 s"}, list(QUESTIONS))
    assert timeout["q1"] == "" and timeout["autograded"] == "" and timeout["q2"] == "manual"
    half = g._row(sub, {"status": g.GRADED, "questions": {}}, list(QUESTIONS))
    assert half["q1"] == "" and "q1 was not graded" in half["note"]


def test_feedback_files_never_overwrite_each_other():
    names = {g._safe_name(s) for s in ("a/b.ipynb", "a_b.ipynb", "a b.ipynb", "a/b.ipynb ")}
    assert len(names) == 4


def _graded_folder(tmp_path: Path) -> tuple[Path, Path]:
    """Autograders of the demo sheet (a grading file and a kit beside them) and three submissions of it."""
    auto = tmp_path / "autograder"
    auto.mkdir()
    (auto / "01_demo.zip").write_bytes(b"zip")
    (auto / "01_demo.grading.json").write_text(json.dumps({"skip": [], "probes": [], "expected": {"questions": {}}}))
    (auto / "kit.zip").write_bytes(b"kit")
    (auto / "01_demo.json").write_text(json.dumps({"assignment": "demo", "notebook": "01_demo.ipynb", "zip": "01_demo.zip",
                                                   "grading": "01_demo.grading.json", "questions": list(QUESTIONS)}))
    subs = tmp_path / "subs"
    subs.mkdir()
    for who in ("alice", "bob", "carol"):
        (subs / f"{who}.ipynb").write_text(json.dumps(notebook([code(f"# {who}")])))
    return auto, subs


def test_a_failure_while_grading_one_submission_is_that_row_alone(tmp_path):
    """An exception in the kit's own grading code for one submission: its row says so, the others are as before."""
    auto, subs = _graded_folder(tmp_path)

    def grader(notebook_bytes, name, grading, kit, **settings):
        if b"bob" in notebook_bytes:
            raise OSError("disk full while unpacking the kit")
        return {"status": g.GRADED, "questions": {"q1": {"score": 2.0, "possible": 2.0, "tests": []}}, "errors": []}

    clean = g.grade(subs, auto, tmp_path / "clean", runner=g.local_runner(2, grader=lambda *a, **k: grader(
        a[0].replace(b"bob", b"bo_"), *a[1:], **k)), progress=None)
    faulty = g.grade(subs, auto, tmp_path / "faulty", runner=g.local_runner(2, grader=grader), progress=None)
    import csv

    before = {r["submission"]: r for r in csv.DictReader(clean.open())}
    after = {r["submission"]: r for r in csv.DictReader(faulty.open())}
    assert after["bob.ipynb"]["status"] == g.ERROR and "disk full" in after["bob.ipynb"]["note"]
    assert after["bob.ipynb"]["autograded"] == ""
    assert before["alice.ipynb"] == after["alice.ipynb"] and before["carol.ipynb"] == after["carol.ipynb"]
    assert after["alice.ipynb"]["q1"] == "2"


def test_an_old_autograder_folder_asks_for_make_assign(tmp_path, sheets):
    auto = tmp_path / "autograder"
    auto.mkdir()
    (auto / "01_demo.json").write_text(json.dumps({"assignment": "demo", "notebook": "01_demo.ipynb", "zip": "x.zip",
                                                   "questions": list(QUESTIONS)}))
    (tmp_path / "subs").mkdir()
    with pytest.raises(FileNotFoundError, match="make assign"):
        g.grade(tmp_path / "subs", auto, tmp_path / "out", progress=None)

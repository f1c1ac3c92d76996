"""Roster matching (file name, else STUDENT_ID in the setup cell) and the Canvas and Moodle import CSVs."""
from __future__ import annotations

import copy
import io
import json

import pandas as pd
import pytest

from helpers.assignments import classgen, lms, roster
from helpers.assignments.answers import STUDENT_ID_LINE, student_id

from _classes import ROOT, generated, master_cells, sheet1, sheet1_dist

EXTRA = ["s2000001", "s2000002", "s2000003"]  # on the roster, handed in nothing


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """10 students of sheet 1: 3 named only inside the notebook, 2 submissions of no one, 1 student twice."""
    tmp = tmp_path_factory.mktemp("roster")
    klass = copy.deepcopy(generated(10, seed=3))
    files = list(klass.notebooks)
    notebooks = {}
    for k, name in enumerate(files):
        # three students' files carry no id: only their notebook's STUDENT_ID says who they are
        notebooks[f"upload_{k}.ipynb" if k < 3 else name] = klass.notebooks[name]
    notebooks["anonymous.ipynb"] = classgen.with_student_id(klass.notebooks[files[4]], "")
    notebooks["late/stranger.ipynb"] = classgen.with_student_id(klass.notebooks[files[5]], "s9999999")
    notebooks[f"resubmitted/{klass.ids[files[6]]}_v2.ipynb"] = klass.notebooks[files[6]]  # collected last
    klass.notebooks = notebooks
    grades = tmp / "grades"
    classgen.write_graded(klass, sheet1(), master_cells(), tmp / "submissions", grades)
    ids = [klass.ids[f] for f in files]
    people = pd.DataFrame({"Student ID": ids + EXTRA, "Name": [f"Student {i}" for i in ids + EXTRA],
                           "Email": [f"{i}@uni.example" for i in ids + EXTRA],
                           "Section": ["AB"[i % 2] for i in range(len(ids) + len(EXTRA))]})
    people.to_csv(tmp / "roster.csv", index=False)
    path, found = roster.write(grades, tmp / "roster.csv")
    return grades, found, ids, files


def test_the_roster_report_is_exact(graded):
    grades, found, ids, files = graded
    assert sorted(m["student"] for m in found["missing"]) == EXTRA
    assert {m["sheet"] for m in found["missing"]} == {"sheet1"}
    unknown = {u["submission"]: u["why"] for u in found["unknown"]}
    assert set(unknown) == {"anonymous.ipynb", "late/stranger.ipynb"}
    assert "no STUDENT_ID" in unknown["anonymous.ipynb"] and "'s9999999'" in unknown["late/stranger.ipynb"]
    assert found["several"] == [{"sheet": "sheet1", "student": ids[6], "counted": f"resubmitted/{ids[6]}_v2.ipynb",
                                 "ignored": [files[6]]}]
    how = {r["submission"]: r["how"] for r in found["rows"]}
    assert [how[f"upload_{k}.ipynb"] for k in range(3)] == ["notebook"] * 3
    assert how[files[3]] == "file name"
    assert found["matched"] == 11 and found["students"] == 13


def test_the_report_shows_the_roster(graded):
    from helpers.assignments import analysis, report

    grades, *_ = graded
    page = report.render(analysis.load(grades, sheet1_dist() / "autograder"))
    assert "Students with no submission (3)" in page and "Submissions matching no student (2)" in page
    assert "Students with several submissions (1)" in page and "s2000002" in page


def _expected(grades, found) -> dict[str, float]:
    book = pd.read_csv(grades / "gradebook.csv").set_index("submission")
    return {r["student"]: float(book.loc[r["submission"], "autograded"]) for r in found["rows"] if r["counts"]}


def test_canvas_csv_has_the_documented_columns_and_every_grade(graded):
    grades, found, ids, _ = graded
    written, = lms.export(grades, sheet1_dist() / "autograder", "canvas", lms.parse_ids(["sheet1=4242"]))
    table = pd.read_csv(written, dtype={"SIS User ID": str, "ID": str})
    assert list(table.columns) == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "sheet1 (4242)"]
    assert list(table["SIS User ID"]) == ids + EXTRA
    got = dict(zip(table["SIS User ID"], table["sheet1 (4242)"]))
    expected = _expected(grades, found)
    assert len(expected) == 10
    for sid, grade in expected.items():
        assert got[sid] == pytest.approx(grade, abs=1e-3), sid
    assert all(pd.isna(got[s]) for s in EXTRA)  # no submission: the cell stays empty
    again = pd.read_csv(io.StringIO(table.to_csv(index=False)), dtype={"SIS User ID": str, "ID": str})
    pd.testing.assert_frame_equal(table, again)


def test_moodle_csv_has_the_documented_columns_and_every_grade(graded):
    grades, found, ids, _ = graded
    written, = lms.export(grades, sheet1_dist() / "autograder", "moodle")
    assert written.name == "moodle-sheet1.csv"
    table = pd.read_csv(written, dtype={"idnumber": str})
    assert list(table.columns) == ["email", "idnumber", "grade", "feedback"]
    assert list(table["email"]) == [f"{i}@uni.example" for i in ids + EXTRA]
    got = dict(zip(table["idnumber"], table["grade"]))
    for sid, grade in _expected(grades, found).items():
        assert got[sid] == pytest.approx(grade, abs=1e-3)
    feedback = dict(zip(table["idnumber"], table["feedback"]))
    assert feedback[EXTRA[0]] == "no submission" and "not marked yet: q1j" in feedback[ids[0]]
    pd.testing.assert_frame_equal(table, pd.read_csv(io.StringIO(table.to_csv(index=False)), dtype={"idnumber": str}))


def test_written_marks_count_in_the_exported_grade(graded, tmp_path):
    import shutil

    grades, found, ids, _ = graded
    copy_ = tmp_path / "grades"
    shutil.copytree(grades, copy_)
    book = pd.read_csv(copy_ / "gradebook.csv", dtype=str, keep_default_na=False)
    counted = next(r["submission"] for r in found["rows"] if r["student"] == ids[3] and r["counts"])
    book.loc[book["submission"] == counted, "q1j"] = "2.5"
    book.to_csv(copy_ / "gradebook.csv", index=False)
    written, = lms.export(copy_, sheet1_dist() / "autograder", "moodle")
    table = pd.read_csv(written, dtype={"idnumber": str}).set_index("idnumber")
    assert table.loc[ids[3], "grade"] == pytest.approx(_expected(grades, found)[ids[3]] + 2.5, abs=1e-3)


def test_a_roster_without_an_id_column_or_with_an_id_twice_is_refused(tmp_path):
    (tmp_path / "a.csv").write_text("name,email\nAda,ada@x\n")
    with pytest.raises(ValueError, match="no id column"):
        roster.read_roster(tmp_path / "a.csv")
    (tmp_path / "b.csv").write_text("student id,name,email\ns1,Ada,a@x\nS1,Bob,b@x\n")
    with pytest.raises(ValueError, match="listed twice: S1"):
        roster.read_roster(tmp_path / "b.csv")
    with pytest.raises(ValueError, match="sheet1=1234"):
        lms.parse_ids(["sheet1"])


def test_every_master_asks_for_the_student_id_in_its_setup_cell():
    for master in sorted((ROOT / "notebooks").glob("0*.ipynb")):
        cells = json.loads(master.read_text(encoding="utf-8"))["cells"]
        setup = "".join(next(c for c in cells if c["cell_type"] == "code")["source"])
        assert "cell first" in setup.splitlines()[0].lower() and STUDENT_ID_LINE.search(setup), master.name
    student = json.loads((sheet1_dist() / "student" / "01_backprop_autodiff.ipynb").read_text())
    assert student_id(student) is None  # shipped empty
    assert student_id(classgen.with_student_id(student, "s42")) == "s42"


def test_a_file_that_is_no_notebook_but_names_a_student_is_reported_as_theirs(graded, tmp_path):
    import shutil

    grades, found, ids, _ = graded
    copy_ = tmp_path / "grades"
    shutil.copytree(grades, copy_)
    details = json.loads((copy_ / "gradebook.json").read_text())
    details.append({"submission": f"{EXTRA[1]}_essay.pdf", "row": {"sheet": "", "status": "not gradable",
                    "note": "not a notebook: it is neither a .ipynb nor a submission .zip"},
                    "outcome": {"status": "not gradable"}, "notebook": None, "collected": 0.0, "sha256": None})
    (copy_ / "gradebook.json").write_text(json.dumps(details))
    again = roster.match(copy_, roster.read_roster(grades.parent / "roster.csv"))
    assert again["unreadable"] == [{"submission": f"{EXTRA[1]}_essay.pdf", "student": EXTRA[1],
                                    "why": "not a notebook: it is neither a .ipynb nor a submission .zip"}]
    assert EXTRA[1] in [m["student"] for m in again["missing"]]  # still nothing graded of theirs


def test_the_cli_says_what_is_missing_instead_of_a_traceback(tmp_path, capsys):
    from helpers.assignments.cli import main

    assert main(["report", "--grades", str(tmp_path), "--autograders", str(tmp_path)]) == 1
    assert "run `make grade SUBMISSIONS=<folder>` first" in capsys.readouterr().err
    assert main(["export", "canvas", "--grades", str(tmp_path), "--autograders", str(sheet1_dist() / "autograder")]) == 1
    assert "ROSTER=<roster.csv>" in capsys.readouterr().err
    assert main(["roster", str(tmp_path / "none.csv"), "--grades", str(tmp_path)]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_the_similarity_page_names_each_submission_s_student(graded):
    from helpers.assignments import similarity

    grades, found, ids, _ = graded
    page = similarity.write(grades, sheet1_dist() / "autograder", sheet1_dist() / "student", ROOT / "notebooks")
    text = page.read_text()
    assert f"({ids[3]}, Student {ids[3]})" in text

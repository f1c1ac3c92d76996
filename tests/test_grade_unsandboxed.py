"""Where no sandbox can be had, make grade says so, runs each notebook as a plain process, and still judges outside."""
from __future__ import annotations

import csv
import json

import pytest
from _classes import MASTER, sheet1_dist

from helpers.assignments import sandbox
from helpers.assignments.grade import grade
from helpers.assignments.samples import pasted

pytestmark = pytest.mark.slow


def test_without_a_sandbox_grading_says_so_and_the_verdict_still_holds(tmp_path, monkeypatch):
    dist = sheet1_dist()
    why = "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    monkeypatch.setattr(sandbox, "unavailable", lambda: why)
    student = json.loads((dist / "student" / MASTER.name).read_text())
    forged = json.loads(json.dumps(student))
    forged["cells"].append({"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source":
                            "import helpers.exercises as ex\nex.expect_close = lambda *a, **k: None\n"
                            "ex.expect_equal = lambda *a, **k: None"})
    subs = tmp_path / "subs" / MASTER.stem
    subs.mkdir(parents=True)
    (subs / "q1c.ipynb").write_text(json.dumps(pasted(student, json.loads(MASTER.read_text())["cells"], "q1c")))
    (subs / "forged.ipynb").write_text(json.dumps(forged))
    lines: list[str] = []
    book = grade(subs.parent, dist / "autograder", tmp_path / "grades", jobs=2, timeout=300, cell_timeout=60,
                 progress=lines.append)
    assert lines[0].startswith(f"No sandbox: {why}.")
    rows = {r["submission"].split("/")[-1]: r for r in csv.DictReader(book.open())}
    assert all(r["sandbox"] == f"none: {why}" for r in rows.values())
    assert rows["q1c.ipynb"]["q1c"] == "2" and rows["q1c.ipynb"]["autograded"] == "2"
    assert rows["forged.ipynb"]["autograded"] == "0", rows["forged.ipynb"]

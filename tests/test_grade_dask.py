"""make grade on a Dask cluster: a real LocalCluster (worker processes), a real toy otter assignment, a dying worker."""
from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from helpers.assignments.assign import assign_one
from helpers.assignments.grade import ERROR, GRADED, Sheet, Submission, dask_runner, grade
from helpers.cluster import ClusterError

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


def _cell(kind: str, source: str) -> dict:
    cell = {"cell_type": kind, "metadata": {}, "source": source}
    if kind == "code":
        cell.update(outputs=[], execution_count=None)
    return cell


def _question(name: str, solution: str, prompt: str, public: str, hidden: str) -> list[dict]:
    """One autograded question of one point in the kit's master format (otter-grader's)."""
    return [_cell("raw", f"# BEGIN QUESTION\nname: {name}\npoints: 1"), _cell("markdown", f"Write `{name}`."),
            _cell("raw", "# BEGIN SOLUTION"),
            _cell("code", f"{solution}\n    # END SOLUTION\n    \"\"\" # BEGIN PROMPT\n    {prompt}\n    \"\"\" # END PROMPT"),
            _cell("raw", "# END SOLUTION"), _cell("raw", "# BEGIN TESTS"), _cell("code", public),
            _cell("code", f"# HIDDEN\n{hidden}"), _cell("raw", "# END TESTS"), _cell("raw", "# END QUESTION")]


def toy_master(folder: Path) -> Path:
    """A two-question master notebook beside the course's shared otter settings."""
    cells = [_cell("raw", "# ASSIGNMENT CONFIG\nname: toy\nconfig_file: assignment.yml"),
             _cell("code", 'import otter\ngrader = otter.Notebook("toy.ipynb")'),
             *_question("qtoy_add", "def add(a, b):\n    # BEGIN SOLUTION NO PROMPT\n    return a + b",
                        'raise NotImplementedError("write add")',
                        "def test_add(add):\n    from helpers.exercises import expect_equal\n    expect_equal(add(1, 2), 3, 'add(1, 2)', 'add')",
                        "def test_add_more(add):\n    from helpers.exercises import expect_equal\n    expect_equal(add(-1, 1), 0, 'add(-1, 1)', 'add')"),
             *_question("qtoy_mul", "def mul(a, b):\n    # BEGIN SOLUTION NO PROMPT\n    return a * b",
                        'raise NotImplementedError("write mul")',
                        "def test_mul(mul):\n    from helpers.exercises import expect_equal\n    expect_equal(mul(2, 3), 6, 'mul(2, 3)', 'mul')",
                        "def test_mul_more(mul):\n    from helpers.exercises import expect_equal\n    expect_equal(mul(-1, 4), -4, 'mul(-1, 4)', 'mul')")]
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                                       "language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "notebooks" / "assignment.yml", folder / "assignment.yml")
    (folder / "toy.ipynb").write_text(json.dumps(nb))
    return folder / "toy.ipynb"


@pytest.fixture(scope="module")
def local_cluster():
    """Two worker processes of one thread each, as make cluster starts them.

    A worker holds one task at a time (worker-saturation 1.0, as make cluster sets it), so a task never waits
    on a worker that another task is about to kill; a task whose worker dies is retried once (Dask's default: 3).
    """
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 1,
                          "distributed.scheduler.worker-saturation": 1.0}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None)
    yield cluster
    cluster.close()


def fake_grader(notebook: bytes, notebook_name: str, grading: dict, kit: bytes, **settings) -> dict:
    """Grades instantly; a notebook saying 'die' kills its worker process, as a machine that fails would."""
    if notebook == b"die":
        os._exit(1)
    return {"status": GRADED, "questions": {}, "errors": [], "seen": [len(notebook), len(kit), settings]}


def test_a_dying_worker_costs_one_row_and_the_run_goes_on(local_cluster, tmp_path):
    from distributed import Client

    zip_path = tmp_path / "toy.zip"
    zip_path.write_bytes(b"autograder bytes")
    (tmp_path / "toy.grading.json").write_text("{}")
    (tmp_path / "kit.zip").write_bytes(b"kit bytes, sixteen")
    sheet = Sheet("toy", "toy.ipynb", zip_path, (), tmp_path / "toy.grading.json", tmp_path / "kit.zip")
    work = [(Submission("alive", notebook=b"12345", sheet=sheet), {"timeout": 5}),
            (Submission("dies", notebook=b"die", sheet=sheet), {"timeout": 5}),
            (Submission("also-alive", notebook=b"123", sheet=sheet), {"timeout": 5})]
    with Client(local_cluster, set_as_default=False) as client:
        outcomes = {sub.id: outcome for sub, outcome in dask_runner(client, grader=fake_grader)(work)}
    assert outcomes["alive"]["seen"] == [5, 18, {"timeout": 5}], "bytes in, plain data out"
    assert outcomes["also-alive"]["status"] == GRADED
    assert outcomes["dies"]["status"] == ERROR and "KilledWorker" in outcomes["dies"]["note"]


def test_grade_runs_a_real_otter_assignment_on_the_cluster_named_by_kit_scheduler(local_cluster, tmp_path,
                                                                                   monkeypatch):
    master = toy_master(tmp_path / "masters")
    dist = tmp_path / "dist"
    assign_one(master, dist)
    subs = tmp_path / "submissions"
    (subs / "solved").mkdir(parents=True)
    shutil.copy2(master, subs / "solved" / "toy.ipynb")
    student = json.loads((dist / "student" / "toy.ipynb").read_text())
    (subs / "blank").mkdir()
    (subs / "blank" / "toy.ipynb").write_text(json.dumps(student))
    monkeypatch.setenv("KIT_SCHEDULER", local_cluster.scheduler_address)
    lines: list[str] = []
    book = grade(subs, dist / "autograder", tmp_path / "grades", timeout=300, cell_timeout=60, progress=lines.append)
    where = next(line for line in lines if "submissions:" in line)
    assert "on the Dask cluster at tcp://127.0.0.1" in where and "2 workers" in where
    rows = {row["submission"]: row for row in csv.DictReader(book.read_text().splitlines())}
    assert rows["solved/toy.ipynb"]["status"] == "graded", rows["solved/toy.ipynb"]["note"]
    assert rows["solved/toy.ipynb"]["autograded"] == "2" and rows["solved/toy.ipynb"]["possible"] == "2"
    assert rows["blank/toy.ipynb"]["status"] == "graded" and rows["blank/toy.ipynb"]["autograded"] == "0"
    # The results are kept as when grading locally: a second run grades nothing again.
    lines.clear()
    grade(subs, dist / "autograder", tmp_path / "grades", timeout=300, cell_timeout=60, progress=lines.append)
    assert any(line.startswith("2 submissions: 0 to grade, 2 known") for line in lines), lines


def test_an_unreachable_kit_scheduler_is_a_clear_error(tmp_path, monkeypatch):
    import socket

    autograders = tmp_path / "autograder"
    autograders.mkdir()
    (autograders / "toy.zip").write_bytes(b"zip")
    (autograders / "toy.grading.json").write_text("{}")
    (autograders / "kit.zip").write_bytes(b"kit")
    (autograders / "toy.json").write_text(json.dumps({"assignment": "toy", "notebook": "toy.ipynb", "zip": "toy.zip",
                                                      "grading": "toy.grading.json", "questions": []}))
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "toy.ipynb").write_text(json.dumps({"cells": [], "metadata": {}}))
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("KIT_SCHEDULER", f"tcp://127.0.0.1:{port}")
    with pytest.raises(ClusterError, match=rf"127.0.0.1:{port} \(from KIT_SCHEDULER\).*make cluster.*unset KIT_SCHEDULER"):
        grade(tmp_path / "subs", autograders, tmp_path / "out", progress=None)

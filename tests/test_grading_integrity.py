"""Grades no submission can forge: hostile submissions of sheet 1, graded in one run beside honest ones.

Real otter-grader (``make assign``), real bubblewrap, real kernels. Each hostile submission is the untouched
student notebook with one cell added (or one answer replaced); it must score 0 on the questions it did not
solve, its row names the limit it hit where it hit one, and the honest submissions graded in the same run
keep their exact scores. After grading, no process a submission started is alive.
"""
from __future__ import annotations

import csv
import json
import os
import textwrap
from pathlib import Path

import pytest

from _classes import sheet1_dist
from helpers.assignments import sandbox
from helpers.assignments.grade import grade
from helpers.assignments.samples import pasted

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
MASTER = REPO / "notebooks" / "01_backprop_autodiff.ipynb"
SHEET = MASTER.stem
MARKER = "kit-hostile-detached-7f3a"
CODE_POINTS = {"q1c": 2.0, "q1j_delta": 3.0, "q2b": 6.0, "q2l": 3.0}

if sandbox.unavailable():
    pytest.skip(f"no sandbox here: {sandbox.unavailable()}", allow_module_level=True)


def _cell(source: str) -> dict:
    return {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": source}


def hostile_cells(grades: Path, dist: Path, classmates: Path) -> dict[str, str]:
    """One added cell per kind of attack. Paths of this machine are written in, as a student who knew them would."""
    return {
        "patch-runner": """
            import json, otter.execute, helpers.assignments.probes as probes
            otter.execute.Checker.check = classmethod(lambda cls, *a, **k: None)
            def forged(tests, namespace, out):
                with open(out, "w") as f:
                    json.dump({t["id"]: {"observations": [{"got": 1.0}] * 8, "error": None} for t in tests}, f)
            probes.run_probes = forged
        """,
        "patch-assertions": """
            import helpers.exercises as ex
            ex.close_mismatch = lambda *a, **k: None
            ex.equal_mismatch = lambda *a, **k: None
            ex.expect_close = lambda got, want, *a, **k: ex._observer and ex._observer("close", want, want, *a, **k)
            ex.expect_equal = lambda got, want, *a, **k: ex._observer and ex._observer("equal", want, want, *a, **k)
        """,
        "fake-numpy-torch": """
            class Fake:
                def __getattr__(self, name): return Fake()
                def __call__(self, *a, **k): return Fake()
                def __eq__(self, other): return True
                def __float__(self): return 0.0
            np = Fake()
            torch = Fake()
        """,
        "detached-process": f"""
            import subprocess, sys
            loop = ("import json, os, time\\n"
                    "while True:\\n"
                    "    for name in ('probes.json', 'run.json'):\\n"
                    "        open(name, 'w').write('{{}}')\\n"
                    "    time.sleep(0.05)  # {MARKER}")
            subprocess.Popen([sys.executable, "-c", loop], start_new_session=True)
        """,
        "memory": """
            import numpy as np
            hog = np.ones(int(1e10))
        """,
        "fork-bomb": """
            import os, time
            children = []
            for _ in range(5000):
                pid = os.fork()
                if pid == 0:
                    time.sleep(120)
                    os._exit(0)
                children.append(pid)
        """,
        "print-500mb": """
            line = "x" * 1_000_000
            for _ in range(500):
                print(line)
        """,
        "write-elsewhere": f"""
            written = []
            for target in [{str(classmates / "honest-q1c.ipynb")!r}, {str(grades / "results" / "forged.json")!r},
                           {str(grades / "gradebook.csv")!r}, "/kit/helpers/exercises.py"]:
                try:
                    with open(target, "w") as handle:
                        handle.write("forged")
                    written.append(target)
                except OSError:
                    pass
            raise RuntimeError(f"written={{len(written)}}")
        """,
        "read-autograder": f"""
            import glob, os
            found = glob.glob({str(dist / "autograder") + "/*"!r})
            for top, dirs, files in os.walk("/"):
                dirs[:] = [d for d in dirs if os.path.join(top, d) not in ("/proc", "/sys", "/dev")]
                found += [os.path.join(top, f) for f in files if f.endswith((".grading.json", "kit.zip"))]
            raise RuntimeError(f"autograder_files={{len(found)}}")
        """,
        "find-classmates": f"""
            import glob, os
            mine = os.path.realpath("{SHEET}.ipynb")
            seen = {{os.path.realpath(p) for p in glob.glob({str(classmates) + "/*.ipynb"!r})}}
            for top, dirs, files in os.walk("/"):
                dirs[:] = [d for d in dirs if os.path.join(top, d) not in ("/proc", "/sys", "/dev")]
                seen |= {{os.path.realpath(os.path.join(top, f)) for f in files if f.endswith(".ipynb")}}
            raise RuntimeError(f"classmates={{len(seen - {{mine}})}}")
        """,
    }


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("integrity")
    dist, subs, grades = sheet1_dist(), root / "submissions" / SHEET, root / "grades"
    student = json.loads((dist / "student" / MASTER.name).read_text())
    master_cells = json.loads(MASTER.read_text())["cells"]
    subs.mkdir(parents=True)
    notebooks = {"honest-q2b": pasted(student, master_cells, "q2b"),
                 "honest-q1c": pasted(student, master_cells, "q1c"),
                 "untouched": student,
                 "solved": json.loads((dist / "autograder" / MASTER.name).read_text())}
    for name, source in hostile_cells(grades, dist, subs).items():
        nb = json.loads(json.dumps(student))
        nb["cells"].append(_cell(textwrap.dedent(source).strip()))
        notebooks[name] = nb
    kit_answer = json.loads(json.dumps(student))
    q2b = pasted(student, master_cells, "q2b")
    for cell, solved in zip(kit_answer["cells"], q2b["cells"]):
        if cell["source"] != solved["source"]:  # the q2b answer cell: the kit's Var instead of the student's
            cell["source"] = "from helpers.autodiff import Var"
    notebooks["import-from-kit"] = kit_answer
    for name, nb in notebooks.items():
        (subs / f"{name}.ipynb").write_text(json.dumps(nb))
    before = {p.name: p.read_bytes() for p in subs.iterdir()}
    book = grade(subs.parent, dist / "autograder", grades, jobs=2, timeout=600, cell_timeout=60, progress=None)
    rows = {Path(r["submission"]).stem: r for r in csv.DictReader(book.open())}
    return {"rows": rows, "before": before, "subs": subs, "grades": grades}


def _score(row: dict, question: str) -> float:
    return float(row[question])


def test_honest_submissions_keep_their_exact_scores(graded):
    rows = graded["rows"]
    assert {q: _score(rows["solved"], q) for q in CODE_POINTS} == CODE_POINTS
    assert _score(rows["honest-q2b"], "q2b") == 6.0 and float(rows["honest-q2b"]["autograded"]) == 6.0
    assert _score(rows["honest-q1c"], "q1c") == 2.0 and float(rows["honest-q1c"]["autograded"]) == 2.0
    assert float(rows["untouched"]["autograded"]) == 0.0
    assert all(r["sandbox"] == "bubblewrap" for r in rows.values())


@pytest.mark.parametrize("kind", ["patch-runner", "patch-assertions", "fake-numpy-torch", "detached-process",
                                  "memory", "fork-bomb", "print-500mb", "write-elsewhere", "read-autograder",
                                  "find-classmates", "import-from-kit"])
def test_a_hostile_submission_scores_zero(graded, kind):
    row = graded["rows"][kind]
    assert row["status"] in ("graded", "error", "timeout"), row
    assert all(row[q] in ("", "0") for q in CODE_POINTS), {q: row[q] for q in CODE_POINTS}
    assert row["autograded"] in ("", "0"), row


@pytest.mark.parametrize("kind, note", [("memory", "out of memory (limit 4 GB)"),
                                        ("fork-bomb", "too many processes (limit 256)"),
                                        ("print-500mb", "printed more than the output limit (20 MB)"),
                                        ("write-elsewhere", "written=0"),
                                        ("read-autograder", "autograder_files=0"),
                                        ("find-classmates", "classmates=0"),
                                        ("patch-runner", "changes the grading path"),
                                        ("patch-assertions", "changes the grading path")])
def test_the_row_says_what_happened(graded, kind, note):
    assert note in graded["rows"][kind]["note"], graded["rows"][kind]["note"]


def test_nothing_outside_a_submission_was_written(graded):
    subs, grades = graded["subs"], graded["grades"]
    assert {p.name: p.read_bytes() for p in subs.iterdir()} == graded["before"]
    assert not (grades / "results" / "forged.json").exists()
    assert "forged" not in (grades / "gradebook.csv").read_text()


def test_no_process_a_submission_started_is_alive(graded):
    alive = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if MARKER.encode() in (entry / "cmdline").read_bytes():
                    alive.append(entry.name)
            except OSError:
                continue
    assert not alive, f"processes of a graded submission still run: {alive}"
    assert os.getpid() > 0

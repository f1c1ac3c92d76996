"""Shared by the report, similarity and roster tests: sheet 1 assigned once per test session, and a generated class."""
from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MASTER = ROOT / "notebooks" / "01_backprop_autodiff.ipynb"
PLANTED, PLANTED_WRITTEN = "q2l", "q2l_discuss"


@functools.lru_cache(maxsize=1)
def sheet1_dist() -> Path:
    """``make assign`` of sheet 1 into a temporary folder, once per session (about 10 s)."""
    from helpers.assignments.assign import assign

    dist = Path(tempfile.mkdtemp(prefix="kit-test-dist-"))
    atexit.register(shutil.rmtree, dist, ignore_errors=True)
    assign([MASTER], dist, extras=False, progress=None)
    return dist


def student() -> dict:
    return json.loads((sheet1_dist() / "student" / MASTER.name).read_text(encoding="utf-8"))


def master_cells() -> list[dict]:
    return json.loads(MASTER.read_text(encoding="utf-8"))["cells"]


@functools.lru_cache(maxsize=4)
def generated(n: int = 40, seed: int = 0):
    """A generated class of sheet 1 (``helpers.assignments.classgen``): copies planted in q2l and q2l_discuss."""
    from helpers.assignments import classgen

    return classgen.generate(student(), master_cells(), n, seed=seed, planted=PLANTED,
                             planted_written=PLANTED_WRITTEN)


def sheet1():
    from helpers.assignments.grade import load_sheets

    return load_sheets(sheet1_dist() / "autograder")["sheet1"]

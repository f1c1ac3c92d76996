"""benchmarks/claims.py on a tiny generated sheet: one check holds in every seed, one depends on the seed."""
from __future__ import annotations

import json

import nbformat
import numpy as np
import pytest

from benchmarks import _results, claims
from helpers.config import REPO_ROOT

SEEDS = [0, 1, 2]
# numpy_rng(0) under KIT_SEED=s draws 0.637, 0.512, 0.262 for s = 0, 1, 2: "below 0.5" holds in seed 2 only
FAILED_IN = [s for s in SEEDS if not np.random.default_rng(s).random() < 0.5]


@pytest.fixture(scope="module")
def sheet(tmp_path_factory):
    """A two-check notebook: an invariant that always holds, a finding on a seeded draw."""
    folder = tmp_path_factory.mktemp("sheets")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r})\n"
        "from helpers.checks import check, invariant\n"
        "from helpers.config import numpy_rng\n"
        "import os\n"
        "invariant('one plus one is two', 1 + 1 == 2, cache=os.path.basename(os.environ['KIT_CACHE']))\n"
        "x = float(numpy_rng(0).random())\n"
        "check('the draw is below 0.5', x < 0.5, x=round(x, 3))")]
    kernel = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["kernelspec"] = kernel
    path = folder / "01_tiny.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def results(sheet, tmp_path_factory):
    """The tiny sheet run once per seed through the real execute machinery (one kernel per seed)."""
    return claims.run_seeds([sheet], SEEDS, "smoke", tmp_path_factory.mktemp("caches"))


def test_each_check_counts_the_seeds_it_held_in(results):
    rows = {r["claim"]: r for r in claims.tally(results, SEEDS)}
    assert set(rows) == {"one plus one is two", "the draw is below 0.5"}
    steady, drawn = rows["one plus one is two"], rows["the draw is below 0.5"]
    assert (steady["kind"], steady["held"], steady["seeds"]) == ("invariant", 3, 3)
    assert 0 < len(FAILED_IN) < len(SEEDS)   # the check really depends on the seed
    assert drawn["kind"] == "finding" and drawn["held"] == len(SEEDS) - len(FAILED_IN)
    assert drawn["failed_in"] == FAILED_IN
    # each seed drew its own number: the values show the spread
    assert len({v["x"] for v in drawn["values"].values()}) == 3


def test_each_seed_ran_with_its_own_fresh_cache_and_offset(results):
    records = results["01_tiny"]
    assert set(records) == set(SEEDS)
    assert [records[s].get("seed_offset", 0) for s in SEEDS] == SEEDS   # the record shows the offset (none at 0)
    assert [records[s]["checks"][0]["values"]["cache"] for s in SEEDS] == [f"seed-{s}" for s in SEEDS]


def test_the_table_and_json_name_the_cpu_and_the_shaky_claim(results, tmp_path, monkeypatch, sheet, capsys):
    monkeypatch.setattr(_results, "RESULTS", tmp_path / "RESULTS.md")
    # the command line, with the sheet runs replaced by the ones above (same records, no second kernel start)
    recorded = {seed: rec for seed, rec in results["01_tiny"].items()}
    order = iter(SEEDS)

    class Done:
        def __init__(self, record):
            self.metadata = {"kit": {"record": record}}

    rc = claims.main(["--seeds", "0", "1", "2", "--profile", "smoke", "--sheets", str(sheet),
                      "--json", str(tmp_path / "claims.json")], execute=lambda path, profile: Done(recorded[next(order)]))
    assert rc == 0
    text = (tmp_path / "RESULTS.md").read_text()
    assert "## Claims across seeds (smoke)" in text
    assert "| 01_tiny | 2 | 1 | 1 | 0 |" in text
    held, failed = len(SEEDS) - len(FAILED_IN), ", ".join(map(str, FAILED_IN))
    assert f"| 01_tiny | finding | the draw is below 0.5 | {held} of 3 | {failed} | – |" in text
    data = json.loads((tmp_path / "claims.json").read_text())
    cpu = recorded[0]["cpu"]
    assert cpu and any(cpu in c for c in data["cpu"]) and cpu in text
    assert [r["held"] for r in data["checks"]] == [3, held]


def test_a_sheet_that_fails_is_reported_and_its_checks_not_held(results):
    broken = {"01_tiny": {**results["01_tiny"], 2: {"error": "NotebookFailed: cell 1 raised"}}}
    rows = {r["claim"]: r for r in claims.tally(broken, SEEDS)}
    assert rows["one plus one is two"]["held"] == 2 and rows["one plus one is two"]["ran"] == 2
    assert claims.failures(broken) == ["01_tiny, KIT_SEED=2: NotebookFailed: cell 1 raised"]
    assert "did not finish" in claims.markdown(claims.tally(broken, SEEDS), SEEDS, "smoke", ["x"], claims.failures(broken))


def test_sheets_are_found_by_number_and_a_wrong_name_says_which_exist():
    assert [p.name for p in claims.find_sheets(["01"])] == ["01_backprop_autodiff.ipynb"]
    with pytest.raises(SystemExit, match="sheets: 01_backprop_autodiff"):
        claims.find_sheets(["9"])

"""Claim checks print ✓/✗ with their values and never raise; the reference table covers every row."""
import math

import numpy as np
import pytest

from helpers import runlog
from helpers.checks import CourseReference, check, load_reference


@pytest.fixture(autouse=True)
def fresh_log():
    runlog.reset()
    yield
    runlog.reset()


def test_check_prints_tick_and_values(capsys):
    assert check("batch norm beats plain", 0.9 - 0.4 >= 0.2, bn=0.9, plain=0.4) is True
    out = capsys.readouterr().out
    assert out.startswith("✓ batch norm beats plain") and "bn=0.9" in out and "plain=0.4" in out


def test_failed_and_broken_checks_print_cross_and_do_not_raise(capsys):
    assert check("never", False, x=math.nan) is False
    assert check("ambiguous array", np.array([True, False])) is False
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("✗ never") and "x=nan" in out[0]
    assert out[1].startswith("✗ ambiguous array")
    assert [c["ok"] for c in runlog.snapshot()["checks"]] == [False, False]


def test_rerun_cell_replaces_its_check():
    check("same claim", False)
    check("same claim", True)
    assert [c["ok"] for c in runlog.snapshot()["checks"]] == [True]


def test_reference_table_has_every_row_and_verdicts():
    ref = CourseReference("sheet1", profile="smoke")
    first = ref.rows[0]["key"]
    ref.record(first, "5, 3", reproduced=True)
    df = ref.frame()
    assert list(df.columns) == ["task", "quantity", "course reference", "this run", "profile", "verdict"]
    assert len(df) == len(ref.rows) and df.loc[0, "verdict"] == "reproduced"
    ref.table()
    assert runlog.snapshot()["reference"][0]["this run"] == "5, 3"


def test_reference_refuses_unknown_rows_and_unexplained_differences():
    ref = CourseReference("sheet1", profile="smoke")
    with pytest.raises(KeyError, match="not a row"):
        ref.record("no.such.row", 1, reproduced=True)
    with pytest.raises(ValueError, match="say why"):
        ref.record(ref.rows[0]["key"], 1, reproduced=False)


@pytest.mark.parametrize("sheet", ["sheet1", "sheet2", "sheet3", "sheet4"])
def test_every_sheet_has_a_sourced_reference_section(sheet):
    section = load_reference(sheet)
    assert section["source"] and section["rows"]
    for row in section["rows"]:
        assert {"key", "task", "quantity", "reference"} <= set(row)


def test_invariants_print_their_kind_and_are_listed_when_they_fail(capsys):
    from helpers.checks import failed_invariants, invariant

    assert invariant("gradient = autograd", True, diff=0.0) is True
    assert invariant("grid has 42 settings", False, settings=12) is False
    check("batch norm helps", False)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("✓ invariant: gradient = autograd") and out[1].startswith("✗ invariant: grid has 42")
    assert out[2].startswith("✗ batch norm helps")
    record = runlog.snapshot()
    assert [c["kind"] for c in record["checks"]] == ["invariant", "invariant", "finding"]
    # A ✗ finding is worth discussing; only the ✗ invariant fails the tests.
    assert failed_invariants(record) == ["grid has 42 settings  (settings=12)"]


def test_the_smoke_run_fails_on_a_failed_invariant(tmp_path, capsys):
    """What `make smoke` runs after the export: exit 1 naming the invariant, 0 when all hold."""
    import json

    from helpers.checks import main

    good = {"checks": [{"claim": "a finding", "ok": False, "values": {}, "kind": "finding"},
                       {"claim": "fact", "ok": True, "values": {}, "kind": "invariant"}]}
    (tmp_path / "01_sheet.run.json").write_text(json.dumps(good))
    assert main([str(tmp_path)]) == 0
    bad = {"checks": [{"claim": "delta rule = autograd", "ok": False, "values": {"max_diff": "0.3"},
                       "kind": "invariant"}]}
    (tmp_path / "02_sheet.run.json").write_text(json.dumps(bad))
    assert main([str(tmp_path)]) == 1
    assert "02_sheet: invariant does not hold: delta rule = autograd  (max_diff=0.3)" in capsys.readouterr().err
    assert main([str(tmp_path / "empty")]) == 2


def test_a_data_row_on_stand_in_data_is_not_comparable_and_an_exact_row_still_is_judged():
    ref = CourseReference("sheet2", profile="smoke")
    assert ref.stand_in
    ref.record("2.4b.test_acc", "88.50 %", reproduced=True)
    ref.record("1.4b.m", "0.65", reproduced=True)  # an exact computation: no data involved
    verdicts = dict(zip(ref.frame()["quantity"], ref.frame()["verdict"]))
    by_key = {r["key"]: r["quantity"] for r in ref.rows}
    assert verdicts[by_key["2.4b.test_acc"]] == "not comparable: generated stand-in data"
    assert verdicts[by_key["1.4b.m"]] == "reproduced"
    assert not CourseReference("sheet2", profile="quick").stand_in
    assert not CourseReference("sheet1", profile="smoke").stand_in  # sheet 1's data are generated in every profile

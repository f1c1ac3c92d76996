"""The verdict outside the student's process: probes that only report, and judging their plain data."""
import json

import numpy as np
import torch

from helpers.assignments import probes, tamper, verdict


def _master(*observations):
    return {"id": "q/test_x", "name": "test_x", "hidden": True, "observations": list(observations)}


CLOSE = {"kind": "close", "got": {"array": [1.0, 2.0], "shape": [2], "dtype": "float64"}, "what": "the gradients",
         "where": "backprop", "rtol": 1e-6, "atol": 1e-9}
EQUAL = {"kind": "equal", "got": True, "what": "whether the loss fell", "where": "gradient_step"}


def test_a_probe_keeps_the_code_and_reports_only_what_the_student_got():
    source = '''def test_x(Var, np):
    from helpers.exercises import expect_close, time_limit
    x = Var(2.0)
    reference = np.array([5.0])
    with time_limit(10, "backprop"):
        (x * x + x).backward()
    expect_close(x.grad, reference, "d(x^2 + x)/dx", "backprop", rtol=1e-3)'''
    probe = probes.probe_source(source)
    assert "__kit_observe__(x.grad)" in probe
    assert "expect_close" not in probe and "d(x^2 + x)/dx" not in probe and "rtol" not in probe
    assert "from helpers.exercises import time_limit" in probe and "backward()" in probe


def test_plain_data_keeps_values_and_shapes_and_never_objects():
    plain = probes.to_plain({"t": torch.ones(2, 3), "n": np.float32(1.5), "xs": (1, [2.0, "a"]), "f": print})
    assert plain["t"] == {"array": [1.0] * 6, "shape": [2, 3], "dtype": "float32"}
    assert plain["n"] == 1.5 and plain["xs"] == [1, [2.0, "a"]] and plain["f"] == {"object": "builtin_function_or_method"}
    json.dumps(plain)  # plain JSON, nothing else


def test_a_value_within_the_masters_tolerance_passes():
    ok = {"observations": [{"got": {"array": [1.0, 2.0 + 1e-9], "shape": [2]}}, {"got": True}], "error": None}
    assert verdict.judge_test(_master(CLOSE, EQUAL), ok) == (True, "")


def test_a_wrong_value_fails_with_the_masters_expected_value_and_where_to_look():
    wrong = {"observations": [{"got": [1.0, 2.5]}, {"got": True}], "error": None}
    passed, message = verdict.judge_test(_master(CLOSE, EQUAL), wrong)
    assert not passed and "the gradients: expected [1., 2.]" in message and "Look at backprop" in message


def test_the_student_process_cannot_loosen_the_tolerance_or_send_a_bool_as_a_number():
    forged = {"observations": [{"got": [1.0, 2.5], "rtol": 1e9, "want": [1.0, 2.5]}, {"got": True}], "error": None}
    assert verdict.judge_test(_master(CLOSE, EQUAL), forged)[0] is False
    assert verdict.judge_test(_master(EQUAL), {"observations": [{"got": 1.0}], "error": None})[0] is False
    assert verdict.judge_test(_master(dict(EQUAL, got=1)), {"observations": [{"got": True}], "error": None})[0] is False


def test_errors_missing_reports_and_early_stops_fail():
    raised = {"observations": [], "error": "NotImplementedError: 2b: Var.__mul__"}
    assert verdict.judge_test(_master(CLOSE), raised) == (False, "NotImplementedError: 2b: Var.__mul__")
    assert verdict.judge_test(_master(CLOSE), None)[0] is False
    assert verdict.judge_test(_master(CLOSE), "not a dict")[0] is False
    assert verdict.judge_test(_master(CLOSE, EQUAL), {"observations": [{"got": [1.0, 2.0]}], "error": None})[0] is False
    after = {"observations": [{"got": [1.0, 2.0]}, {"got": True}], "error": "RuntimeError: later"}
    assert verdict.judge_test(_master(CLOSE, EQUAL), after)[0] is False


def test_points_are_split_evenly_over_a_questions_tests():
    expected = {"questions": {"q2b": {"points": 6, "tests": [
        _master(CLOSE) | {"id": "a", "name": "a"}, _master(EQUAL) | {"id": "b", "name": "b", "hidden": False},
        _master(EQUAL) | {"id": "c", "name": "c"}]}}}
    reports = {"a": {"observations": [{"got": [1.0, 2.0]}], "error": None},
               "b": {"observations": [{"got": True}], "error": None}}
    result = verdict.judge(expected, reports)["q2b"]
    assert result["score"] == 4.0 and result["possible"] == 6.0
    assert [t["passed"] for t in result["tests"]] == [True, True, False]
    assert verdict.judge(expected, "garbage")["q2b"]["score"] == 0.0


def test_cells_that_reach_into_the_grading_path_are_noted_and_ordinary_code_is_not():
    def cell(source):
        return {"cell_type": "code", "source": source}
    cells = [cell("import numpy as np\nx = np.ones(3)\nx[0] = 2"),
             cell("import helpers.exercises as ex\nex.expect_close = lambda *a, **k: None"),
             cell("import otter.execute\notter.execute.Checker.check = None"),
             cell("%matplotlib inline\nimport numpy.testing as npt\nsetattr(npt, 'assert_allclose', print)"),
             cell("import sys\nsys.modules['helpers.exercises'] = object()")]
    notes = tamper.notes(cells)
    assert len(notes) == 4 and all("changes the grading path" in n for n in notes)
    assert [n.split(" ")[2] for n in notes] == ["2", "3", "4", "5"]


def test_an_exercise_not_written_in_the_notebook_scores_nothing_at_all():
    tests = [_master(EQUAL) | {"id": "a", "name": "test_split_sizes"},
             _master(dict(EQUAL, got="__main__")) | {"id": "b", "name": "test_split_is_written_in_this_notebook"}]
    expected = {"questions": {"q2_1": {"points": 3, "tests": tests}}}
    imported = {"a": {"observations": [{"got": True}], "error": None},
                "b": {"observations": [{"got": "helpers.data"}], "error": None}}
    assert verdict.judge(expected, imported)["q2_1"]["score"] == 0.0
    written = dict(imported, b={"observations": [{"got": "__main__"}], "error": None})
    assert verdict.judge(expected, written)["q2_1"]["score"] == 3.0
    unfinished = dict(imported, b={"observations": [{"got": "split: not written yet (it raises NotImplementedError)"}],
                                   "error": None})
    assert verdict.judge(expected, unfinished)["q2_1"]["score"] == 1.5  # partial credit stays for the rest

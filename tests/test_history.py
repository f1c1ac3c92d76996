"""Tests for helpers.history: History's fields and JSON round trip, summarize, json_safe, trial_history."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np

from helpers.history import History, json_safe, summarize, trial_history


def two_epochs() -> History:
    h = History()
    h.append_epoch(epoch=0, train_loss=1.0, val_loss=0.8, val_acc=0.5, time=1.5, peak_mem=10.0)
    h.append_epoch(epoch=1, train_loss=0.5, val_loss=float("nan"), val_acc=0.7, time=2.5, peak_mem=12.0)
    h.step_loss = [1.2, 0.9, float("inf")]
    h.grad_norms = {"layer0": [0.1, float("nan")]}
    h.config = {"lr": 0.01}
    h.extras = {"test_probs": [0.25, 0.75]}
    return h


def test_final_skips_missing_values():
    history = History()
    history.append_epoch(epoch=0, val_acc=0.5)
    history.append_epoch(epoch=1)
    assert history.final("val_acc") == 0.5 and history.best("val_acc") == 0.5
    assert math.isnan(history.final("test_acc"))


def test_json_round_trip_keeps_extras_and_stores_nan_as_null(tmp_path):
    h = two_epochs()
    path = h.to_json(tmp_path / "sub" / "h.json")
    raw = json.loads(path.read_text())
    assert raw["val_loss"] == [0.8, None] and raw["step_loss"][2] is None and raw["grad_norms"]["layer0"][1] is None
    assert not list(path.parent.glob(".*.tmp")), "the atomic write left its temp file"
    back = History.from_json(path)
    assert back.extras == {"test_probs": [0.25, 0.75]} and back.config == {"lr": 0.01}
    assert math.isnan(back.val_loss[1]) and math.isnan(back.step_loss[2]) and back.train_loss == [1.0, 0.5]
    # a record written before extras existed still loads
    old = h.to_dict()
    del old["extras"]
    assert History.from_dict(old).extras == {}


def test_summarize():
    s = summarize(two_epochs())
    assert s["final_val_loss"] == 0.8 and s["final_val_acc"] == 0.7 and s["best_val_acc"] == 0.7
    assert s["epochs"] == 2 and s["diverged"] is False and s["train_time_s"] == 4.0 and s["peak_mem"] == 12.0
    assert math.isnan(s["final_test_acc"]) and math.isnan(summarize(History())["peak_mem"])


def test_json_safe_handles_numpy_and_non_finite():
    value = {"a": np.float32(0.5), "b": [float("nan"), np.int64(3)], 1: np.array([1.0, np.inf])}
    assert json_safe(value) == {"a": 0.5, "b": [None, 3], "1": [1.0, None]}
    json.dumps(json_safe(value), allow_nan=False)


def test_trial_history_reads_user_attrs():
    class Trial:
        user_attrs = {"history": two_epochs().to_dict()}

    assert trial_history(Trial()).final("val_acc") == 0.7
    Trial.user_attrs = {}
    assert trial_history(Trial()) is None


def test_history_is_a_leaf_that_loads_no_training_machinery():
    code = "import sys, helpers.history; sys.exit(any(m in sys.modules for m in ('torch', 'helpers.training')))"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0

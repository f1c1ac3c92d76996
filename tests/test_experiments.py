"""run_grid: the on-disk cache, resuming, forcing, errors, keys, parallel fallback."""
from __future__ import annotations

import json
import math
import os

import pandas as pd
import pytest

from helpers import experiments
from helpers.config import cache_dir
from helpers.experiments import GridRunError, cache_key, run_grid
from helpers.history import History
from helpers.models import MLP

CALLS: list[dict] = []
INTERRUPT_AT: list[int] = []  # a call count at which counting_train raises KeyboardInterrupt (Ctrl-C)


def fake_history(lr: float, width: int = 1, seed: int = 0, epochs: int = 3, diverged: bool = False) -> History:
    """A few epochs whose numbers depend on the settings, so cached values can be checked."""
    history = History(config={"lr": lr, "width": width, "seed": seed})
    for epoch in range(1, epochs + 1):
        loss = 1.0 / (1 + lr * width * epoch) + 0.01 * seed
        history.append_epoch(epoch=epoch, train_loss=loss, train_acc=1 - loss / 2, val_loss=loss + 0.1,
                             val_acc=1 - loss / 2 - 0.05, time=0.01)
    history.step_loss = [2.0 / (1 + i * lr) for i in range(10)]
    if diverged:
        history.val_loss[-1] = math.nan
        history.diverged = True
    return history


def counting_train(lr: float, width: int = 1, seed: int = 0) -> History:
    """Records every call, so a test can tell cached runs from trained ones."""
    if len(CALLS) in INTERRUPT_AT:
        raise KeyboardInterrupt
    CALLS.append({"lr": lr, "width": width, "seed": seed})
    return fake_history(lr, width, seed)


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.clear()
    INTERRUPT_AT.clear()


GRID = {"lr": [0.1, 1.0], "width": [1, 4]}


def test_second_run_returns_cached_results_without_training():
    first = run_grid(counting_train, GRID, repeats=2, quiet=True)
    assert len(CALLS) == 8 and len(first) == 8
    assert not first["cached"].any()
    second = run_grid(counting_train, GRID, repeats=2, quiet=True)
    assert len(CALLS) == 8, "cached runs must not train again"
    assert second["cached"].all()
    cols = ["lr", "width", "seed", "final_val_loss", "best_val_acc", "final_train_loss", "epochs", "diverged"]
    pd.testing.assert_frame_equal(first[cols], second[cols])
    assert second["history"][3].val_loss == first["history"][3].val_loss
    assert second.attrs["params"] == ["lr", "width"]


def test_summary_columns_match_history():
    frame = run_grid(counting_train, {"lr": [0.5]}, fixed={"width": 2}, quiet=True)
    expected = fake_history(0.5, 2, 0)
    row = frame.iloc[0]
    assert row["final_val_loss"] == pytest.approx(expected.val_loss[-1])
    assert row["best_val_acc"] == pytest.approx(max(expected.val_acc))
    assert row["epochs"] == 3 and row["seed"] == 0 and not row["diverged"]
    assert math.isnan(row["final_test_acc"])  # no test split recorded


def test_interrupted_grid_resumes_with_only_missing_runs():
    INTERRUPT_AT.append(3)  # Ctrl-C during the fourth run; the same function and code resume the grid
    with pytest.raises(KeyboardInterrupt):
        run_grid(counting_train, GRID, repeats=2, quiet=True)
    assert len(CALLS) == 3
    CALLS.clear()
    INTERRUPT_AT.clear()
    frame = run_grid(counting_train, GRID, repeats=2, quiet=True)
    assert len(CALLS) == 5, "only the 5 runs that did not finish must train"
    assert frame["cached"].sum() == 3


def test_force_retrains_everything():
    run_grid(counting_train, GRID, quiet=True)
    frame = run_grid(counting_train, GRID, force=True, quiet=True)
    assert len(CALLS) == 8 and not frame["cached"].any()


def test_cache_files_are_json_histories():
    run_grid(counting_train, {"lr": [0.1, 1.0]}, quiet=True)
    files = sorted((cache_dir() / "runs" / "counting_train").glob("*.json"))
    assert len(files) == 2
    assert not list((cache_dir() / "runs").rglob("*.tmp")), "temp files must be renamed away"
    for path in files:
        record = json.loads(path.read_text())  # strict JSON: would fail on pickle bytes
        history = History.from_dict(record["history"])
        assert history.val_loss == fake_history(record["key"]["params"]["lr"]).val_loss
        assert record["key"]["fn"].endswith("counting_train")


def test_key_changes_with_profile_params_seed_and_fixed():
    base = cache_key(counting_train, {"lr": 0.1}, seed=0, profile="quick")
    assert base == cache_key(counting_train, {"lr": 0.1}, seed=0, profile="quick")
    others = [cache_key(counting_train, {"lr": 0.2}, seed=0, profile="quick"),
              cache_key(counting_train, {"lr": 0.1}, seed=1, profile="quick"),
              cache_key(counting_train, {"lr": 0.1}, seed=0, profile="smoke"),
              cache_key(counting_train, {"lr": 0.1}, seed=0, profile="quick", fixed={"width": 2}),
              cache_key(fake_history, {"lr": 0.1}, seed=0, profile="quick")]
    assert len({base, *others}) == 6


def test_other_profile_trains_again(monkeypatch):
    run_grid(counting_train, {"lr": [0.1]}, profile="smoke", quiet=True)
    run_grid(counting_train, {"lr": [0.1]}, profile="quick", quiet=True)
    monkeypatch.setenv("KIT_PROFILE", "smoke")
    run_grid(counting_train, {"lr": [0.1]}, quiet=True)  # the environment's profile: cached
    assert len(CALLS) == 2


def test_error_is_recorded_and_grid_goes_on():
    def flaky(lr, seed=0):
        if lr == 1.0:
            raise RuntimeError("exploded")
        return counting_train(lr, seed=seed)

    frame = run_grid(flaky, {"lr": [0.1, 1.0, 0.5]}, quiet=True, errors="record")
    assert list(frame["error"].isna()) == [True, False, True]
    assert frame.loc[1, "error"] == "RuntimeError: exploded"
    assert frame.loc[1, "history"] is None and frame.loc[2, "history"] is not None
    # Failed runs are not cached: the next call retries exactly them.
    CALLS.clear()
    again = run_grid(flaky, {"lr": [0.1, 1.0, 0.5]}, quiet=True, errors="record")
    assert len(CALLS) == 0 and list(again["cached"]) == [True, False, True]


def test_errors_raise_by_default_after_every_run_was_tried():
    def flaky(lr, seed=0):
        if lr == 1.0:
            raise RuntimeError("exploded")
        return counting_train(lr, seed=seed)

    CALLS.clear()
    with pytest.raises(GridRunError, match=r"1 of 3 runs failed[\s\S]*lr=1.0, seed=0: RuntimeError: exploded") as info:
        run_grid(flaky, {"lr": [0.1, 1.0, 0.5]}, quiet=True)
    assert len(CALLS) == 2 and len(info.value.frame) == 3  # the run after the failure still trained
    CALLS.clear()
    with pytest.raises(GridRunError):
        run_grid(flaky, {"lr": [0.1, 1.0, 0.5]}, quiet=True)
    assert len(CALLS) == 0  # the good runs came from the cache


def test_diverged_history_is_a_normal_cached_result():
    def maybe_diverge(lr, seed=0):
        CALLS.append(lr)
        return fake_history(lr, diverged=lr > 1)

    frame = run_grid(maybe_diverge, {"lr": [0.1, 10.0]}, quiet=True)
    assert "error" not in frame and list(frame["diverged"]) == [False, True]
    assert frame.loc[1, "final_val_loss"] == pytest.approx(frame.loc[1, "history"].val_loss[1])
    run_grid(maybe_diverge, {"lr": [0.1, 10.0]}, quiet=True)
    assert len(CALLS) == 2


def test_dict_results_become_columns():
    def timing(batch_size, seed=0):
        return {"throughput": 1000.0 / batch_size, "peak_mib": float("nan"), "history": fake_history(0.1)}

    frame = run_grid(timing, {"batch_size": [10, 100]}, quiet=True)
    assert list(frame["throughput"]) == [100.0, 10.0]
    assert frame["peak_mib"].isna().all() and frame.loc[0, "final_val_loss"] > 0
    assert run_grid(timing, {"batch_size": [10, 100]}, quiet=True)["cached"].all()


def test_a_list_of_grids_runs_their_points_in_one_grid_keyed_like_separate_grids():
    """Sheet 3's seven shapes (pairs of depth and width, not their product) as one grid, trained side by side."""
    shapes = [{"lr": [0.1], "width": [4]}, {"lr": [1.0], "width": [1, 2]}]
    frame = run_grid(counting_train, shapes, repeats=2, quiet=True)
    assert list(zip(frame["lr"], frame["width"], frame["seed"])) == [
        (0.1, 4, 0), (0.1, 4, 1), (1.0, 1, 0), (1.0, 1, 1), (1.0, 2, 0), (1.0, 2, 1)]
    assert len(CALLS) == 6 and frame.attrs["params"] == ["lr", "width"]
    separate = pd.concat([run_grid(counting_train, g, repeats=2, quiet=True) for g in shapes], ignore_index=True)
    assert len(CALLS) == 6 and separate["cached"].all(), "the same runs, the same cache records"


@pytest.mark.parametrize("grid, fixed, match", [
    ([], None, "non-empty list of them"),
    ([{"lr": [0.1]}, {"lr": 0.2}], None, "non-empty list of values"),
    ({"lr": 0.1}, None, "non-empty list"),
    ({"lr": []}, None, "non-empty list"),
    ({"lr": [0.1]}, {"lr": 0.2}, "both in grid and in fixed"),
    ({"lr": [0.1], "seed": [1]}, None, "seed"),
    ({"lr": [object()]}, None, "stable cache key"),
])
def test_bad_grid_raises_clear_error(grid, fixed, match):
    with pytest.raises(ValueError, match=match):
        run_grid(counting_train, grid, fixed=fixed, quiet=True)


# --- where runs train: worker processes, one thread each, records written here ------------------------
# A sheet's training function, defined in a notebook cell: worker processes get it by value (cloudpickle).
NOTEBOOK_TRAIN = """
import os
import time
import torch
from helpers.config import seed_everything
from helpers.history import History
from helpers.models import MLP
from helpers.synthetic import Synthetic2D
from helpers.training import fit

DATA = Synthetic2D("moons", n=300, noise=0.1, seed=0).splits()   # a notebook global: travels by value

def train_moons(depth, width, seed, epochs=3, keep_model=False, pause=0.0):
    time.sleep(pause)  # long enough runs that every worker gets some
    seed_everything(seed)
    model = MLP(2, 1, depth=depth, width=width, activation="tanh")
    history = fit(model, DATA.train.loader(32, shuffle=True, seed=seed), epochs, loss="bce", lr=0.01,
                  val_loader=DATA.val.loader(512), quiet=True)
    return {"history": history, "threads": torch.get_num_threads(), "pid": os.getpid(),
            **({"model": model} if keep_model else {})}
"""
MOONS = {"depth": [0, 2], "width": [3, 5]}


MEASURED = ("time", "peak_mem")  # a History's measurements of the machine (seconds, memory), not of the model


def _records(folder) -> dict:
    """Every cache record under ``folder`` by file name, without what measures the machine rather than the run."""
    out = {}
    for path in sorted(folder.rglob("*.json")):
        record = json.loads(path.read_text())
        del record["time_s"], record["metrics"]["pid"]
        for name in MEASURED:
            del record["history"][name]
        out[path.relative_to(folder).as_posix()] = record
    return out


def test_worker_processes_give_the_serial_run_s_records_and_rows(notebook, tmp_path, monkeypatch):
    """Issue 25: a grid on two worker processes equals the same grid trained here, record for record, row for row.
    Here too a run trains on one thread, whatever the kernel uses (torch's sums change with the thread count)."""
    import torch

    notebook.run(NOTEBOOK_TRAIN)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # a kernel on two cores
    try:
        frames, records = [], []
        for n_jobs, cache in ((1, tmp_path / "serial"), (2, tmp_path / "workers")):
            monkeypatch.setenv("KIT_CACHE", str(cache))
            frames.append(run_grid(notebook["train_moons"], MOONS, repeats=2, fixed={"pause": 0.3}, n_jobs=n_jobs,
                                   quiet=True))
            records.append(_records(cache / "runs"))
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)
    serial, parallel = frames
    assert after == 2, "the kernel's own thread count is left as it was"
    assert serial["pid"].nunique() == 1 and parallel["pid"].nunique() == 2, "n_jobs=2: two worker processes"
    assert (serial["threads"] == 1).all() and (parallel["threads"] == 1).all(), "every run trains on one thread"
    assert len(records[0]) == 8 and records[0] == records[1], "same cache files, same records"
    same = [c for c in serial if c not in ("time_s", "pid", "history") and not c.endswith(("time_s", "peak_mem"))]
    pd.testing.assert_frame_equal(serial[same], parallel[same])  # the grid's order, whoever finished first
    assert [h.step_loss for h in serial["history"]] == [h.step_loss for h in parallel["history"]]


def test_by_default_a_grid_trains_on_every_core(notebook, monkeypatch):
    from helpers import device

    notebook.run(NOTEBOOK_TRAIN)
    monkeypatch.delenv("KIT_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(device, "usable_cores", lambda: 2)
    frame = run_grid(notebook["train_moons"], MOONS, fixed={"epochs": 1, "pause": 0.5}, quiet=True)
    assert frame["pid"].nunique() == 2 and os.getpid() not in set(frame["pid"])
    monkeypatch.setenv("KIT_THREADS", "1")   # a machine shared with other jobs: one core, so this process
    again = run_grid(notebook["train_moons"], MOONS, fixed={"epochs": 2}, quiet=True)
    assert set(again["pid"]) == {os.getpid()}


def test_a_function_that_cannot_be_sent_trains_here_with_a_one_line_note(notebook):
    notebook.namespace["fake_history"] = fake_history
    notebook.run("import threading\nLOCK = threading.Lock()\n"
                 "def train(lr, seed):\n    with LOCK:\n        return fake_history(lr, seed=seed)\n")
    with pytest.warns(UserWarning, match="cannot be sent to worker processes") as caught:
        frame = run_grid(notebook["train"], {"lr": [0.1, 0.2]}, n_jobs=2, quiet=True)
    assert len(frame) == 2 and not frame["cached"].any() and "\n" not in str(caught[0].message)


def test_an_unwritten_exercise_in_a_worker_is_raised_not_recorded(notebook):
    notebook.namespace["fake_history"] = fake_history
    notebook.run("def train(lr, seed):\n    if lr > 0.15:\n"
                 "        raise NotImplementedError('2b: write the delta rule')\n    return fake_history(lr)\n")
    with pytest.raises(NotImplementedError, match="2b: write the delta rule"):
        run_grid(notebook["train"], {"lr": [0.1, 0.2, 0.3]}, n_jobs=2, quiet=True)
    assert not [p for p in (cache_dir() / "runs").rglob("*.json") if "0.2" in p.read_text()], "not recorded"
    notebook.run("def train(lr, seed):\n    return fake_history(lr)\n")   # the student writes it
    frame = run_grid(notebook["train"], {"lr": [0.1, 0.2, 0.3]}, n_jobs=2, quiet=True)  # no lock left held
    assert "error" not in frame and not frame["cached"].any()


def test_a_failing_run_in_a_worker_is_recorded_and_the_grid_goes_on(notebook):
    notebook.namespace["fake_history"] = fake_history
    notebook.run("def train(lr, seed):\n    if lr == 0.2:\n        raise FloatingPointError('diverged')\n"
                 "    return fake_history(lr)\n")
    frame = run_grid(notebook["train"], {"lr": [0.1, 0.2, 0.3]}, n_jobs=2, quiet=True, errors="record")
    assert list(frame["lr"]) == [0.1, 0.2, 0.3]
    assert list(frame["error"]) == [None, "FloatingPointError: diverged", None]
    assert run_grid(notebook["train"], {"lr": [0.1, 0.3]}, n_jobs=2, quiet=True)["cached"].all()


def test_workers_keep_models_and_this_process_writes_them(notebook, tmp_path):
    notebook.run(NOTEBOOK_TRAIN)
    frame = run_grid(notebook["train_moons"], MOONS, fixed={"keep_model": True, "pause": 0.5}, n_jobs=2,
                     keep_models=True, quiet=True)
    assert frame["pid"].nunique() == 2 and frame["weights"].notna().all()
    model = experiments.trained_model(frame.iloc[3], MLP(2, 1, depth=2, width=5, activation="tanh"))
    assert not model.training and frame.iloc[3][["depth", "width"]].tolist() == [2, 5]
    assert run_grid(notebook["train_moons"], MOONS, fixed={"keep_model": True, "pause": 0.5}, n_jobs=2,
                    keep_models=True, quiet=True)["cached"].all()


def train_small_model(lr: float, seed: int = 0) -> dict:
    """A real (tiny) trained model and its History, for keep_models."""
    import torch

    CALLS.append({"lr": lr, "seed": seed})
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.fill_(lr)  # the weights say which run they came from
    return {"history": fake_history(lr, seed=seed), "model": model}


def test_keep_models_gives_back_the_trained_model_and_retrains_when_its_weights_are_gone():
    import torch

    frame = run_grid(train_small_model, {"lr": [0.1, 0.5]}, quiet=True, keep_models=True)
    assert len(CALLS) == 2 and frame["weights"].notna().all()
    again = run_grid(train_small_model, {"lr": [0.1, 0.5]}, quiet=True, keep_models=True)
    assert len(CALLS) == 2 and again["cached"].all()
    model = experiments.trained_model(again.iloc[1], torch.nn.Linear(3, 2))
    assert torch.all(model.weight == 0.5) and not model.training
    # The History alone cannot give back a model: a record whose weights are lost is trained again.
    (cache_dir() / "runs" / "train_small_model").joinpath(again["weights"][0].rsplit("/", 1)[-1]).unlink()
    third = run_grid(train_small_model, {"lr": [0.1, 0.5]}, quiet=True, keep_models=True)
    assert len(CALLS) == 3 and third["cached"].tolist() == [False, True]
    without = run_grid(train_small_model, {"lr": [0.1]}, quiet=True)  # the same runs, weights not asked for
    assert "weights" not in without and without["cached"].all()
    with pytest.raises(ValueError, match="keep_models=True"):
        experiments.trained_model(without.iloc[0], torch.nn.Linear(3, 2))


def test_keep_models_needs_a_model_from_train_fn():
    frame = run_grid(counting_train, {"lr": [0.1]}, quiet=True, keep_models=True, errors="record")
    assert "keep_models=True" in frame["error"][0] and frame["weights"][0] is None


def test_grid_reports_trained_and_cached_runs_to_the_runlog():
    from helpers import runlog

    runlog.reset()
    run_grid(counting_train, {"lr": [0.1, 0.2]}, quiet=True)
    run_grid(counting_train, {"lr": [0.1, 0.2, 0.3]}, quiet=True)
    assert runlog.snapshot()["runs"] == {"trained": 3, "cached": 2}
    runlog.reset()


# --- the cache knows the code: editing a training function or a helper it calls trains again -----------
def _train_cell(body: str) -> str:
    return f"def train(lr, seed):\n    h = History()\n    h.append_epoch(epoch=0, train_loss={body})\n    return h\n"


def test_editing_the_training_function_trains_its_runs_again(notebook):
    notebook.namespace["History"] = History
    notebook.run(_train_cell("lr"))
    first = run_grid(notebook["train"], {"lr": [0.1, 0.2]}, quiet=True)
    notebook.run(_train_cell("lr * 100"))   # the example: the old values used to come back, "cached"
    second = run_grid(notebook["train"], {"lr": [0.1, 0.2]}, quiet=True)
    assert list(first["final_train_loss"]) == [0.1, 0.2] and not first["cached"].any()
    assert list(second["final_train_loss"]) == pytest.approx([10.0, 20.0]) and not second["cached"].any()
    notebook.run(_train_cell("lr"))         # back to the first version: its runs are still cached
    third = run_grid(notebook["train"], {"lr": [0.1, 0.2]}, quiet=True)
    assert third["cached"].all() and list(third["final_train_loss"]) == [0.1, 0.2]


def test_editing_a_helper_trains_again_exactly_the_runs_that_use_it(notebook):
    notebook.namespace["History"] = History
    notebook.run("def scale(x):\n    return x\n")
    notebook.run(_train_cell("scale(lr)"))
    notebook.run(_train_cell("lr").replace("def train", "def plain"))
    run_grid(notebook["train"], {"lr": [0.1]}, quiet=True)
    run_grid(notebook["plain"], {"lr": [0.1]}, quiet=True)
    notebook.run("def scale(x):\n    return 3 * x\n")
    uses = run_grid(notebook["train"], {"lr": [0.1]}, quiet=True)
    other = run_grid(notebook["plain"], {"lr": [0.1]}, quiet=True)
    assert not uses["cached"].any() and uses["final_train_loss"][0] == pytest.approx(0.3)
    assert other["cached"].all(), "plain does not call scale: its run stays cached"


def test_a_lambda_or_unreadable_function_is_refused_not_cached_under_a_wrong_key():
    with pytest.raises(ValueError, match="lambda"):
        run_grid(lambda lr, seed: fake_history(lr), {"lr": [0.1]}, quiet=True)
    namespace = {"__name__": "__main__", "fake_history": fake_history}
    exec("def train(lr, seed):\n    return fake_history(lr)\n", namespace)
    with pytest.raises(ValueError, match="Cannot read the source of train"):
        run_grid(namespace["train"], {"lr": [0.1]}, quiet=True)
    assert not (cache_dir() / "runs").exists(), "nothing was trained or cached"


def test_a_function_passed_as_a_setting_is_keyed_by_its_code(notebook):
    notebook.namespace["History"] = History
    notebook.run("def make(lr):\n    return lr\n")
    notebook.run("def train(lr, seed, build):\n    h = History()\n    h.append_epoch(epoch=0, train_loss=build(lr))\n"
                 "    return h\n")
    run_grid(notebook["train"], {"lr": [0.5]}, fixed={"build": notebook["make"]}, quiet=True)
    notebook.run("def make(lr):\n    return 2 * lr\n")
    again = run_grid(notebook["train"], {"lr": [0.5]}, fixed={"build": notebook["make"]}, quiet=True)
    assert not again["cached"].any() and again["final_train_loss"][0] == 1.0


def test_a_notebook_run_again_in_a_new_kernel_takes_its_runs_from_the_cache(tmp_path):
    """The identity is the code's, not the session's: a second kernel on the same cells trains nothing."""
    import nbformat
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    cells = ["from helpers.experiments import run_grid\nfrom helpers.history import History",
             "def scale(x):\n    return 2 * x",
             _train_cell("scale(lr)"),
             "frame = run_grid(train, {'lr': [0.1, 0.2]}, quiet=True)\nprint(int(frame['cached'].sum()))"]
    printed = []
    for _ in range(2):
        nb = new_notebook(cells=[new_code_cell(c) for c in cells])
        NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
        printed.append(nb.cells[-1].outputs[0]["text"].strip())
    assert printed == ["0", "2"]

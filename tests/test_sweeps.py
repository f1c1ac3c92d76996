"""optuna sweeps: resuming from SQLite, samplers, diverged trials, the tidy frame."""
from __future__ import annotations

import itertools
import math

import pytest

from helpers.config import cache_dir
from helpers.sweeps import (Categorical, IncompleteSweepWarning, IntRange, LogUniform, run_sweep, sweep_frame,
                            trial_history)
from helpers.history import History

SPACE = {"lr": LogUniform(1e-3, 1.0), "width": IntRange(1, 8), "act": Categorical(["relu", "tanh"])}


def fake_objective(calls: list):
    """An objective whose loss is smallest near lr=0.1 and that diverges for lr > 0.5."""
    def objective(params: dict, trial_number: int) -> History:
        calls.append(trial_number)
        history = History()
        for epoch in (1, 2, 3):
            loss = abs(math.log10(params["lr"]) + 1) + 1.0 / (epoch * params.get("width", 1))
            history.append_epoch(epoch=epoch, train_loss=loss, val_loss=loss + 0.1, val_acc=1 / (1 + loss))
        if params["lr"] > 0.5:
            history.val_loss[-1] = math.nan
            history.diverged = True
        return history
    return objective


def test_study_resumes_from_its_sqlite_file():
    calls: list = []
    study = run_sweep(fake_objective(calls), SPACE, n_trials=3, sampler="random", study_name="resume", quiet=True)
    assert len(calls) == 3 and (cache_dir() / "sweeps" / "resume-quick.db").is_file()
    study = run_sweep(fake_objective(calls), SPACE, n_trials=5, sampler="random", study_name="resume", quiet=True)
    assert len(calls) == 5, "only the 2 missing trials must run"
    assert len(study.trials) == 5
    first_params = [t.params for t in study.trials[:3]]
    assert all(t.params not in first_params for t in study.trials[3:]), "a resumed sweep must not replay trials"
    run_sweep(fake_objective(calls), SPACE, n_trials=5, sampler="random", study_name="resume", quiet=True)
    assert len(calls) == 5


def test_grid_sampler_covers_the_grid():
    calls: list = []
    space = {"lr": Categorical([0.01, 0.1, 1.0]), "width": IntRange(1, 3)}
    study = run_sweep(fake_objective(calls), space, n_trials=None, sampler="grid", study_name="grid", quiet=True)
    seen = {(t.params["lr"], t.params["width"]) for t in study.trials}
    assert seen == set(itertools.product([0.01, 0.1, 1.0], [1, 2, 3]))
    assert len(calls) == 9


def test_grid_sampler_rejects_continuous_space():
    with pytest.raises(ValueError, match="grid sampler needs finite"):
        run_sweep(fake_objective([]), SPACE, n_trials=3, sampler="grid", quiet=True)


def test_diverged_trial_does_not_stop_the_sweep():
    calls: list = []
    space = {"lr": Categorical([1.0, 0.1, 0.01])}
    study = run_sweep(fake_objective(calls), space, n_trials=3, sampler="grid", storage="memory", quiet=True)
    assert len(calls) == 3
    by_lr = {t.params["lr"]: t for t in study.trials}
    assert by_lr[1.0].value == math.inf and by_lr[1.0].user_attrs["diverged"]
    assert study.best_trial.params["lr"] == 0.1


def test_failing_trial_is_marked_failed_and_sweep_goes_on():
    def objective(params, number):
        if number == 1:
            raise RuntimeError("out of memory")
        return fake_objective([])(params, number)

    def states(study):
        return [t.state.name for t in study.trials]

    with pytest.warns(IncompleteSweepWarning, match=r"only 2 of 3 trials finished.*out of memory"):
        study = run_sweep(objective, {"lr": LogUniform(1e-3, 0.5)}, n_trials=3, sampler="random",
                          study_name="fail", quiet=True)
    assert states(study) == ["COMPLETE", "FAIL", "COMPLETE"]
    # A failed trial does not count as finished: the next call runs one more.
    study = run_sweep(objective, {"lr": LogUniform(1e-3, 0.5)}, n_trials=3, sampler="random",
                      study_name="fail", quiet=True)
    assert states(study) == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]


def test_tpe_maximize_and_frame_keep_histories():
    calls: list = []
    study = run_sweep(fake_objective(calls), SPACE, n_trials=4, sampler="bayes", metric="val_acc",
                      direction="maximize", reduce="best", storage="memory", quiet=True)
    frame = sweep_frame(study)
    assert len(frame) == 4 and {"trial", "state", "value", "lr", "width", "act", "history"} <= set(frame)
    row = frame.iloc[0]
    history = trial_history(study.trials[0])
    assert history.val_loss[:2] == row["history"].val_loss[:2]
    expected = -math.inf if history.diverged else max(history.val_acc)
    assert row["value"] == pytest.approx(expected)
    assert frame.attrs["params"] == ["act", "lr", "width"]


@pytest.mark.parametrize("kwargs, match", [
    ({"sampler": "anneal"}, "Unknown sampler"),
    ({"metric": "val_los"}, "Unknown metric"),
    ({"direction": "down"}, "direction"),
])
def test_bad_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_sweep(fake_objective([]), SPACE, n_trials=1, quiet=True, **kwargs)


def test_space_declarations_validate():
    with pytest.raises(ValueError):
        LogUniform(0, 1)
    with pytest.raises(ValueError):
        IntRange(5, 1)
    with pytest.raises(ValueError):
        Categorical([])


def test_sweep_reports_trained_and_already_finished_trials_to_the_runlog():
    from helpers import runlog

    runlog.reset()
    calls: list = []
    run_sweep(fake_objective(calls), SPACE, n_trials=2, sampler="random", study_name="log", quiet=True)
    run_sweep(fake_objective(calls), SPACE, n_trials=3, sampler="random", study_name="log", quiet=True)
    assert runlog.snapshot()["runs"] == {"trained": 3, "cached": 2}
    runlog.reset()


def test_editing_a_helper_the_objective_calls_runs_the_sweep_again(notebook):
    notebook.namespace.update(History=History, CALLS=[])
    notebook.run("def loss_of(lr):\n    return lr\n")
    notebook.run("def objective(params, number):\n    CALLS.append(number)\n    h = History()\n"
                 "    h.append_epoch(epoch=0, val_loss=loss_of(params['lr']))\n    return h\n")
    space, calls = {"lr": Categorical([0.1, 0.2])}, notebook["CALLS"]
    first = run_sweep(notebook["objective"], space, n_trials=None, sampler="grid", study_name="edit", quiet=True)
    assert len(calls) == 2 and sorted(t.value for t in first.trials) == [0.1, 0.2]
    notebook.run("def loss_of(lr):\n    return 10 * lr\n")   # only the helper changes
    second = run_sweep(notebook["objective"], space, n_trials=None, sampler="grid", study_name="edit", quiet=True)
    assert len(calls) == 4 and sorted(t.value for t in second.trials) == pytest.approx([1.0, 2.0])
    assert second.study_name.startswith("edit@") and second.study_name != first.study_name
    notebook.run("def loss_of(lr):\n    return lr\n")        # the first version's trials are still stored
    third = run_sweep(notebook["objective"], space, n_trials=None, sampler="grid", study_name="edit", quiet=True)
    assert len(calls) == 4 and third.study_name == first.study_name

"""Fault injection: kills mid-run, saves that die midway, corrupt records, hostile files, name clashes.

Each test reproduces one defect of issue 12 (its number in the test's docstring) and checks the
mechanism that now prevents it. Kills are real SIGKILLs of a subprocess, never simulated exceptions.
"""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_script(tmp_path: Path, name: str, body: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``body`` as a Python script in a fresh interpreter (same KIT_CACHE), with the repo importable."""
    script = tmp_path / f"{name}.py"
    script.write_text(textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path)


def killed(proc: subprocess.CompletedProcess) -> bool:
    return proc.returncode == -signal.SIGKILL


# --- 1. a resumed grid sweep covers the grid exactly once -----------------------------------------
SWEEP_SCRIPT = """
    import os, signal, sys
    from helpers.record import History
    from helpers.sweeps import Categorical, run_sweep

    LOG = sys.argv[1]

    def objective(params, number):
        with open(LOG, "a") as f:
            f.write(f"start {params['lr']}\\n")
        kill_at = os.environ.get("KILL_AT")
        if kill_at is not None and str(params["lr"]) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)   # the kernel dies in the middle of a trial
        h = History()
        h.append_epoch(epoch=0, train_loss=params["lr"], val_loss=params["lr"])
        with open(LOG, "a") as f:
            f.write(f"done {params['lr']}\\n")
        return h

    n = None if sys.argv[2] == "all" else int(sys.argv[2])
    study = run_sweep(objective, {"lr": Categorical([.01, .02, .03, .04, .05, .06])}, n_trials=n,
                      sampler="grid", study_name="g", quiet=True)
    print(sorted(t.params["lr"] for t in study.trials if t.state.name == "COMPLETE"))
"""
GRID = [.01, .02, .03, .04, .05, .06]


def _done(log: Path) -> list[float]:
    return [float(line.split()[1]) for line in log.read_text().splitlines() if line.startswith("done")]


def test_resumed_grid_sweep_covers_the_grid_exactly_once(tmp_path):
    """Issue 12.1: n_trials=3, then n_trials=None, evaluated [.06, .03, .02, .02, .01, .03]."""
    log = tmp_path / "log.txt"
    first = run_script(tmp_path, "sweep", SWEEP_SCRIPT, str(log), "3")
    assert first.returncode == 0, first.stderr
    second = run_script(tmp_path, "sweep", SWEEP_SCRIPT, str(log), "all")
    assert second.returncode == 0, second.stderr
    assert _done(log) == GRID, "each grid point once, in the declared order"


def test_grid_sweep_killed_mid_trial_resumes_and_covers_the_grid_once(tmp_path):
    """Issue 12.1 after a SIGKILL: the trial cut off is retried, no other point is repeated or skipped."""
    log = tmp_path / "log.txt"
    os.environ["KILL_AT"] = "0.03"
    try:
        first = run_script(tmp_path, "sweep", SWEEP_SCRIPT, str(log), "all")
    finally:
        del os.environ["KILL_AT"]
    assert killed(first), first.stderr
    assert _done(log) == [.01, .02]
    second = run_script(tmp_path, "sweep", SWEEP_SCRIPT, str(log), "all")
    assert second.returncode == 0, second.stderr
    assert _done(log) == GRID
    assert second.stdout.strip() == str(GRID)


# --- 2. a study belongs to its search space and objective -------------------------------------------
def _history(value: float):
    from helpers.record import History

    h = History()
    h.append_epoch(epoch=0, train_loss=value, val_loss=value)
    return h


def test_study_with_another_search_space_is_refused_not_reused():
    """Issue 12.2: a new LogUniform(0.5, 1) returned the stored trials from [1e-3, 1e-2]."""
    from helpers.sweeps import LogUniform, StudyMismatchError, run_sweep

    def objective(params, number):
        return _history(params["lr"])

    run_sweep(objective, {"lr": LogUniform(1e-3, 1e-2)}, n_trials=2, sampler="random", study_name="s", quiet=True)
    with pytest.raises(StudyMismatchError, match=r"'s'.*search space.*study_name="):
        run_sweep(objective, {"lr": LogUniform(0.5, 1.0)}, n_trials=2, sampler="random", study_name="s", quiet=True)
    # The same space and objective still resume their study.
    study = run_sweep(objective, {"lr": LogUniform(1e-3, 1e-2)}, n_trials=3, sampler="random", study_name="s",
                      quiet=True)
    assert len(study.trials) == 3 and all(1e-3 <= t.params["lr"] <= 1e-2 for t in study.trials)


def test_study_with_another_objective_or_metric_is_refused():
    """Issue 12.2: the stored study is tied to the objective's source and to the metric it scores."""
    from helpers.sweeps import Categorical, StudyMismatchError, run_sweep

    space = {"lr": Categorical([0.1, 0.2])}

    def objective(params, number):
        return _history(params["lr"])

    def other(params, number):
        return _history(-params["lr"])

    run_sweep(objective, space, n_trials=1, sampler="grid", study_name="o", quiet=True)
    with pytest.raises(StudyMismatchError, match="objective"):
        run_sweep(other, space, n_trials=2, sampler="grid", study_name="o", quiet=True)
    with pytest.raises(StudyMismatchError, match="metric"):
        run_sweep(objective, space, n_trials=2, sampler="grid", metric="train_loss", study_name="o", quiet=True)


def test_changed_distribution_kind_does_not_fail_quietly():
    """Issue 12.2: a Categorical where a LogUniform was made every new trial FAIL, and the call returned normally."""
    from helpers.sweeps import Categorical, IncompleteSweepWarning, LogUniform, StudyMismatchError, run_sweep

    def objective(params, number):
        if params["lr"] > 0.5:
            raise RuntimeError("diverged badly")
        return _history(params["lr"])

    run_sweep(objective, {"lr": LogUniform(1e-3, 1e-2)}, n_trials=1, sampler="random", study_name="k", quiet=True)
    with pytest.raises(StudyMismatchError):
        run_sweep(objective, {"lr": Categorical([0.1, 0.2])}, n_trials=2, sampler="grid", study_name="k", quiet=True)
    with pytest.warns(IncompleteSweepWarning, match=r"only 2 of 3 trials finished.*diverged badly"):
        run_sweep(objective, {"lr": Categorical([0.1, 0.9, 0.2])}, n_trials=None, sampler="grid",
                  storage="memory", quiet=True)

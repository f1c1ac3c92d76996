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


def run_script(tmp_path: Path, name: str, body: str, *args: str, timeout: float = 120,
               env_extra: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``body`` as a Python script in a fresh interpreter (same KIT_CACHE), with the repo importable."""
    script = tmp_path / f"{name}.py"
    script.write_text(textwrap.dedent(body))
    (tmp_path / "gridtrain.py").write_text(textwrap.dedent(GRID_MODULE))
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}", "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=tmp_path)


def killed(proc: subprocess.CompletedProcess) -> bool:
    return proc.returncode == -signal.SIGKILL


# --- 1. a resumed grid sweep covers the grid exactly once -----------------------------------------
SWEEP_SCRIPT = """
    import os, signal, sys
    from helpers.history import History
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
    first = run_script(tmp_path, "sweep", SWEEP_SCRIPT, str(log), "all", env_extra={"KILL_AT": "0.03"})
    assert killed(first), first.stderr
    assert _done(log) == [.01, .02]
    second = run_script(tmp_path, "sweep", SWEEP_SCRIPT, str(log), "all")
    assert second.returncode == 0, second.stderr
    assert _done(log) == GRID
    assert second.stdout.strip() == str(GRID)


# --- 2. a study belongs to its search space and objective -------------------------------------------
def _history(value: float):
    from helpers.history import History

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


# --- grids: kill and resume, two processes on one cache, a killed worker --------------------------
GRID_MODULE = """
    import os, signal, sys, time
    from helpers.history import History

    def train(x, seed):
        log = os.environ["GRID_LOG"]
        with open(log, "a") as f:
            f.write(f"start {x} {os.getpid()}\\n")
        if os.environ.get("KILL_AT") == str(x):
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(float(os.environ.get("SLEEP", "0")))
        h = History()
        h.append_epoch(epoch=0, train_loss=float(x))
        with open(log, "a") as f:
            f.write(f"done {x}\\n")
        return h
"""
# train lives in a module of its own: worker processes (n_jobs=2) import it by name (cloudpickle sends
# a notebook's functions by value; test_experiments covers those).
GRID_SCRIPT = """
    import os, sys
    from helpers.experiments import run_grid
    from gridtrain import train

    if __name__ == "__main__":
        os.environ["GRID_LOG"] = sys.argv[1]
        frame = run_grid(train, {"x": list(range(6))}, quiet=True, n_jobs=int(sys.argv[2]))
        print(int(frame["cached"].sum()), list(frame["final_train_loss"]))
"""


def test_grid_killed_mid_run_resumes_without_repeating_or_skipping(tmp_path):
    """Issue 12: a SIGKILL during run 3 of 6; the next call trains runs 3..5 once each and reuses 0..2."""
    log = tmp_path / "log.txt"
    first = run_script(tmp_path, "grid", GRID_SCRIPT, str(log), "1", env_extra={"KILL_AT": "3"})
    assert killed(first), first.stderr
    second = run_script(tmp_path, "grid", GRID_SCRIPT, str(log), "1")
    assert second.returncode == 0, second.stderr
    assert [float(x) for x in _done_lines(log)] == [0, 1, 2, 3, 4, 5]
    assert second.stdout.split()[0] == "3", "the three runs finished before the kill are reused"


def _done_lines(log: Path) -> list[str]:
    return [line.split()[1] for line in log.read_text().splitlines() if line.startswith("done")]


def _start_grid(tmp_path: Path, log: Path, n_jobs: int, sleep: float) -> subprocess.Popen:
    """Start the grid script in a subprocess (each run sleeps ``sleep`` s and logs 'done x')."""
    script = tmp_path / "grid.py"
    script.write_text(textwrap.dedent(GRID_SCRIPT))
    (tmp_path / "gridtrain.py").write_text(textwrap.dedent(GRID_MODULE))
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}", "SLEEP": str(sleep), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(script), str(log), str(n_jobs)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_two_processes_on_one_cache_train_each_run_once(tmp_path):
    """Issue 12.8: two processes running the same grid trained every run twice; a per-run lock prevents it."""
    log = tmp_path / "log.txt"
    procs = [_start_grid(tmp_path, log, n_jobs=1, sleep=0.4) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    assert sorted(_done_lines(log)) == [str(x) for x in range(6)], "each run trained exactly once"
    for out, _ in outs:  # both got the whole grid
        assert out.split("[", 1)[1].startswith("0.0, 1.0, 2.0, 3.0, 4.0, 5.0")


def test_stale_lock_of_a_killed_process_does_not_block(tmp_path):
    """Issue 12.8: the lock of a run whose process was killed must not block the next process."""
    log = tmp_path / "log.txt"
    first = run_script(tmp_path, "grid", GRID_SCRIPT, str(log), "1", env_extra={"KILL_AT": "0"})
    assert killed(first)
    second = run_script(tmp_path, "grid", GRID_SCRIPT, str(log), "1", timeout=60)
    assert second.returncode == 0, second.stderr
    assert sorted(_done_lines(log)) == [str(x) for x in range(6)]


def test_killed_worker_is_named_by_its_grid_point(tmp_path):
    """Issue 12 (unclear failures): with n_jobs=2 a killed worker gave a bare TerminatedWorkerError.
    Issue 25: the run is tried once more, alone; when its worker dies again it is named and the grid goes on."""
    log = tmp_path / "log.txt"
    proc = run_script(tmp_path, "grid", GRID_SCRIPT, str(log), "2", env_extra={"KILL_AT": "2"})
    assert proc.returncode == 1
    assert "1 of 6 runs failed" in proc.stderr, proc.stderr[-3000:]
    assert "x=2, seed=0: WorkerDied: the worker process training this run died twice" in proc.stderr
    starts = [line.split()[1] for line in log.read_text().splitlines() if line.startswith("start")]
    assert starts.count("2") == 2, "tried once more, then reported"
    assert sorted(set(_done_lines(log))) == ["0", "1", "3", "4", "5"], "the other runs went on"
    records = list((Path(os.environ["KIT_CACHE"]) / "runs" / "train").glob("*.json"))
    assert len(records) == 5, "and are cached"


def test_interrupted_parallel_grid_counts_the_runs_on_disk(tmp_path):
    """Issue 12 (unclear failures): with n_jobs=2 Ctrl-C reported fewer cached runs than there were."""
    log = tmp_path / "log.txt"
    proc = _start_grid(tmp_path, log, n_jobs=2, sleep=0.7)
    import time
    deadline = time.time() + 90
    while time.time() < deadline and (not log.exists() or len(_done_lines(log)) < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    records = list((Path(os.environ["KIT_CACHE"]) / "runs" / "train").glob("*.json"))
    line = next(line for line in err.splitlines() if line.startswith("Interrupted"))
    assert line.startswith(f"Interrupted: {len(records)} of 6 runs are cached"), (line, len(records))


# --- 3. a returned metric never overwrites a grid value -------------------------------------------
def test_metric_named_like_a_grid_setting_is_an_error_naming_the_column():
    """Issue 12.3: a train_fn returning {"lr": 123.0} made every row read lr=123.0."""
    from helpers.experiments import GridRunError, run_grid

    def train(lr, seed):
        return {"lr": 123.0, "score": lr}

    with pytest.raises(GridRunError, match=r"\['lr'\].*overwrite"):
        run_grid(train, {"lr": [0.1, 0.2]}, quiet=True)
    frame = run_grid(train, {"lr": [0.1, 0.2]}, quiet=True, errors="record")
    assert list(frame["lr"]) == [0.1, 0.2] and frame["error"].str.contains("'lr'").all()


@pytest.mark.parametrize("name", ["epochs", "seed", "diverged", "time_s", "cached", "final_val_acc"])
def test_metric_named_like_a_summary_field_is_an_error(name):
    """Issue 12.3: summary fields (epochs, seed, diverged, time_s, cached, final_*) collided the same way."""
    from helpers.experiments import run_grid

    def train(lr, seed):
        return {name: -1.0}

    frame = run_grid(train, {"lr": [0.1]}, quiet=True, errors="record", name=f"m-{name}")
    assert name in frame["error"].iloc[0]


def test_grid_setting_named_like_a_summary_field_keeps_its_value():
    """Issue 12.3: a grid over "epochs" lost its values to the summary's epoch count."""
    from helpers.experiments import run_grid
    from helpers.history import History

    def train(epochs, seed):
        h = History()
        h.append_epoch(epoch=0, train_loss=1.0)  # stopped early after one epoch
        return h

    frame = run_grid(train, {"epochs": [5, 10]}, quiet=True)
    assert list(frame["epochs"]) == [5, 10] and list(frame["run_epochs"]) == [1, 1]


# --- wrong-shaped and corrupt cache records ----------------------------------------------------------
@pytest.mark.parametrize("damage", ["null", "[]", "{}", "no-history", "history-list", "metrics-null", "garbage"])
def test_damaged_cache_record_is_named_and_retrained(damage):
    """Issue 12 (unclear failures): valid JSON of the wrong shape raised AttributeError or gave NaN metrics."""
    from helpers.experiments import run_grid
    from helpers.history import History

    calls = []

    def train(lr, seed):
        calls.append(lr)
        h = History()
        h.append_epoch(epoch=0, train_loss=lr, val_loss=lr)
        return h

    run_grid(train, {"lr": [0.5]}, quiet=True)
    (path,) = (Path(os.environ["KIT_CACHE"]) / "runs" / "train").glob("*.json")
    record = json.loads(path.read_text())
    damaged = {"null": "null", "[]": "[]", "{}": "{}", "garbage": '{"key": ',
               "no-history": json.dumps({k: v for k, v in record.items() if k != "history"}),
               "history-list": json.dumps({**record, "history": [1, 2]}),
               "metrics-null": json.dumps({**record, "metrics": None})}[damage]
    path.write_text(damaged)
    with pytest.warns(UserWarning, match=rf"{path.name}.*damaged.*lr=0.5"):
        frame = run_grid(train, {"lr": [0.5]}, quiet=True)
    assert calls == [0.5, 0.5] and frame["final_train_loss"].iloc[0] == 0.5 and not frame["cached"].iloc[0]
    assert json.loads(path.read_text())["history"] is not None, "the retrained run replaced the damaged record"


# --- an unusable KIT_CACHE names KIT_CACHE -------------------------------------------------------------
def test_kit_cache_that_is_a_file_or_unwritable_names_kit_cache(tmp_path, monkeypatch):
    from helpers.config import cache_dir

    a_file = tmp_path / "cache.txt"
    a_file.write_text("not a folder")
    monkeypatch.setenv("KIT_CACHE", str(a_file))
    with pytest.raises(OSError, match=r"cache\.txt is a file.*KIT_CACHE"):
        cache_dir()
    monkeypatch.setenv("KIT_CACHE", str(a_file / "sub"))
    with pytest.raises(OSError, match="KIT_CACHE"):
        cache_dir()
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        monkeypatch.setenv("KIT_CACHE", str(locked))
        with pytest.raises(OSError, match=r"not writable.*KIT_CACHE"):
            cache_dir()


# --- 4. MSE shapes -------------------------------------------------------------------------------
def test_mse_with_one_output_and_flat_targets_learns_the_line(one_thread):
    """Issue 12.4: (N, 1) outputs and (N,) targets trained on an N×N broadcast loss and ended at MSE ≈ var(y)."""
    import torch
    from torch import nn

    from helpers.data import Split
    from helpers.training import fit

    torch.manual_seed(0)
    x = torch.rand(256, 1) * 2 - 1
    y = 3 * x[:, 0] + 1                       # shape (N,), the natural way to write targets
    model = nn.Linear(1, 1)
    history = fit(model, Split(x, y).loader(32, shuffle=True), 60, loss="mse", lr=0.05, optimizer="adam",
                  val_loader=Split(x, y).loader(256), quiet=True)
    assert history.final("val_loss") < 1e-3, history.final("val_loss")  # var(y) is 3
    assert model.weight.item() == pytest.approx(3, abs=0.05) and model.bias.item() == pytest.approx(1, abs=0.05)


def test_mse_with_mismatched_output_and_target_sizes_is_a_clear_error():
    import torch
    from torch import nn

    from helpers.data import Split
    from helpers.training import fit

    x, y = torch.rand(16, 1), torch.rand(16)
    with pytest.raises(ValueError, match=r"outputs have shape \(8, 2\) but the targets \(8,\)"):
        fit(nn.Linear(1, 2), Split(x, y).loader(8), 1, loss="mse", quiet=True)


# --- 6. settings: lr, numpy scalars, scheduler and weight decay --------------------------------------
def _tiny():
    import torch
    from torch import nn

    from helpers.data import Split

    return nn.Linear(2, 2), Split(torch.rand(8, 2), torch.tensor([0, 1] * 4)).loader(4)


@pytest.mark.parametrize("lr", [math.inf, math.nan, True, "0.1", 0, -1e-3])
def test_learning_rate_that_is_not_a_positive_finite_number_is_refused(lr):
    """Issue 12.6: lr=inf and lr=True were accepted."""
    from helpers.training import fit

    model, loader = _tiny()
    with pytest.raises(ValueError, match="lr"):
        fit(model, loader, 1, lr=lr, quiet=True)


def test_numpy_scalars_are_accepted_as_numbers():
    """Issue 12 (unclear failures): np.float32(0.01) and np.int64(2) were refused with "must be a number"."""
    import numpy as np

    from helpers.callbacks import GradientClipping
    from helpers.training import fit

    model, loader = _tiny()
    history = fit(model, loader, np.int64(2), lr=np.float32(0.01), weight_decay=np.float64(0.0),
                  callbacks=[GradientClipping(np.float32(1.0))], quiet=True)
    assert len(history) == 2 and history.config["lr"] == pytest.approx(0.01)
    import torch
    from helpers.data import BatchLoader
    assert len(BatchLoader(torch.zeros(6, 1), torch.zeros(6), np.int64(4))) == 2


def test_bad_scheduler_kwargs_and_weight_decay_name_the_setting():
    """Issue 12 (unclear failures): a misspelled scheduler_kwargs key or weight_decay="0.1" gave a raw TypeError."""
    from helpers.training import fit

    model, loader = _tiny()
    with pytest.raises(ValueError, match=r"scheduler_kwargs=\{'gama': 0.5\}.*'step'.*gamma"):
        fit(model, loader, 1, scheduler="step", scheduler_kwargs={"gama": 0.5}, quiet=True)
    with pytest.raises(ValueError, match=r"weight_decay must be a finite number; got '0.1'"):
        fit(model, loader, 1, weight_decay="0.1", quiet=True)


# --- 7. a checkpoint save that dies midway ------------------------------------------------------------
CHECKPOINT_SCRIPT = """
    import os, signal, sys
    import torch
    from torch import nn
    from helpers.callbacks import Checkpoint, load_checkpoint
    from helpers.data import Split
    from helpers.training import fit

    path = sys.argv[1]
    torch.manual_seed(0)
    data = Split(torch.rand(32, 4), torch.randint(0, 2, (32,)))
    model = nn.Linear(4, 2)
    fit(model, data.loader(8), 1, callbacks=[Checkpoint(path, monitor="train_loss", save_best_only=False)],
        quiet=True)
    print("saved", flush=True)

    real_save = torch.save
    def dying_save(obj, f, *args, **kwargs):   # writes the first bytes, then the process is killed
        import io
        buffer = io.BytesIO()
        real_save(obj, buffer)
        f.write(buffer.getvalue()[:100])
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    torch.save = dying_save
    fit(model, data.loader(8), 1, callbacks=[Checkpoint(path, monitor="train_loss", save_best_only=False)],
        quiet=True)
"""


def test_checkpoint_killed_during_save_keeps_the_last_good_one(tmp_path):
    """Issue 12.7: a kill during torch.save left an unreadable file where the last good checkpoint was."""
    path = tmp_path / "ckpt.pt"
    proc = run_script(tmp_path, "ckpt", CHECKPOINT_SCRIPT, str(path))
    assert killed(proc) and "saved" in proc.stdout, proc.stderr
    from torch import nn

    from helpers.callbacks import load_checkpoint

    state = load_checkpoint(nn.Linear(4, 2), path)
    assert state["epoch"] == 0 and set(state) >= {"model", "optimizer", "monitor", "value"}


@pytest.mark.parametrize("content", [b"", b"hello, I am text\n", "no-model"])
def test_file_that_is_not_a_checkpoint_says_so(tmp_path, content):
    """Issue 12 (unclear failures): an empty, text, or model-less file gave EOFError/KeyError."""
    import torch
    from torch import nn

    from helpers.callbacks import CheckpointError, load_checkpoint

    path = tmp_path / "x.pt"
    if content == "no-model":
        torch.save({"state_dict": nn.Linear(2, 2).state_dict()}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"x\.pt is not a kit checkpoint"):
        load_checkpoint(nn.Linear(2, 2), path)


# --- 5. damaged data: labels out of range, a header-only CSV --------------------------------------
def _unpacked_fashion(root: Path) -> Path:
    """FashionMNIST stand-ins unpacked (no .gz) in a data folder, as a user who gunzipped them would have."""
    import gzip
    import shutil

    from helpers import standins

    gz = standins.write_fashion_mnist(root / "gz", n_train=60, n_test=20)
    raw = root / "data" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in standins.FASHION_FILES.values():
        with gzip.open(gz / name) as src, open(raw / name[:-3], "wb") as dst:
            shutil.copyfileobj(src, dst)
    return raw


def test_fashion_label_out_of_range_is_a_corrupt_file_named(tmp_path):
    """Issue 12.5: a label byte set to 200 loaded, and train.y.max() was 200."""
    from helpers.data import DataCorruptError, load_fashion_mnist

    raw = _unpacked_fashion(tmp_path)
    assert len(load_fashion_mnist(raw.parent.parent, val_size=10).train) == 50  # intact files load
    labels = raw / "train-labels-idx1-ubyte"
    data = bytearray(labels.read_bytes())
    data[8 + 5] = 200  # IDX header is 8 bytes; the sixth label
    labels.write_bytes(bytes(data))
    with pytest.raises(DataCorruptError, match=r"train-labels-idx1-ubyte has labels outside 0\.\.9 \(e\.g\. 200"):
        load_fashion_mnist(raw.parent.parent, val_size=10)


def test_header_only_validation_csv_is_a_corrupt_file_named(tmp_path):
    """Issue 12.5: a header-only validation.csv failed later, inside fit."""
    from helpers import standins
    from helpers.data import DataCorruptError, load_europe

    folder = standins.write_europe(tmp_path, n_train=100, n_val=50, n_test=50)
    (folder / "validation.csv").write_text(",long,lat,country\n")
    with pytest.raises(DataCorruptError, match=r"validation\.csv has a header but no rows"):
        load_europe(tmp_path)


# --- 9. a stand-in marker in a data folder cannot vouch for a pickle ----------------------------------
class _Payload:
    """Unpickling this creates a file: harmless, and proof that the pickle was executed."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def _hostile_cifar(root: Path, evidence: Path) -> Path:
    """A cifar-10-batches-py folder of crafted pickles plus a KIT_STANDIN.json vouching for their md5s."""
    import pickle

    from helpers import standins

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in standins.CIFAR_FILES:
        (folder / name).write_bytes(pickle.dumps(_Payload(str(evidence))))
    marker = {"generator": "helpers.standins", "dataset": "CIFAR-10", "seed": 0,
              "md5": {name: standins.md5sum(folder / name) for name in standins.CIFAR_FILES}}
    (folder / standins.MARKER).write_text(json.dumps(marker))
    return folder


def test_marker_in_a_data_folder_cannot_make_the_kit_unpickle_a_file(tmp_path, monkeypatch):
    """Issue 12.9: a KIT_STANDIN.json inside cifar-10-batches-py supplied its own md5 list; a crafted file ran."""
    from helpers.data import DataCorruptError, load_cifar10

    evidence = tmp_path / "PWNED"
    _hostile_cifar(tmp_path / "data", evidence)
    monkeypatch.setenv("KIT_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("KIT_PROFILE", "quick")
    with pytest.raises(DataCorruptError, match="torchvision's checksum list"):
        load_cifar10()
    with pytest.raises(DataCorruptError):
        load_cifar10(tmp_path / "data")
    assert not evidence.exists(), "a pickle from the data folder was executed"


def test_marker_cannot_vouch_for_a_crafted_archive(tmp_path, monkeypatch):
    """Issue 12.9: the archive path (cifar-10-python.tar.gz) must not trust a marker beside it either."""
    import tarfile

    from helpers import standins
    from helpers.data import DataCorruptError, load_cifar10

    evidence = tmp_path / "PWNED"
    folder = _hostile_cifar(tmp_path / "build", evidence)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    archive = data_dir / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    (data_dir / standins.MARKER).write_text(json.dumps({"md5": {archive.name: standins.md5sum(archive)}}))
    with pytest.raises(DataCorruptError, match="cifar-10-python.tar.gz"):
        load_cifar10(data_dir)
    assert not evidence.exists()


def test_kit_standins_in_the_cache_still_load():
    """The kit's own stand-ins (smoke profile, benchmarks) live in its cache and keep working."""
    from helpers import standins
    from helpers.config import cache_dir
    from helpers.data import load_cifar10

    root = cache_dir() / "bench-data"
    standins.write_cifar10(root, n_per_batch=10, n_test=20)
    assert len(load_cifar10(root, val_size=10).train) == 40


# --- smoke stand-ins and incomplete FashionMNIST -----------------------------------------------------
def test_corrupt_smoke_standin_is_regenerated(monkeypatch):
    """Issue 12 (unclear failures): after deleting a corrupt stand-in file as advised, 'FashionMNIST not found'."""
    from helpers.config import cache_dir
    from helpers.data import load_fashion_mnist

    monkeypatch.setenv("KIT_PROFILE", "smoke")
    first = load_fashion_mnist()
    raw = cache_dir() / "smoke-data" / "FashionMNIST" / "raw"
    (raw / "train-labels-idx1-ubyte.gz").write_bytes(b"damaged")
    assert len(load_fashion_mnist().train) == len(first.train)   # damaged: written afresh
    (raw / "train-labels-idx1-ubyte.gz").unlink()                # deleted, as the error advises
    again = load_fashion_mnist()
    assert len(again.train) == len(first.train) and (again.train.y == first.train.y).all()


def test_fashion_with_one_file_missing_names_it_and_never_downloads_into_it(tmp_path, monkeypatch):
    """Issue 12 (unclear failures): all four files were listed, and an online attempt unpacked into the folder."""
    from torchvision import datasets

    from helpers.data import DataNotFoundError, load_fashion_mnist

    raw = _unpacked_fashion(tmp_path)
    (raw / "t10k-labels-idx1-ubyte").unlink()
    monkeypatch.setenv("KIT_OFFLINE", "0")
    monkeypatch.setenv("KIT_DATA", str(raw.parent.parent))
    monkeypatch.setattr(datasets.FashionMNIST, "download", lambda self: pytest.fail("tried to download"))
    before = sorted(p.name for p in raw.iterdir())
    with pytest.raises(DataNotFoundError, match=r"missing t10k-labels-idx1-ubyte\.gz \(the other files are there\)"):
        load_fashion_mnist()
    assert sorted(p.name for p in raw.iterdir()) == before


# --- 10. the ImageNet weights file under TORCH_HOME ----------------------------------------------------
def test_hostile_imagenet_weights_file_is_never_unpickled(tmp_path, monkeypatch):
    """Issue 12.10: the weights file was loaded with weights_only=False and its hash checked only on download."""
    import pickle

    import torch

    from helpers import models

    evidence = tmp_path / "PWNED"
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    path = models.imagenet_weights_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps({"conv1.weight": _Payload(str(evidence))}))
    with pytest.raises(models.PretrainedUnavailable, match="sha256 starts with"):
        models.pretrained_resnet18()
    assert not evidence.exists()


def test_imagenet_weights_with_the_right_hash_are_still_read_weights_only(tmp_path, monkeypatch):
    """Even a file whose hash matches its name is read with weights_only=True: a crafted pickle is refused."""
    import hashlib
    import pickle

    import torch

    from helpers import models

    evidence = tmp_path / "PWNED"
    payload = pickle.dumps({"conv1.weight": _Payload(str(evidence))})
    crafted = tmp_path / f"resnet18-{hashlib.sha256(payload).hexdigest()[:8]}.pth"
    crafted.write_bytes(payload)
    monkeypatch.setattr(models, "imagenet_weights_path", lambda: crafted)
    with pytest.raises(models.PretrainedUnavailable):
        models.pretrained_resnet18()
    assert not evidence.exists()
    # A genuine state dict under a name carrying its own hash prefix loads.
    from torchvision.models import resnet18 as tv_resnet18

    genuine = tmp_path / "genuine.pth"
    torch.save(tv_resnet18(weights=None).state_dict(), genuine)
    named = tmp_path / f"resnet18-{hashlib.sha256(genuine.read_bytes()).hexdigest()[:8]}.pth"
    genuine.rename(named)
    monkeypatch.setattr(models, "imagenet_weights_path", lambda: named)
    assert models.pretrained_resnet18().fc.out_features == 1000

"""Same seeds, same numbers on one machine (issue 31): two cold runs of a sheet give identical run records.

A student who runs a sheet again must see the numbers the text was written against. Sheet 1 runs twice in the
smoke profile, each time with a fresh results cache (nothing is reused: every grid, sweep and fit trains again),
the way ``make pdf`` runs it (KIT_THREADS unset: grids on worker processes, the kernel on every usable core).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from helpers.export.execute import execute_notebook

REPO = Path(__file__).resolve().parents[1]
SHEET = REPO / "notebooks" / "01_backprop_autodiff.ipynb"
# What measures the run's duration, not its numbers: the kernel's wall time. Everything else (runs trained and
# cached, every check with its values, the reference rows, seeds, device, CPU, threads) must be identical.
TIMING = ("wall_s",)


def _without_timing(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in TIMING}


def _differences(one: dict, two: dict) -> list[str]:
    """Each field, check or reference row that differs, said in one line."""
    out = [f"{k}: {one.get(k)!r} != {two.get(k)!r}" for k in sorted(set(one) | set(two))
           if k not in ("checks", "reference") and one.get(k) != two.get(k)]
    checks = [(a, b) for a, b in zip(one.get("checks", []), two.get("checks", [])) if a != b]
    out += [f"check {a['claim']!r}: {a['ok']} {a['values']} != {b['ok']} {b['values']}" for a, b in checks]
    if len(one.get("checks", [])) != len(two.get("checks", [])):
        out.append(f"{len(one['checks'])} checks != {len(two['checks'])} checks")
    out += [f"reference {a.get('task')} {a.get('quantity')}: {a.get('this run')} != {b.get('this run')}"
            for a, b in zip(one.get("reference", []), two.get("reference", [])) if a != b]
    return out


@pytest.mark.slow
def test_two_cold_runs_of_sheet_1_in_the_smoke_profile_give_identical_run_records(tmp_path, monkeypatch):
    monkeypatch.delenv("KIT_THREADS", raising=False)     # as make pdf runs it, not one thread as the unit tests do
    records = []
    for name in ("first", "second"):
        monkeypatch.setenv("KIT_CACHE", str(tmp_path / name))
        nb = execute_notebook(SHEET, profile="smoke", timeout=600, progress=None)
        record = nb.metadata["kit"]["record"]
        (tmp_path / f"{name}.run.json").write_text(json.dumps(record, indent=1, ensure_ascii=False))  # to compare by hand
        records.append(_without_timing(record))
    first, second = records
    assert first["runs"]["trained"] > 0, "a cold run trains"
    assert len(first["checks"]) >= 10 and first["torch_threads"] and first["cpu"]
    assert first == second, "the two cold runs differ:\n" + "\n".join(_differences(first, second))


# A sheet's training function, defined in a notebook cell: a grid's worker gets it by value (cloudpickle).
NOTEBOOK_TRAIN = """
import os
import torch
from torch.utils.data import DataLoader, TensorDataset
from helpers.config import seed_everything
from helpers.models import MLP
from helpers.training import fit

# FashionMNIST's shape (784 inputs, 10 classes): wide enough that torch's sums change with the thread count.
_g = torch.Generator().manual_seed(0)
X = torch.randn(1536, 784, generator=_g)
Y = (X @ torch.randn(784, 10, generator=_g)).argmax(1)

def train_wide(width, seed, epochs=2):
    seed_everything(seed)
    model = MLP(784, 10, depth=1, width=width)
    batches = DataLoader(TensorDataset(X[:1024], Y[:1024]), batch_size=256, shuffle=True,
                         generator=torch.Generator().manual_seed(seed))
    history = fit(model, batches, epochs, loss="cross_entropy", lr=0.05,
                  val_loader=DataLoader(TensorDataset(X[1024:], Y[1024:]), batch_size=512), quiet=True)
    return {"history": history, "threads": torch.get_num_threads(), "pid": os.getpid()}
"""
MEASURED = ("time", "peak_mem")   # a History's measurements of the machine (seconds, memory), not of the model


def _numbers(history) -> dict:
    """Everything a History holds about the model, none of what it measures about the machine."""
    return {k: v for k, v in history.to_dict().items() if k not in MEASURED}


def test_a_grid_run_on_a_worker_equals_the_same_run_trained_again_in_the_kernel(notebook, monkeypatch):
    """The grid's winner trained again in the kernel (to keep its model) is the grid's run, number for number,
    though the kernel uses two threads and the grid's workers one each."""
    import torch

    from helpers.experiments import run_grid, train_as_in_grid

    notebook.run(NOTEBOOK_TRAIN)
    monkeypatch.delenv("KIT_THREADS")           # as a sheet runs: the grid on worker processes
    threads = torch.get_num_threads()
    torch.set_num_threads(2)                    # a kernel on two cores
    try:
        grid = run_grid(notebook["train_wide"], {"width": [512, 256]}, n_jobs=2, quiet=True)
        again = train_as_in_grid(notebook["train_wide"], width=512, seed=0)
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)
    worker = grid[grid["width"] == 512].iloc[0]
    assert worker["pid"] != os.getpid() and worker["threads"] == 1, "the grid's run trained on a worker, one thread"
    assert again["pid"] == os.getpid() and again["threads"] == 1 and after == 2, "the rerun: here, on the grid's threads"
    assert _numbers(again["history"]) == _numbers(worker["history"])

"""Tests for helpers.gpu_lab: warm-up excluded, synchronised clocks, robust summaries, Trainer epochs timed."""
from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from helpers import device, gpu_lab
from helpers.data import make_dataloader
from helpers.device import RSS_KIND
from helpers.data import Split, Splits
from helpers.gpu_lab import (NO_GPU, NOT_MEASURED, STANDIN_NOTE, Lab, Timer, Timing, environment_report, lab_table,
                             measure_epochs, measure_step_epochs, measure_transfers, rank_factors, require,
                             speedup_table, step_vs_trainer, throughput, time_fn, unavailable_record)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)


class CountingLoader:
    """A loader of fixed batches that counts what it hands out; the first `slow` batches are slow."""

    def __init__(self, n_batches=4, batch_size=16, slow=0, delay=0.3, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.batch_size = batch_size
        # A learnable task: the class is decided by the sign of the first pixel pair.
        X = torch.randn(n_batches * batch_size, 3, 4, 4, generator=g)
        y = (X[:, 0, 0, 0] > 0).long()
        self.batches = list(zip(X.split(batch_size), y.split(batch_size)))
        self.given, self.slow, self.delay = 0, slow, delay

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        for xb, yb in self.batches:
            if self.given < self.slow:
                time.sleep(self.delay)
            self.given += 1
            yield xb, yb


def tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(48, 2))


def test_time_fn_runs_warmup_untimed():
    calls = []

    def work():
        calls.append(1)
        # The warm-up calls are slow (like a first CUDA call); timed calls are fast.
        time.sleep(0.15 if len(calls) <= 3 else 0.005)

    timing = time_fn(work, repeats=4, warmup=3, device="cpu")
    assert len(calls) == 7
    assert len(timing.times) == 4 and timing.warmup == 3
    assert timing.median < 0.1, "a warm-up call leaked into the timed runs"
    assert timing.clock == "perf_counter"


def test_median_and_spread_on_sleep_workload():
    durations = iter([0.02, 0.04, 0.03, 0.05, 0.25])
    timing = time_fn(lambda: time.sleep(next(durations)), repeats=5, warmup=0, device="cpu")
    # The slow outlier moves neither the median (0.04) nor the IQR (0.05 - 0.03).
    assert 0.039 <= timing.median <= 0.055
    assert 0.01 <= timing.spread <= 0.03
    assert timing.summary()["max_s"] >= 0.25
    assert timing.summary()["repeats"] == 5


def test_timing_summary_exact_values():
    t = Timing(times=[1.0, 2.0, 3.0, 4.0, 100.0], warmup=1, clock="perf_counter", device="cpu")
    assert t.median == 3.0 and t.spread == 2.0 and t.mean == 22.0
    assert Timing(times=[5.0], warmup=0, clock="perf_counter", device="cpu").spread == 0.0


def test_time_fn_rejects_bad_arguments():
    with pytest.raises(ValueError, match="repeats"):
        time_fn(lambda: None, repeats=0)
    with pytest.raises(ValueError, match="warmup"):
        time_fn(lambda: None, warmup=-1)


def test_timer_waits_for_the_device_before_stopping(monkeypatch):
    synced = []

    def slow_sync(device=None):
        # Stands in for queued GPU work that finishes only when we synchronise.
        synced.append(time.perf_counter())
        if len(synced) == 2:
            time.sleep(0.1)

    monkeypatch.setattr(gpu_lab, "synchronize", slow_sync)
    with Timer("cpu") as t:
        pass
    assert len(synced) == 2, "the timer must synchronise when it starts and when it stops"
    assert t.elapsed >= 0.1, "the clock stopped before the device finished"


def test_throughput():
    assert throughput(1000, 2.0) == 500.0
    assert math.isnan(throughput(10, 0.0))


def test_measure_epochs_excludes_warmup_and_learns():
    # One short run first: a process's very first training steps pay one-off costs of their own.
    measure_epochs(tiny_model(), CountingLoader(n_batches=2), device="cpu", epochs=1, warmup_steps=2)
    # Each warm-up batch sleeps 1.5 s: any of them inside a timed epoch makes that epoch > 1.5 s,
    # far above a loaded machine's noise (a tiny epoch here takes well under a second).
    loader = CountingLoader(n_batches=4, batch_size=16, slow=3, delay=1.5)
    model = tiny_model()
    with torch.no_grad():
        before = nn.functional.cross_entropy(model(torch.cat([b[0] for b in loader.batches])),
                                             torch.cat([b[1] for b in loader.batches])).item()
    loader.given = 0
    rec = measure_epochs(model, loader, device="cpu", epochs=3, warmup_steps=3, lr=0.05)
    assert loader.given == 3 + 3 * 4, "warm-up steps plus three full epochs"
    assert len(rec["epoch_times"]) == 3
    assert max(rec["epoch_times"]) < 1.4, "a slow warm-up batch was timed"
    assert rec["images_per_epoch"] == 64
    assert rec["images_per_s"] == pytest.approx(64 / rec["epoch_time_median"])
    assert rec["epoch_time_spread"] >= 0
    assert rec["peak_mem_kind"] == RSS_KIND and rec["peak_mem_mb"] > 0
    assert rec["final_loss"] < before, "training did not reduce the loss"
    assert rec["device"] == "cpu" and rec["batch_size"] == 16 and rec["amp_dtype"] == "float32"


def test_measure_epochs_warmup_cycles_a_short_loader():
    loader = CountingLoader(n_batches=2)
    measure_epochs(tiny_model(), loader, device="cpu", epochs=1, warmup_steps=5)
    assert loader.given == 5 + 2


def test_measure_epochs_amp_on_cpu_uses_bfloat16():
    rec = measure_epochs(tiny_model(), CountingLoader(), device="cpu", epochs=1, warmup_steps=1, amp=True)
    assert rec["amp"] and rec["amp_dtype"] == "bfloat16"
    assert math.isfinite(rec["final_loss"])


def test_environment_report_keys():
    env = environment_report("cpu", amp=True)
    for key in ["device", "device_name", "gpu", "torch", "cuda", "cudnn", "cpu_threads", "cpu_cores",
                "amp", "amp_dtype", "tf32_matmul", "tf32_cudnn"]:
        assert key in env, key
    assert env["torch"] == torch.__version__
    assert env["cpu_threads"] == torch.get_num_threads()
    assert env["amp"] is True and env["amp_dtype"] == "bfloat16"
    assert env["tf32_matmul"] is False, "TF32 is a GPU feature; it cannot be on for a CPU run"


@pytest.mark.skipif(torch.cuda.is_available() or torch.backends.mps.is_available(), reason="this machine has a GPU")
def test_no_gpu_is_reported_not_faked(monkeypatch):
    monkeypatch.delenv("KIT_DEVICE", raising=False)
    assert device.accelerator() is None
    assert environment_report()["gpu"] == NO_GPU
    with pytest.raises(ValueError, match="CUDA is not available"):
        Timer("cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        measure_epochs(tiny_model(), CountingLoader(), device="cuda")
    rec = unavailable_record("MediumNet on GPU", batch_size=64)
    assert rec["note"] == NO_GPU and rec["batch_size"] == 64 and math.isnan(rec["epoch_time_median"])


@needs_cuda
def test_cuda_timer_waits_for_kernels():
    a = torch.randn(4096, 4096, device="cuda")
    timing = time_fn(lambda: a @ a, repeats=3, warmup=1, device="cuda")
    assert timing.clock == "cuda events"
    # 2·4096³ flops cannot finish in 10 µs on any GPU: an unsynchronised clock would say it did.
    assert timing.median > 1e-5


def test_measure_epochs_times_the_trainers_own_epochs(monkeypatch):
    # The lab has no loop of its own: every step is a batch of the Trainer's loop.
    from helpers.training import Trainer

    steps = []
    original = Trainer.emit
    monkeypatch.setattr(Trainer, "emit", lambda self, event: (event == "after_batch" and steps.append(1)) or
                        original(self, event))
    data = torch.utils.data.TensorDataset(torch.randn(40, 3, 4, 4), torch.arange(40) % 2)
    rec = measure_epochs(tiny_model(), make_dataloader(data, batch_size=8), device="cpu", epochs=2, warmup_steps=3)
    assert len(steps) == 3 + 2 * 5 and rec["images_per_epoch"] == 40 and rec["loader"] == "DataLoader"


# --- the lab's pieces -----------------------------------------------------------------------------

def _tiny_lab(real: bool, n: int = 64) -> Lab:
    """A Lab over random CIFAR-shaped images: a per-sample TensorDataset and the same images as Splits."""
    g = torch.Generator().manual_seed(0)
    X, y = torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)
    split = Split(X, y)
    return Lab(torch.utils.data.TensorDataset(X, y), Splits(split, split, split, [str(i) for i in range(10)], "t"), real)


def test_lab_measures_the_trainers_epochs_and_adds_accuracy_only_on_real_data(one_thread):
    common = dict(batch_size=32, train_limit=64, epochs=1, warmup_steps=1)
    real = _tiny_lab(real=True).measure("SmallNet", torch.device("cpu"), accuracy=True, **common)
    assert real["images_per_epoch"] == 64 and real["model"] == "SmallNet" and real["params"] > 0
    assert 0.0 <= real["test_acc"] <= 1.0
    standin = _tiny_lab(real=False).measure("SmallNet", torch.device("cpu"), accuracy=True, pipeline="tensors", **common)
    assert math.isnan(standin["test_acc"]) and standin["pipeline"] == "tensors" and standin["images_per_epoch"] == 64


def test_lab_without_a_device_says_not_measured():
    rec = _tiny_lab(real=True).measure("LargeNet", None, batch_size=8, train_limit=8, epochs=1, warmup_steps=0)
    assert rec["note"] == NOT_MEASURED and math.isnan(rec["epoch_time_median"]) and rec["model"] == "LargeNet"
    with pytest.raises(ValueError, match="Unknown model"):
        _tiny_lab(real=True).measure("HugeNet", torch.device("cpu"), batch_size=8, train_limit=8, epochs=1,
                                     warmup_steps=0)


def test_lab_keeps_warnings_of_loader_creation_out_of_the_output(monkeypatch, one_thread):
    real_factory = gpu_lab.make_dataloader

    def warning_factory(*args, **kwargs):
        # Stands in for PyTorch's "more workers than cores" warning, raised when the DataLoader is built.
        warnings.warn("This DataLoader will create 8 worker processes in total.", UserWarning)
        return real_factory(*args, **kwargs)

    monkeypatch.setattr(gpu_lab, "make_dataloader", warning_factory)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning that escapes the Lab fails the test
        rec = _tiny_lab(real=False).measure("SmallNet", torch.device("cpu"), batch_size=32, train_limit=32,
                                            epochs=1, warmup_steps=0)
    assert rec["warnings"] == ["This DataLoader will create 8 worker processes in total."]


def test_lab_table_formats_numbers_and_says_what_is_missing():
    df = pd.DataFrame({"model": ["SmallNet"], "epoch_time_median": [1234.5678], "gpu_s": [float("nan")],
                       "test_acc": [float("nan")], "params": [376_000]})
    styler = lab_table(df, ["model", "epoch_time_median", "gpu_s", "test_acc", "params"], standin=True, caption="Part 1.")
    row = styler.data.iloc[0].tolist()
    assert row == ["SmallNet", "1,235", NOT_MEASURED, "real data only", "376,000"]
    assert list(styler.data.columns) == ["model", "epoch (s)", "GPU epoch (s)", "test accuracy", "parameters"]
    assert styler.caption == "Part 1. " + STANDIN_NOTE
    assert lab_table(df, ["model"], standin=False).caption is None


def test_speedup_table_and_ranking():
    records = pd.DataFrame({"model": ["SmallNet", "SmallNet", "LargeNet", "LargeNet"],
                            "label": ["CPU", "GPU", "CPU", "GPU"], "epoch_time_median": [2.0, 1.0, 30.0, 1.5],
                            "images_per_epoch": [100, 100, 20, 20]})
    speed = speedup_table(records).set_index("model")
    assert speed["speedup"].tolist() == [2.0, 20.0] and speed.loc["LargeNet", "images_per_epoch"] == 20
    ranked = rank_factors({"workers": pd.Series({0: 10.0, 2: 9.0}), "device": pd.Series({"CPU": 8.0, "GPU": float("nan")}),
                           "batch": pd.Series({16: 20.0, 1024: 5.0})})
    assert ranked["factor"].tolist() == ["batch", "workers", "device"]  # unmeasured last
    assert ranked["effect"][0] == 4.0 and ranked["fastest"][0] == "1024" and ranked["slowest"][2] == NOT_MEASURED


def test_require_names_the_missing_section():
    require({"part1": 1}, part1="Part 1")
    with pytest.raises(RuntimeError, match="“Part 2”"):
        require({"part1": 1}, part1="Part 1", part2="Part 2")


def test_measure_transfers_without_cuda_touches_nothing():
    class Exploding:
        def __iter__(self):
            raise AssertionError("the loader must not be read when there is nothing to measure")

    for device in (None, torch.device("cpu")):
        result = measure_transfers(Exploding(), device)
        assert math.isnan(result["pageable_s"]) and result["note"] == NOT_MEASURED


@needs_cuda
def test_measure_transfers_pinned_and_pageable_on_cuda():
    data = torch.utils.data.TensorDataset(torch.randn(512, 3, 32, 32), torch.zeros(512, dtype=torch.long))
    result = measure_transfers(make_dataloader(data, batch_size=64), torch.device("cuda"), repeats=2)
    assert result["megabytes"] == pytest.approx(512 * (3 * 32 * 32 * 4 + 8) / 1e6)
    assert result["pageable_s"] > 0 and result["pinned_s"] > 0


# --- a hand-written step under the lab's clock (Part 5) --------------------------------------------

def plain_step(model, loss_fn, optimizer, scaler, xb, yb, dtype):
    """A mixed-precision step as Part 5 asks for it."""
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(xb.device.type, dtype=dtype, enabled=dtype is not None):
        loss = loss_fn(model(xb), yb)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


def test_measure_step_epochs_excludes_warmup_and_learns():
    calls = []

    def counting_step(*args):
        calls.append(args[-1])  # the dtype the lab passes
        return plain_step(*args)

    loader = CountingLoader(n_batches=4, batch_size=16, slow=2, delay=1.5)
    rec = measure_step_epochs(counting_step, tiny_model(), loader, device="cpu", epochs=3, warmup_steps=2, lr=0.05)
    assert loader.given == 2 + 3 * 4 and len(calls) == 14, "warm-up steps plus three full epochs"
    assert max(rec["epoch_times"]) < 1.4, "a slow warm-up batch was timed"
    assert rec["images_per_epoch"] == 64 and rec["epochs"] == 3 and rec["amp_dtype"] == "float32"
    assert set(calls) == {None}, "float32: no autocast dtype"
    assert rec["peak_mem_kind"] == RSS_KIND and math.isfinite(rec["final_loss"])


def test_measure_step_epochs_passes_the_devices_amp_policy():
    seen = []

    def spy(model, loss_fn, optimizer, scaler, xb, yb, dtype):
        seen.append((dtype, scaler.is_enabled()))
        return plain_step(model, loss_fn, optimizer, scaler, xb, yb, dtype)

    rec = measure_step_epochs(spy, tiny_model(), CountingLoader(), device="cpu", epochs=1, warmup_steps=0, amp=True)
    assert set(seen) == {(torch.bfloat16, False)}, "the CPU's policy: bfloat16 autocast, no loss scaling"
    assert rec["amp"] and rec["amp_dtype"] == "bfloat16"


def test_measure_step_epochs_stops_its_memory_meter_when_the_step_raises():
    import threading

    def unwritten(*args):
        raise NotImplementedError("Part 5: write amp_step")

    before = threading.active_count()
    with pytest.raises(NotImplementedError):
        measure_step_epochs(unwritten, tiny_model(), CountingLoader(), device="cpu", epochs=1, warmup_steps=1)
    assert threading.active_count() == before


def test_step_vs_trainer_is_exact_on_the_cpu_and_catches_a_wrong_step():
    assert step_vs_trainer(plain_step, "cpu") < 1e-6

    def no_autocast(model, loss_fn, optimizer, scaler, xb, yb, dtype):
        return plain_step(model, loss_fn, optimizer, scaler, xb, yb, None)

    assert step_vs_trainer(no_autocast, "cpu") > 1e-6, "float32 is not the Trainer's bfloat16 autocast"


def test_lab_times_a_hand_written_step(one_thread):
    rec = _tiny_lab(real=False).measure("SmallNet", torch.device("cpu"), batch_size=32, train_limit=64, epochs=1,
                                        warmup_steps=1, amp=True, step=plain_step)
    assert rec["images_per_epoch"] == 64 and rec["amp_dtype"] == "bfloat16" and rec["model"] == "SmallNet"


def test_lab_on_cifar10_trains_on_the_whole_training_set(monkeypatch):
    from helpers.data import cifar10_or_standins

    monkeypatch.setenv("KIT_PROFILE", "smoke")
    root, real = cifar10_or_standins()
    lab = Lab.cifar10(root, real)
    n = 5 * 60  # the smoke stand-ins: five batches of 60 images, like CIFAR-10's five of 10,000
    assert len(lab.train_set) == len(lab.splits.train) == n and len(lab.splits.val) == 0
    assert len(lab.splits.test) > 0

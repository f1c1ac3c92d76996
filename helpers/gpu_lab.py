"""Sheet 4's GPU lab: synchronised timers, throughput, the environment report, timed Trainer epochs.

The four classic mistakes this module avoids, and the lab teaches:

1. CUDA work is asynchronous: a Python clock stopped right after ``loss.backward()`` measures
   how long it took to *queue* the kernels, not to run them. Every timer here waits for the
   device (CUDA events on a GPU, ``synchronize`` + ``perf_counter`` elsewhere).
2. The first steps pay one-off costs (CUDA context, cuDNN autotuning, allocator growth, lazy
   module init): warm-up steps run before the clock starts and are never counted.
3. One measurement is an anecdote: repeat, report the median and the spread.
4. ``max_memory_allocated`` is a high-water mark since the last reset: reset it before each run.
   On the CPU there is no such counter for tensors, so we report the process's resident memory
   (RSS) and say so. Both live in ``helpers.device`` (the Trainer measures every run that way).

The epochs are the Trainer's own (``measure_epochs`` fits with an ``EpochTimer`` callback): the lab
times the loop the sheets train with, not a second one. Device, precision and memory come from
``helpers.device``; the DataLoader factory from ``helpers.data``.
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from .callbacks import Callback
from .device import amp_dtype, get_device, synchronize
from .training import Trainer

NO_GPU = "no GPU"


def device_name(device: torch.device | str | None = None) -> str:
    """Return a human name for a device, e.g. 'NVIDIA H100 80GB HBM3' or 'CPU (2 cores)'."""
    device = get_device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple {platform.machine()} GPU (mps)"
    cpu = platform.processor() or platform.machine() or "CPU"
    return f"{cpu} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


# --- timing --------------------------------------------------------------------------

class Timer:
    """Context manager measuring the wall time of a block on a device, synchronised at both ends.

    >>> with Timer(device) as t:
    ...     train_one_epoch()
    >>> t.elapsed   # seconds
    """

    def __init__(self, device: torch.device | str | None = None):
        self.device = get_device(device)
        self.clock = "cuda events" if self.device.type == "cuda" else "perf_counter"
        self.elapsed: float = float("nan")

    def __enter__(self) -> "Timer":
        # Earlier queued work must not leak into this measurement.
        synchronize(self.device)
        if self.device.type == "cuda":
            self._start = torch.cuda.Event(enable_timing=True)
            self._end = torch.cuda.Event(enable_timing=True)
            self._start.record()
        else:
            self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            self._end.record()
            self._end.synchronize()  # the end event has really happened on the GPU
            self.elapsed = self._start.elapsed_time(self._end) / 1000.0
        else:
            synchronize(self.device)
            self.elapsed = time.perf_counter() - self._t0


@dataclass
class Timing:
    """Repeated measurements of one workload (seconds), warm-up runs excluded."""

    times: list[float]
    warmup: int
    clock: str
    device: str

    @property
    def median(self) -> float:
        return float(np.median(self.times))

    @property
    def spread(self) -> float:
        """Interquartile range (75th − 25th percentile): robust to one slow outlier."""
        return _spread(self.times)

    @property
    def mean(self) -> float:
        return float(np.mean(self.times))

    @property
    def std(self) -> float:
        return float(np.std(self.times, ddof=1)) if len(self.times) > 1 else 0.0

    def summary(self) -> dict:
        """Median, spread (IQR), min, max, repeats, warm-up runs, clock and device as a dict."""
        return {"median_s": self.median, "spread_s": self.spread, "min_s": min(self.times),
                "max_s": max(self.times), "repeats": len(self.times), "warmup": self.warmup,
                "clock": self.clock, "device": self.device}


def _spread(values: list[float]) -> float:
    """Interquartile range of the values (0 for a single value)."""
    if len(values) < 2:
        return 0.0
    q75, q25 = np.percentile(values, [75, 25])
    return float(q75 - q25)


def time_fn(fn: Callable[[], object], *, repeats: int = 5, warmup: int = 1,
            device: torch.device | str | None = None) -> Timing:
    """Time ``fn()`` ``repeats`` times after ``warmup`` untimed calls, synchronising the device."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}; use e.g. repeats=5.")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}; use 0 to skip warm-up.")
    device = get_device(device)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        with Timer(device) as t:
            fn()
        times.append(t.elapsed)
    return Timing(times=times, warmup=warmup, clock=Timer(device).clock, device=str(device))


def throughput(n_items: int, seconds: float) -> float:
    """Return items per second (e.g. images/s); NaN when the time is not positive."""
    return float(n_items) / seconds if seconds > 0 else float("nan")


# --- environment ---------------------------------------------------------------------

def _tf32() -> tuple[bool, bool]:
    """Whether TF32 is allowed for CUDA matmuls and cuDNN convolutions."""
    matmul = bool(torch.backends.cuda.matmul.allow_tf32) or torch.get_float32_matmul_precision() != "highest"
    return matmul, bool(torch.backends.cudnn.allow_tf32)


def environment_report(device: torch.device | str | None = None, amp: bool = False) -> dict:
    """Return what a timing depends on: device, versions, CPU threads, AMP and TF32 settings."""
    device = get_device(device)
    tf32_matmul, tf32_cudnn = _tf32()
    on_cuda = device.type == "cuda"
    report = {
        "device": str(device),
        "device_name": device_name(device),
        "gpu_available": torch.cuda.is_available() or torch.backends.mps.is_available(),
        "gpu": (torch.cuda.get_device_name(0) if torch.cuda.is_available()
                else "Apple mps" if torch.backends.mps.is_available() else NO_GPU),
        "gpu_memory_gb": (round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1)
                          if on_cuda else float("nan")),
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "none (CPU build)",
        "cudnn": (str(torch.backends.cudnn.version()) if torch.backends.cudnn.is_available() else "none"),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "cpu": platform.processor() or platform.machine(),
        "cpu_cores": os.cpu_count(),
        "cpu_threads": torch.get_num_threads(),
        "amp": bool(amp),
        "amp_dtype": str(amp_dtype(device)).removeprefix("torch.") if amp else "none (fp32)",
        # TF32 only exists on Ampere+ GPUs; on the CPU the flags exist but change nothing.
        "tf32_matmul": tf32_matmul and on_cuda,
        "tf32_cudnn": tf32_cudnn and on_cuda,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    return report


# --- measuring training epochs -------------------------------------------------------

def cpu_bf16_native() -> bool:
    """True when this CPU has bfloat16 instructions (AVX512-BF16/AMX); without them bf16 is emulated and slow."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - depends on the torch build
        return False


def cap_workers(values: list[int], cores: int | None = None) -> tuple[list[int], str]:
    """Keep the worker counts a machine with ``cores`` CPU cores can run; return them and a note on what was dropped."""
    cores = cores or os.cpu_count() or 1
    if any(v < 0 for v in values):
        raise ValueError(f"num_workers must be >= 0, got {values}.")
    kept = [v for v in values if v <= cores]
    dropped = [v for v in values if v > cores]
    note = (f"Skipped num_workers = {', '.join(map(str, dropped))}: this machine has {cores} CPU cores, and more "
            f"worker processes than cores only compete with the training process for them." if dropped else "")
    return kept, note


def _batches(loader: Iterable, n: int) -> Iterator:
    """Yield n batches from the loader, starting over when it runs out."""
    given = 0
    while given < n:
        empty = True
        for batch in loader:
            empty = False
            yield batch
            given += 1
            if given >= n:
                return
        if empty:
            raise ValueError("The loader yields no batches; check the data set size and batch_size.")


class EpochTimer(Callback):
    """Warm up with ``warmup_steps`` untimed Trainer steps, then time every epoch on the device's clock."""

    def __init__(self, loader: Iterable, warmup_steps: int = 0):
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}.")
        self.loader, self.warmup_steps = loader, warmup_steps
        self.times: list[float] = []
        self.samples: list[int] = []  # samples trained on in each timed epoch
        self.clock = ""

    def on_fit_start(self, trainer: Trainer) -> None:
        self.times, self.samples = [], []
        if self.warmup_steps:  # one-off costs (allocator, cuDNN autotuning, lazy init) paid outside the clock
            trainer.train_epoch(list(_batches(self.loader, self.warmup_steps)))
            trainer.history.step_loss.clear()

    def on_epoch_start(self, trainer: Trainer) -> None:
        self._timer = Timer(trainer.device).__enter__()
        self.clock = self._timer.clock

    def on_epoch_end(self, trainer: Trainer) -> None:
        self._timer.__exit__(None, None, None)
        self.times.append(self._timer.elapsed)
        self.samples.append(trainer.epoch_samples)


def measure_epochs(model: nn.Module, loader: Iterable, *, device: torch.device | str | None = None,
                   epochs: int = 3, warmup_steps: int = 5, optimizer: str = "adam", lr: float = 1e-3,
                   amp: bool = False, label: str | None = None) -> dict:
    """Train with the Trainer for ``epochs`` timed epochs after ``warmup_steps`` untimed steps; return a tidy record.

    The record holds the epoch times, their median and spread (IQR), images/s, the run's peak memory
    (warm-up included) with its kind, the last epoch's mean loss and the settings.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}.")
    device = get_device(device)
    timer = EpochTimer(loader, warmup_steps)
    trainer = Trainer(model, optimizer=optimizer, lr=lr, loss="cross_entropy", device=device, amp=amp,
                      callbacks=[timer], quiet=True)
    history = trainer.fit(loader, epochs)
    times, n_images, mem = timer.times, timer.samples[-1], trainer.memory
    median = float(np.median(times))
    return {
        "label": label,
        "device": str(device),
        "device_name": device_name(device),
        "model": type(model).__name__,
        "batch_size": getattr(loader, "batch_size", None),
        "num_workers": getattr(loader, "num_workers", 0),
        "loader": type(loader).__name__,
        "amp": amp,
        "amp_dtype": str(amp_dtype(device)).removeprefix("torch.") if amp else "float32",
        "warmup_steps": warmup_steps,
        "epochs": epochs,
        "images_per_epoch": n_images,
        "epoch_times": times,
        "epoch_time_median": median,
        "epoch_time_spread": _spread(times),
        "epoch_time_min": float(min(times)),
        "images_per_s": throughput(n_images, median),
        "peak_mem_mb": mem.peak_mb,
        "peak_mem_increase_mb": mem.increase_mb,
        "peak_mem_kind": mem.kind,
        "final_loss": history.final("train_loss"),
        "clock": timer.clock,
        "note": "",
    }


def unavailable_record(label: str | None = None, reason: str = NO_GPU, **settings) -> dict:
    """A record for a measurement that could not be made (e.g. no GPU): NaN numbers, the reason as note."""
    nan = float("nan")
    record = {"label": label, "device": reason, "device_name": reason, "epoch_times": [],
              "epoch_time_median": nan, "epoch_time_spread": nan, "epoch_time_min": nan,
              "images_per_s": nan, "peak_mem_mb": nan, "peak_mem_increase_mb": nan,
              "peak_mem_kind": reason, "final_loss": nan, "note": reason}
    record.update(settings)
    return record


__all__ = ["NO_GPU", "Timer", "Timing", "EpochTimer", "device_name", "time_fn", "throughput", "environment_report",
           "measure_epochs", "unavailable_record", "cpu_bf16_native", "cap_workers"]

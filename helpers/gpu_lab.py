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

The epochs are the Trainer's own (``measure_epochs`` fits with an ``EpochTimer`` callback, which only
listens to the fit's events): the lab times the loop the sheets train with, not a second one. The one
exception is a step the sheet writes itself (Part 5's mixed-precision step, the student's exercise):
``measure_step_epochs`` calls it batch by batch under the same clock, warm-up and memory meter. Device,
precision (the autocast dtype, whether a GradScaler) and memory come from ``helpers.device``; the
DataLoader factory from ``helpers.data``.
"""
from __future__ import annotations

import math
import os
import platform
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset

from .callbacks import Callback
from .config import seed_everything, torch_generator
from .data import Split, Splits, cifar10_datasets, load_cifar10, make_dataloader
from .device import CUDA_KIND, MemoryMeter, amp_dtype, get_device, grad_scaler, run_memory_kind, synchronize
from .machine import cpu_model
from .models import LargeNet, MediumNet, SmallNet, count_parameters
from .training import Trainer, evaluate, fit, make_optimizer

NO_GPU = "no GPU"
NOT_MEASURED = "not measured: no GPU"
STANDIN_NOTE = "Stand-in data: timings and memory are valid, losses and accuracies are not."
MODELS = {"SmallNet": SmallNet, "MediumNet": MediumNet, "LargeNet": LargeNet}


def device_name(device: torch.device | str | None = None) -> str:
    """Return a human name for a device, e.g. 'NVIDIA H100 80GB HBM3' or 'CPU (2 cores)'."""
    device = get_device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple {platform.machine()} GPU (mps)"
    return f"{cpu_model()} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


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
        "cpu": cpu_model(),
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
    """Time every epoch after the first ``skip`` on the device's clock, and count the samples each one trained on."""

    def __init__(self, skip: int = 0):
        if skip < 0:
            raise ValueError(f"skip must be >= 0, got {skip}.")
        self.skip = skip
        self.times: list[float] = []
        self.samples: list[int] = []  # samples trained on in each timed epoch
        self.clock = ""

    def before_fit(self, trainer: Trainer) -> None:
        self.times, self.samples, self._timer = [], [], None

    def before_epoch(self, trainer: Trainer) -> None:
        if trainer.epoch >= self.skip:
            self._timer, self._samples = Timer(trainer.device).__enter__(), 0
            self.clock = self._timer.clock

    def after_batch(self, trainer: Trainer) -> None:
        if self._timer is not None:
            self._samples += len(trainer.yb)

    def after_epoch(self, trainer: Trainer) -> None:
        if self._timer is not None:
            self._timer.__exit__(None, None, None)
            self.times.append(self._timer.elapsed)
            self.samples.append(self._samples)
            self._timer = None


class _WarmupFirst:
    """A loader whose first pass is ``steps`` batches (the warm-up) and every later pass the whole ``loader``."""

    def __init__(self, loader: Iterable, steps: int):
        self.loader, self.steps, self.passes = loader, steps, 0
        self.batch_size = getattr(loader, "batch_size", None)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator:
        self.passes += 1
        return _batches(self.loader, self.steps) if self.passes == 1 else iter(self.loader)


def measure_epochs(model: nn.Module, loader: Iterable, *, device: torch.device | str | None = None,
                   epochs: int = 3, warmup_steps: int = 5, optimizer: str = "adam", lr: float = 1e-3,
                   amp: bool = False, label: str | None = None) -> dict:
    """Train with the Trainer for ``epochs`` timed epochs after ``warmup_steps`` untimed steps; return a tidy record.

    The warm-up is a first, untimed epoch of ``warmup_steps`` batches (one-off costs: allocator, cuDNN
    autotuning, lazy init), so the same fit times the real epochs with an ``EpochTimer``. The record holds
    the epoch times, their median and spread (IQR), images/s, the run's peak memory (warm-up included)
    with its kind, the last epoch's mean loss and the settings.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}.")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}.")
    device = get_device(device)
    warm = 1 if warmup_steps else 0
    timer = EpochTimer(skip=warm)
    trainer = Trainer(model, optimizer=optimizer, lr=lr, loss="cross_entropy", device=device, amp=amp,
                      callbacks=[timer], quiet=True)
    history = trainer.fit(_WarmupFirst(loader, warmup_steps) if warm else loader, epochs + warm)
    return _record(label, device, model, loader, amp, warmup_steps, timer.times, timer.samples[-1], trainer.memory,
                   history.final("train_loss"), timer.clock)


def _record(label, device, model, loader, amp, warmup_steps, times, n_images, mem, final_loss, clock) -> dict:
    """The tidy record of one measured run (``measure_epochs``, ``measure_step_epochs``)."""
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
        "epochs": len(times),
        "images_per_epoch": n_images,
        "epoch_times": times,
        "epoch_time_median": median,
        "epoch_time_spread": _spread(times),
        "epoch_time_min": float(min(times)),
        "images_per_s": throughput(n_images, median),
        "peak_mem_mb": mem.peak_mb,
        "peak_mem_increase_mb": mem.increase_mb,
        "peak_mem_kind": mem.kind,
        "final_loss": final_loss,
        "clock": clock,
        "note": "",
    }


def measure_step_epochs(step: Callable, model: nn.Module, loader: Iterable, *,
                        device: torch.device | str | None = None, epochs: int = 3, warmup_steps: int = 5,
                        amp: bool = False, lr: float = 1e-3, label: str | None = None) -> dict:
    """Train with a hand-written training step for ``epochs`` timed epochs after ``warmup_steps`` untimed steps.

    ``step(model, loss_fn, optimizer, scaler, xb, yb, dtype)`` does one update and returns the batch's loss
    (Part 5's exercise). The device's precision policy (``helpers.device``) gives ``dtype``, the autocast
    dtype (None for float32), and ``scaler``, a GradScaler (disabled where mixed precision needs none or
    ``amp`` is off); the optimizer is Adam, the loss cross-entropy. Batches are moved to the device here,
    the clock, warm-up and memory meter are ``measure_epochs``'s, and so is the record.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}.")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}.")
    device = get_device(device)
    model = model.to(device).train()
    optimizer, loss_fn = make_optimizer("adam", model.parameters(), lr), nn.CrossEntropyLoss()
    dtype, scaler = (amp_dtype(device) if amp else None), grad_scaler(device, amp)

    def train(batches: Iterable) -> tuple[list[torch.Tensor], int]:
        losses, n = [], 0
        for xb, yb in batches:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            loss = step(model, loss_fn, optimizer, scaler, xb, yb, dtype)
            losses.append(torch.as_tensor(loss).detach().float().reshape(()))  # kept on the device: no sync
            n += len(yb)
        return losses, n

    meter = MemoryMeter(device).start()
    times, losses, n_images, clock = [], [], 0, ""
    try:
        if warmup_steps:
            train(_batches(loader, warmup_steps))
        for _ in range(epochs):
            with Timer(device) as timer:
                losses, n_images = train(loader)
            times.append(timer.elapsed)
            clock = timer.clock
    finally:
        mem = meter.stop()  # also when the step raises: the sampling thread ends with the run
    final_loss = torch.stack([loss.to(losses[0].device) for loss in losses]).mean().item() if losses else float("nan")
    return _record(label, device, model, loader, amp, warmup_steps, times, n_images, mem, final_loss, clock)


def step_vs_trainer(step: Callable, device: torch.device | str | None = None, *, steps: int = 4,
                    batch_size: int = 8, seed: int = 0) -> float:
    """Train two SmallNets from the same weights on the same random batches, one with ``step`` in mixed
    precision and one with the Trainer's ``amp=True``; return the largest difference of their parameters.

    Both use the device's precision policy (``helpers.device``), so a correct step gives (nearly) the Trainer's
    weights: exactly on the CPU, up to the GPU's non-deterministic kernels on CUDA.
    """
    device = get_device(device)
    g = torch_generator(seed)
    batches = [(torch.randn(batch_size, 3, 32, 32, generator=g), torch.randint(0, 10, (batch_size,), generator=g))
               for _ in range(steps)]
    nets = []
    for _ in range(2):
        seed_everything(seed)
        nets.append(SmallNet().to(device))
    fit(nets[0], batches, 1, optimizer="adam", lr=1e-3, amp=True, device=device, quiet=True)
    optimizer, scaler = make_optimizer("adam", nets[1].parameters(), 1e-3), grad_scaler(device, True)
    for xb, yb in batches:
        step(nets[1].train(), nn.CrossEntropyLoss(), optimizer, scaler, xb.to(device), yb.to(device), amp_dtype(device))
    return max(float((a.detach() - b.detach()).abs().max()) for a, b in zip(nets[0].parameters(), nets[1].parameters()))


def unavailable_record(label: str | None = None, reason: str = NO_GPU, **settings) -> dict:
    """A record for a measurement that could not be made (e.g. no GPU): NaN numbers, the reason as note."""
    nan = float("nan")
    record = {"label": label, "device": reason, "device_name": reason, "epoch_times": [],
              "epoch_time_median": nan, "epoch_time_spread": nan, "epoch_time_min": nan,
              "images_per_s": nan, "peak_mem_mb": nan, "peak_mem_increase_mb": nan,
              "peak_mem_kind": reason, "final_loss": nan, "note": reason}
    record.update(settings)
    return record


# --- the lab: one call per measurement, tables, the factors ranked -----------------------

class Lab:
    """The lab's data (per-sample Dataset and decoded tensors) and one call that measures a fresh model."""

    def __init__(self, train_set: Dataset, splits: Splits, real: bool):
        self.train_set, self.splits, self.real = train_set, splits, real

    @classmethod
    def cifar10(cls, root, real: bool) -> "Lab":
        """The course's data: all 50,000 CIFAR-10 training images (no validation split held out; the course
        trained on all of them), per sample as the course read them and decoded once as tensors; the 10,000
        test images score an accuracy."""
        return cls(cifar10_datasets(root, val_size=0)[0], load_cifar10(root, val_size=0), real=real)

    def loader(self, n: int | None, batch_size: int, device: torch.device, *, num_workers: int = 0,
               pipeline: str = "dataloader", pin_memory: bool = False) -> Iterable:
        """The first ``n`` training images: through a DataLoader (the course's path) or as tensors on the device."""
        if pipeline == "dataloader":
            return make_dataloader(self.train_set, batch_size, limit=n, num_workers=num_workers, pin_memory=pin_memory)
        if pipeline != "tensors":
            raise ValueError(f"pipeline must be 'dataloader' or 'tensors', got {pipeline!r}.")
        train = self.splits.train if n is None else Split(self.splits.train.X[:n], self.splits.train.y[:n])
        return train.loader(batch_size, shuffle=True, device=device)

    def measure(self, model: str, device: torch.device | None, *, batch_size: int, train_limit: int | None,
                epochs: int, warmup_steps: int, num_workers: int = 0, pipeline: str = "dataloader",
                amp: bool = False, lr: float = 1e-3, label: str | None = None, accuracy: bool = False,
                step: Callable | None = None) -> dict:
        """Train a fresh ``model`` (seed 0) with ``measure_epochs``; a 'not measured' record where there is no device.

        With ``step`` (a hand-written training step, see ``measure_step_epochs``) the step trains instead of the
        Trainer. Warnings raised meanwhile (e.g. PyTorch's about too many workers) are kept in the record, not
        printed. With ``accuracy`` and real data, the test accuracy after the timed epochs is added.
        """
        setup = dict(model=model, batch_size=batch_size, num_workers=num_workers, pipeline=pipeline, amp=amp,
                     test_acc=float("nan"), warnings=[])
        if device is None:
            return unavailable_record(label, NOT_MEASURED, **setup)
        if model not in MODELS:
            raise ValueError(f"Unknown model {model!r}; choose one of {', '.join(MODELS)}.")
        seed_everything(0)
        net = MODELS[model]()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loader = self.loader(train_limit, batch_size, device, num_workers=num_workers, pipeline=pipeline)
            common = dict(device=device, epochs=epochs, warmup_steps=warmup_steps, amp=amp, lr=lr, label=label)
            record = (measure_epochs(net, loader, **common) if step is None else
                      measure_step_epochs(step, net, loader, **common))
        record.update(setup, params=count_parameters(net), warnings=sorted({str(w.message) for w in caught}))
        if accuracy and self.real:
            record["test_acc"] = evaluate(net, self.splits.test.loader(1024, device=device), device=device)[1]
        return record

    def run(self, settings: dict, device: torch.device | None, **overrides) -> dict:
        """``measure`` with a profile entry's settings (model, batch_size, train_limit, epochs, warmup_steps,
        num_workers), any of them overridden by keyword."""
        keys = ("model", "batch_size", "train_limit", "epochs", "warmup_steps", "num_workers")
        return self.measure(device=device, **({k: settings[k] for k in keys if k in settings} | overrides))


COLUMNS = {"epoch_time_median": "epoch (s)", "epoch_time_spread": "spread (s)", "images_per_s": "images/s",
           "peak_mem_mb": "peak memory (MB)", "peak_mem_increase_mb": "memory added (MB)", "test_acc": "test accuracy",
           "batch_size": "batch", "num_workers": "workers", "params": "parameters", "images_per_epoch": "images",
           "final_loss": "final loss", "cpu_s": "CPU epoch (s)", "gpu_s": "GPU epoch (s)", "speedup": "GPU speedup",
           "megabytes": "MB copied", "pageable_s": "pageable (s)", "pinned_s": "pinned (s)",
           "pageable_gb_s": "pageable GB/s", "pinned_gb_s": "pinned GB/s", "share_of_epoch": "share of epoch",
           "steps": "timed steps"}
# What an empty cell means, per column; any other missing number is a GPU measurement on a machine without one.
NA_TEXT = {"test_acc": "real data only"}


def _cell(value, column: str):
    """One table cell: 3 significant digits, thousands separated, a sentence where a number is missing."""
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return NA_TEXT.get(column, NOT_MEASURED)
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return f"{value:,}"
    return value


def lab_table(df: pd.DataFrame, columns: list[str], *, standin: bool, caption: str = ""):
    """A narrow table of the chosen columns, with a caption; on stand-in data the caption says what is valid."""
    shown = pd.DataFrame({COLUMNS.get(c, c): [_cell(v, c) for v in df[c]] for c in columns})
    note = " ".join(part for part in (caption, STANDIN_NOTE if standin else "") if part)
    styler = shown.style.hide(axis="index")
    return styler.set_caption(note) if note else styler


def speedup_table(records: pd.DataFrame) -> pd.DataFrame:
    """Per model: images per epoch, CPU and GPU epoch time and the GPU's speedup (NaN where no GPU was measured)."""
    rows = []
    for model, runs in records.groupby("model", sort=False):
        times = runs.set_index("label")["epoch_time_median"]
        rows.append({"model": model, "images_per_epoch": runs["images_per_epoch"].max(), "cpu_s": times["CPU"],
                     "gpu_s": times["GPU"], "speedup": times["CPU"] / times["GPU"]})
    return pd.DataFrame(rows)


def require(namespace: dict, **sections: str) -> None:
    """Stop with a sentence naming the earlier section to run when one of its results is missing."""
    missing = [f"“{section}” (it makes `{name}`)" for name, section in sections.items() if name not in namespace]
    if missing:
        raise RuntimeError(f"Run the section {' and '.join(missing)} first: this one uses its results.")


def memory_column(device: torch.device) -> str:
    """The record field holding a run's own memory, as ``helpers.device`` measures it on ``device``: the CUDA
    allocator's peak, or the RSS increase elsewhere."""
    return "peak_mem_mb" if run_memory_kind(device) == CUDA_KIND else "peak_mem_increase_mb"


def effect(times: Iterable[float]) -> float:
    """Slowest over fastest epoch time of a factor's settings (NaN when fewer than two were measured)."""
    values = [t for t in times if not math.isnan(t)]
    return max(values) / min(values) if len(values) >= 2 else float("nan")


def rank_factors(factors: dict[str, pd.Series]) -> pd.DataFrame:
    """Each factor's effect on the epoch time (slowest / fastest setting), largest first; unmeasured ones last.

    ``factors`` maps a factor's name to its epoch times indexed by setting (e.g. batch size → seconds).
    """
    rows = []
    for name, times in factors.items():
        times = times.astype(float).dropna()
        rows.append({"factor": name, "effect": effect(times),
                     "fastest": str(times.idxmin()) if len(times) >= 2 else NOT_MEASURED,
                     "slowest": str(times.idxmax()) if len(times) >= 2 else NOT_MEASURED})
    out = pd.DataFrame(rows).sort_values("effect", ascending=False, na_position="last").reset_index(drop=True)
    out.insert(0, "rank", range(1, len(out) + 1))
    return out


def measure_transfers(loader: Iterable, device: torch.device | None, repeats: int = 3) -> dict:
    """Time copying one epoch's batches to the GPU from pageable and from pinned host memory (CUDA only).

    The batches are decoded once beforehand, so only the copies are timed: ``.to(device)`` from ordinary
    (pageable) memory, which the driver first copies into a pinned buffer, against ``.to(device,
    non_blocking=True)`` from page-locked memory, which the GPU's copy engine reads directly.
    """
    nan = float("nan")
    if device is None or device.type != "cuda":
        return {"pageable_s": nan, "pinned_s": nan, "megabytes": nan, "pageable_gb_s": nan, "pinned_gb_s": nan,
                "note": NOT_MEASURED if device is None or device.type == "cpu" else f"CUDA only, not {device.type}"}
    pageable = [(xb.contiguous(), yb.contiguous()) for xb, yb in loader]
    pinned = [(xb.pin_memory(), yb.pin_memory()) for xb, yb in pageable]

    def copy(batches, non_blocking):
        for xb, yb in batches:
            xb.to(device, non_blocking=non_blocking), yb.to(device, non_blocking=non_blocking)

    slow = time_fn(lambda: copy(pageable, False), repeats=repeats, warmup=1, device=device).median
    fast = time_fn(lambda: copy(pinned, True), repeats=repeats, warmup=1, device=device).median
    nbytes = sum(xb.nbytes + yb.nbytes for xb, yb in pageable)
    return {"pageable_s": slow, "pinned_s": fast, "megabytes": nbytes / 1e6, "pageable_gb_s": nbytes / 1e9 / slow,
            "pinned_gb_s": nbytes / 1e9 / fast, "note": ""}


__all__ = ["NO_GPU", "NOT_MEASURED", "STANDIN_NOTE", "MODELS", "Lab", "lab_table", "speedup_table", "require", "memory_column", "effect",
           "rank_factors", "measure_transfers", "Timer", "Timing", "EpochTimer", "device_name", "time_fn", "throughput", "environment_report",
           "measure_epochs", "measure_step_epochs", "step_vs_trainer", "unavailable_record", "cpu_bf16_native"]

"""Honest measurements: synchronised timers, peak memory, throughput, environment report.

The four classic mistakes this module avoids, and the lab teaches:

1. CUDA work is asynchronous: a Python clock stopped right after ``loss.backward()`` measures
   how long it took to *queue* the kernels, not to run them. Every timer here waits for the
   device (CUDA events on a GPU, ``synchronize`` + ``perf_counter`` elsewhere).
2. The first steps pay one-off costs (CUDA context, cuDNN autotuning, allocator growth, lazy
   module init): warm-up steps run before the clock starts and are never counted.
3. One measurement is an anecdote: repeat, report the median and the spread.
4. ``max_memory_allocated`` is a high-water mark since the last reset: reset it before each run.
   On the CPU there is no such counter for tensors, so we report the process's resident memory
   (RSS) and say so.
"""
from __future__ import annotations

import os
import platform
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
import psutil
import torch
from torch import nn

from .config import get_device
from .training import make_optimizer

try:  # getrusage does not exist on Windows; there we rely on the sampling thread alone
    import resource
except ImportError:  # pragma: no cover
    resource = None

NO_GPU = "no GPU"
CUDA_KIND = "cuda max_memory_allocated"
CPU_KIND = "process peak RSS"
MPS_KIND = "mps driver memory (sampled)"


# --- devices -------------------------------------------------------------------------

def _as_device(device: torch.device | str | None) -> torch.device:
    """Turn None / a string into a torch.device (None → the kit's default device), checking it exists."""
    if device is None:
        return get_device()
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"Device {str(device)!r} asked for, but this machine has {NO_GPU} (CUDA unavailable); "
                         "use profiling.accelerator(), which returns None without a GPU, or device='cpu'.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"Device {str(device)!r} asked for, but MPS is not available here; use device='cpu'.")
    return device


def accelerator() -> torch.device | None:
    """Return the GPU-like device (cuda or mps) the kit would use, or None when there is none."""
    device = get_device()
    return device if device.type in ("cuda", "mps") else None


def device_name(device: torch.device | str | None = None) -> str:
    """Return a human name for a device, e.g. 'NVIDIA H100 80GB HBM3' or 'CPU (2 cores)'."""
    device = _as_device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple {platform.machine()} GPU (mps)"
    cpu = platform.processor() or platform.machine() or "CPU"
    return f"{cpu} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait until all work queued on the device has finished (no-op on the CPU)."""
    device = _as_device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


# --- timing --------------------------------------------------------------------------

class Timer:
    """Context manager measuring the wall time of a block on a device, synchronised at both ends.

    >>> with Timer(device) as t:
    ...     train_one_epoch()
    >>> t.elapsed   # seconds
    """

    def __init__(self, device: torch.device | str | None = None):
        self.device = _as_device(device)
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
    device = _as_device(device)
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


# --- peak memory ---------------------------------------------------------------------

@dataclass
class PeakMemory:
    """Peak memory of one measured block: the peak, the increase over the start, and what was measured."""

    peak_bytes: float = float("nan")
    increase_bytes: float = float("nan")
    kind: str = ""
    note: str = ""

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20

    @property
    def increase_mb(self) -> float:
        return self.increase_bytes / 2**20


def _ru_maxrss_bytes() -> int | None:
    """The process's lifetime peak RSS from getrusage (kB on Linux, bytes on macOS); None on Windows."""
    if resource is None:
        return None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


class _Sampler(threading.Thread):
    """Background thread recording the largest value of ``read()`` every ``interval`` seconds."""

    def __init__(self, read: Callable[[], int], interval: float):
        super().__init__(daemon=True)
        self.read, self.interval = read, interval
        self.peak = read()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            self.peak = max(self.peak, self.read())

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        self.peak = max(self.peak, self.read())
        return self.peak


@contextmanager
def track_peak_memory(device: torch.device | str | None = None, interval: float = 0.01) -> Iterator[PeakMemory]:
    """Measure the peak memory of the block: CUDA allocator peak on a GPU, sampled process RSS on the CPU.

    The yielded PeakMemory is filled in when the block ends.
    """
    device = _as_device(device)
    result = PeakMemory()
    if device.type == "cuda":
        synchronize(device)
        # Without the reset, max_memory_allocated is the peak of everything since start-up.
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        yield result
        synchronize(device)
        peak = torch.cuda.max_memory_allocated(device)
        result.peak_bytes, result.increase_bytes, result.kind = float(peak), float(peak - start), CUDA_KIND
        result.note = "tensors allocated by PyTorch on the GPU (model, optimiser state, activations, batches)"
        return
    if device.type == "mps":
        sampler = _Sampler(torch.mps.driver_allocated_memory, interval)
        start = sampler.peak
        sampler.start()
        yield result
        synchronize(device)
        peak = sampler.stop()
        result.peak_bytes, result.increase_bytes, result.kind = float(peak), float(peak - start), MPS_KIND
        result.note = "memory the Metal driver holds for this process, sampled every %.0f ms" % (interval * 1e3)
        return
    # CPU: RSS of the whole process (Python, libraries, data, model), sampled by a thread.
    proc = psutil.Process()
    sampler = _Sampler(lambda: proc.memory_info().rss, interval)
    start, ru_start = sampler.peak, _ru_maxrss_bytes()
    sampler.start()
    yield result
    peak = sampler.stop()
    ru_end = _ru_maxrss_bytes()
    if ru_end is not None and ru_start is not None and ru_end > ru_start:
        # The lifetime high-water mark rose inside the block, so it *is* the block's exact peak
        # (the sampler may have missed a short spike between two samples).
        peak = max(peak, ru_end)
    result.peak_bytes, result.increase_bytes, result.kind = float(peak), float(peak - start), CPU_KIND
    result.note = ("resident memory of the whole Python process; the increase is over its RSS at the start "
                   "of the run. Memory the process already holds from earlier runs is reused without "
                   "showing up as an increase, so compare increases of runs made in the same order with care.")


def memory_kind(device: torch.device | str | None = None) -> str:
    """Say what 'peak memory' means on this device (the kind stored with every measurement)."""
    device = _as_device(device)
    return {"cuda": CUDA_KIND, "mps": MPS_KIND}.get(device.type, CPU_KIND)


# --- environment ---------------------------------------------------------------------

def _tf32() -> tuple[bool, bool]:
    """Whether TF32 is allowed for CUDA matmuls and cuDNN convolutions."""
    matmul = bool(torch.backends.cuda.matmul.allow_tf32) or torch.get_float32_matmul_precision() != "highest"
    return matmul, bool(torch.backends.cudnn.allow_tf32)


def environment_report(device: torch.device | str | None = None, amp: bool = False) -> dict:
    """Return what a timing depends on: device, versions, CPU threads, AMP and TF32 settings."""
    device = _as_device(device)
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
        "amp_dtype": amp_dtype(device) if amp else "none (fp32)",
        # TF32 only exists on Ampere+ GPUs; on the CPU the flags exist but change nothing.
        "tf32_matmul": tf32_matmul and on_cuda,
        "tf32_cudnn": tf32_cudnn and on_cuda,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    return report


# --- measuring training epochs -------------------------------------------------------

def amp_dtype(device: torch.device | str | None = None) -> str:
    """The autocast dtype used for mixed precision on this device: float16 on GPUs, bfloat16 on the CPU."""
    return "bfloat16" if _as_device(device).type == "cpu" else "float16"


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


def make_dataloader(dataset: torch.utils.data.Dataset, batch_size: int, *, limit: int | None = None,
                    num_workers: int = 0, shuffle: bool = True, seed: int = 0, pin_memory: bool = False
                    ) -> torch.utils.data.DataLoader:
    """A torch DataLoader over the first ``limit`` samples of a per-sample Dataset (the course's input path)."""
    if limit is not None:
        dataset = torch.utils.data.Subset(dataset, range(min(limit, len(dataset))))
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                                       pin_memory=pin_memory, generator=torch.Generator().manual_seed(seed))


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


def _grad_scaler(device: torch.device, enabled: bool) -> torch.amp.GradScaler:
    """A GradScaler for the device; disabled where this torch has none for it (older mps builds)."""
    try:
        return torch.amp.GradScaler(device.type, enabled=enabled)
    except (RuntimeError, ValueError):  # pragma: no cover - depends on the torch build
        return torch.amp.GradScaler("cpu", enabled=False)


def measure_epochs(model: nn.Module, loader: Iterable, *, device: torch.device | str | None = None,
                   epochs: int = 3, warmup_steps: int = 5, optimizer: str = "adam", lr: float = 1e-3,
                   amp: bool = False, label: str | None = None) -> dict:
    """Train the model for ``epochs`` timed epochs after ``warmup_steps`` untimed steps; return a tidy record.

    The record holds the epoch times, their median and spread (IQR), images/s, the peak memory
    (warm-up included) with its kind, the last epoch's mean loss and the settings.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}.")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}.")
    device = _as_device(device)
    model = model.to(device).train()
    opt = make_optimizer(optimizer, model.parameters(), lr)
    loss_fn = nn.CrossEntropyLoss()
    dtype = getattr(torch, amp_dtype(device))
    # float16 needs loss scaling (small gradients underflow); bfloat16 has float32's range and does not.
    scaler = _grad_scaler(device, enabled=amp and dtype == torch.float16)
    non_blocking = device.type == "cuda"

    def step(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        xb = xb.to(device, non_blocking=non_blocking)  # no copy when the data already live there
        yb = yb.to(device, non_blocking=non_blocking)
        with torch.autocast(device.type, dtype=dtype, enabled=amp):
            loss = loss_fn(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return loss.detach()

    times, n_images, losses = [], 0, []
    with track_peak_memory(device) as mem:
        for xb, yb in _batches(loader, warmup_steps):
            step(xb, yb)
        for _ in range(epochs):
            # Sum losses as a tensor: calling .item() every step would force a sync per step.
            total, n_images = torch.zeros((), device=device), 0
            with Timer(device) as t:
                for xb, yb in loader:
                    total += step(xb, yb).float() * len(yb)
                    n_images += len(yb)
            times.append(t.elapsed)
            losses.append(total.item() / max(n_images, 1))

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
        "amp_dtype": amp_dtype(device) if amp else "float32",
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
        "final_loss": losses[-1],
        "clock": Timer(device).clock,
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


__all__ = ["NO_GPU", "Timer", "Timing", "PeakMemory", "accelerator", "device_name", "synchronize", "time_fn",
           "throughput", "track_peak_memory", "memory_kind", "environment_report", "amp_dtype",
           "measure_epochs", "unavailable_record", "cpu_bf16_native", "cap_workers", "make_dataloader"]

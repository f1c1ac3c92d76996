"""Where a run happens, at what precision, and how much memory it took: the one place that decides.

- ``get_device``: an argument, else ``KIT_DEVICE``, else cuda, mps, cpu.
- ``autocast`` / ``grad_scaler`` / ``amp_dtype``: mixed precision, one answer per device type,
  used by the Trainer and the GPU lab alike.
- ``MemoryMeter`` / ``track_peak_memory``: a run's peak memory. On CUDA the allocator's peak,
  reset when the run starts; on the CPU and MPS the increase of the process's resident memory
  (sampled by a thread) over its value when the run started. Each result says which it is.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
from dataclasses import dataclass
from typing import Callable, Iterator

import psutil
import torch
from torch import nn

try:  # getrusage does not exist on Windows; there the sampling thread alone measures
    import resource
except ImportError:  # pragma: no cover
    resource = None

__all__ = ["get_device", "device_of", "accelerator", "synchronize", "amp_dtype", "uses_grad_scaler", "autocast",
           "grad_scaler", "PeakMemory", "MemoryMeter", "track_peak_memory", "memory_kind",
           "run_memory_kind", "CUDA_KIND", "RSS_KIND", "RSS_INCREASE_KIND"]

CUDA_KIND = "cuda max_memory_allocated"
RSS_KIND = "process RSS (sampled)"
RSS_INCREASE_KIND = "process RSS increase over the run's start (sampled)"

# Mixed precision per device type: (autocast dtype, GradScaler?). float16 has a narrow range, so small
# gradients underflow unless the loss is scaled; bfloat16 has float32's range and needs no scaler.
# On the CPU only bfloat16 autocast exists.
_AMP = {"cuda": (torch.float16, True), "mps": (torch.float16, True), "cpu": (torch.bfloat16, False)}


# --- which device ------------------------------------------------------------------------------
def get_device(name: str | torch.device | None = None) -> torch.device:
    """Return the torch device: the argument, else ``KIT_DEVICE``, else cuda, mps, cpu."""
    if isinstance(name, torch.device):
        return _check_available(name, "the device argument")
    setting = "the device argument" if name is not None else "KIT_DEVICE"
    text = (name if name is not None else os.environ.get("KIT_DEVICE", "")).strip().lower()
    if text:
        try:
            device = torch.device(text)
        except RuntimeError as err:
            raise ValueError(f"{setting} is {text!r}, which is not a torch device; use 'cpu', 'cuda', 'cuda:0' "
                             "or 'mps' (or unset KIT_DEVICE to pick the best one).") from err
        return _check_available(device, setting)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _check_available(device: torch.device, setting: str) -> torch.device:
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{setting} asks for {str(device)!r}, but CUDA is not available here; "
                         "unset KIT_DEVICE or set it to 'cpu'.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{setting} asks for {str(device)!r}, but MPS is not available here; "
                         "unset KIT_DEVICE or set it to 'cpu'.")
    return device


def device_of(model: nn.Module, device: str | torch.device | None = None) -> torch.device:
    """The device asked for, else where the model's parameters live (the CPU for a model without any)."""
    if device is not None:
        return get_device(device)
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def accelerator() -> torch.device | None:
    """The GPU-like device (cuda or mps) the kit would use, or None when there is none."""
    device = get_device()
    return device if device.type in ("cuda", "mps") else None


def synchronize(device: torch.device) -> None:
    """Wait until all work queued on the device has finished (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


# --- which precision ---------------------------------------------------------------------------
def amp_dtype(device: torch.device) -> torch.dtype:
    """The autocast dtype of mixed precision on this device: float16 on CUDA and MPS, bfloat16 on the CPU."""
    return _AMP.get(device.type, _AMP["cpu"])[0]


def uses_grad_scaler(device: torch.device) -> bool:
    """Whether mixed precision on this device scales the loss (float16 does, bfloat16 does not)."""
    return _AMP.get(device.type, _AMP["cpu"])[1]


def autocast(device: torch.device, enabled: bool):
    """The mixed-precision context for the device; a no-op when disabled."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=amp_dtype(device))


def grad_scaler(device: torch.device, enabled: bool) -> torch.amp.GradScaler:
    """The GradScaler for mixed precision on the device (a disabled one where none is needed)."""
    on = enabled and uses_grad_scaler(device)
    try:
        return torch.amp.GradScaler(device.type if on else "cpu", enabled=on)
    except (RuntimeError, ValueError):  # pragma: no cover - an older torch without a scaler for this device
        return torch.amp.GradScaler("cpu", enabled=False)


# --- how much memory ---------------------------------------------------------------------------
@dataclass
class PeakMemory:
    """Peak memory of one run: the peak, its increase over the run's start, and what was measured."""

    peak_bytes: float = float("nan")
    increase_bytes: float = float("nan")
    kind: str = ""

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20

    @property
    def increase_mb(self) -> float:
        return self.increase_bytes / 2**20

    @property
    def run_mb(self) -> float:
        """The run's own memory in MiB: the allocator peak on CUDA, the increase over the start elsewhere."""
        return self.peak_mb if self.kind == CUDA_KIND else self.increase_mb


def memory_kind(device: torch.device) -> str:
    """What a PeakMemory's peak measures on this device (stored with every measurement)."""
    return CUDA_KIND if device.type == "cuda" else RSS_KIND


def run_memory_kind(device: torch.device) -> str:
    """What ``PeakMemory.run_mb`` (the run's own memory, History.peak_mem) measures on this device."""
    return CUDA_KIND if device.type == "cuda" else RSS_INCREASE_KIND


def _ru_maxrss_bytes() -> int | None:
    """The process's lifetime peak RSS from getrusage (KiB on Linux, bytes on macOS); None on Windows."""
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


class MemoryMeter:
    """Measures one run's peak memory from ``start()``; ``read()`` gives the peak so far, ``stop()`` the final one."""

    def __init__(self, device: torch.device, interval: float = 0.01):
        self.device, self.interval, self.kind = device, interval, memory_kind(device)
        self._sampler: _Sampler | None = None

    def start(self) -> MemoryMeter:
        """Begin the run: reset the CUDA peak, or note the process's memory and start sampling it."""
        if self.device.type == "cuda":
            synchronize(self.device)
            # Without the reset, max_memory_allocated is the peak of everything since start-up.
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
            return self
        proc = psutil.Process()
        self._sampler = _Sampler(lambda: proc.memory_info().rss, self.interval)
        self._start, self._ru_start = self._sampler.peak, _ru_maxrss_bytes()
        self._sampler.start()
        return self

    def read(self) -> PeakMemory:
        """The peak since ``start()`` (the run goes on)."""
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            peak = max(self._sampler.peak, psutil.Process().memory_info().rss)
            ru = _ru_maxrss_bytes()
            if ru is not None and self._ru_start is not None and ru > self._ru_start:
                # The lifetime high-water mark rose during the run, so it *is* the run's exact peak
                # (the sampler may have missed a short spike between two samples).
                peak = max(peak, ru)
        return PeakMemory(float(peak), float(peak - self._start), self.kind)

    def stop(self) -> PeakMemory:
        """End the run and return its peak."""
        synchronize(self.device)
        if self._sampler is not None:
            self._sampler.stop()
        result = self.read()
        self._sampler = None
        return result


@contextlib.contextmanager
def track_peak_memory(device: torch.device, interval: float = 0.01) -> Iterator[PeakMemory]:
    """Measure the peak memory of the block; the yielded PeakMemory is filled in when the block ends."""
    result = PeakMemory(kind=memory_kind(device))
    meter = MemoryMeter(device, interval).start()
    try:
        yield result
    finally:
        final = meter.stop()
        result.peak_bytes, result.increase_bytes = final.peak_bytes, final.increase_bytes

"""Where a run happens, on how many CPU threads, at what precision, and how much memory it took: the one place that decides.

- ``get_device``: an argument, else ``KIT_DEVICE``, else cuda, mps, cpu.
- ``cpu_threads`` / ``use_cpu_threads``: torch's CPU threads follow the cores this process may really use
  (its CPU affinity and a container's CPU quota; ``KIT_THREADS`` overrides), set when this module is imported.
  A process that runs beside others of its kind (a grid's worker, a graded submission) uses
  ``WORKER_THREADS`` (one) and ``worker_environment()``. ``run_grid`` starts ``cpu_threads()`` workers.
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

__all__ = ["get_device", "device_of", "usable_cores", "cpu_threads", "use_cpu_threads", "cpu_threads_for",
           "worker_environment",
           "THREADS_ENV", "WORKER_THREADS", "accelerator", "synchronize", "amp_dtype", "uses_grad_scaler", "autocast",
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


# --- how many CPU threads ---------------------------------------------------------------------
THREADS_ENV = "KIT_THREADS"
# A process that runs side by side with others of its kind (a grid's worker, a graded submission) computes on one
# thread: n one-thread processes keep n cores busy, while n processes of n threads each fight over them (every
# parallel region then waits for a thread the scheduler has put off a core). Every run of a grid trains on this
# many threads wherever it trains, since torch's sums, and so a run's numbers, change with the thread count.
WORKER_THREADS = 1


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a container's CPU quota; at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows: no affinity masks
        cores = os.cpu_count() or 1
    quota = _cpu_quota()
    return max(1, min(cores, quota) if quota else cores)


def _cpu_quota() -> int | None:
    """Whole cores a cgroup CPU quota allows (a container started with --cpus), or None without one."""
    for path, split in (("/sys/fs/cgroup/cpu.max", lambda t: t.split()[:2]),            # cgroup v2: "quota period"
                        ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", None)):                # cgroup v1
        try:
            text = open(path).read()
            if split is not None:
                quota, period = split(text)
            else:
                quota, period = text.strip(), open("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read().strip()
            if quota in ("max", "-1"):
                return None
            return max(1, -(-int(quota) // int(period)))   # 1.5 CPUs -> 2 threads
        except (OSError, ValueError):
            continue
    return None


def cpu_threads() -> int:
    """How many cores this process keeps busy: ``KIT_THREADS``, else ``OMP_NUM_THREADS``, else ``usable_cores()``.

    The kernel's torch threads and the number of worker processes a grid starts both come from here.
    """
    for name in (THREADS_ENV, "OMP_NUM_THREADS"):
        text = os.environ.get(name, "").strip()
        if not text:
            continue
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"{name} is {text!r}; set it to a whole number of threads >= 1 (e.g. {name}=1 on a "
                             f"machine shared with other jobs), or unset it to use the {usable_cores()} core(s) "
                             "this process may run on.")
        return int(text)
    return usable_cores()


def use_cpu_threads(threads: int | None = None) -> int:
    """Set torch's CPU threads to ``threads`` (default ``cpu_threads()``); return the number set."""
    threads = cpu_threads() if threads is None else threads
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


@contextlib.contextmanager
def cpu_threads_for(threads: int) -> Iterator[int]:
    """Run the block on ``threads`` torch threads, then restore the count it had."""
    before = torch.get_num_threads()
    use_cpu_threads(threads)
    try:
        yield threads
    finally:
        use_cpu_threads(before)


def worker_environment() -> dict[str, str]:
    """Environment variables for a process that runs beside others of its kind: one thread everywhere.

    ``KIT_THREADS`` makes the kit (and a grid inside it) use one; the others reach the numerical libraries
    that read their thread count once, at start-up.
    """
    one = str(WORKER_THREADS)
    return {THREADS_ENV: one, "OMP_NUM_THREADS": one, "MKL_NUM_THREADS": one, "OPENBLAS_NUM_THREADS": one}


def _follow_usable_cores() -> None:
    """On import: ``KIT_THREADS`` when set; else at most the cores this process may use (a lower count set earlier stays).

    torch counts every core of the host, even in a container limited to fewer; a thread waiting for a core
    that another job holds stalls every parallel step (a sheet beside another training process ran ninefold
    slower), so torch must not count on more cores than it may have.
    """
    if os.environ.get(THREADS_ENV, "").strip() or torch.get_num_threads() > cpu_threads():
        use_cpu_threads()


_follow_usable_cores()


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
        self._proc = proc = psutil.Process()  # once: each new Process reads /proc to learn its start time
        self._sampler = _Sampler(lambda: proc.memory_info().rss, self.interval)
        self._start, self._ru_start = self._sampler.peak, _ru_maxrss_bytes()
        self._sampler.start()
        return self

    def read(self) -> PeakMemory:
        """The peak since ``start()`` (the run goes on)."""
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            peak = max(self._sampler.peak, self._proc.memory_info().rss)
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

"""Where many runs run: the Dask cluster named by ``KIT_SCHEDULER``, or this machine when it is unset.

A ground-floor module: it imports nothing from the kit, and ``distributed`` only when a cluster is named.
``client()`` is the one way the kit reaches a cluster: ``run_grid`` sends its runs through it, and
``make grade`` its submissions. ``make cluster`` starts a scheduler and workers on this machine to try it;
README, "Running on a cluster", shows how a course points the kit at real machines.

``local_cluster()`` starts a real scheduler and workers on this machine, each a process of its own, for the
tests and benchmarks. Its scheduler sends a one-thread worker one task at a time (worker saturation 1.0, as
``make cluster``) and retries a task whose worker died once (``ALLOWED_FAILURES``; Dask's default is 3).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["SCHEDULER_ENV", "CONNECT_TIMEOUT", "ALLOWED_FAILURES", "ClusterError", "scheduler_address", "client",
           "LocalCluster", "local_cluster"]

SCHEDULER_ENV = "KIT_SCHEDULER"
SCHEMES = ("tcp", "tls", "ucx", "ws", "wss", "inproc")
CONNECT_TIMEOUT = 10  # seconds: a scheduler that does not answer by then is down or unreachable
# A task whose worker dies (killed, out of memory) is tried once more, elsewhere; a second death names it.
ALLOWED_FAILURES = 1
INSTALL_HINT = 'pip install "dask[distributed]"'
_clients: dict[str, "Client"] = {}


class ClusterError(ConnectionError):
    """The Dask scheduler named by KIT_SCHEDULER (or the scheduler argument) cannot be reached."""


def scheduler_address(scheduler: str | None = None) -> str | None:
    """The scheduler's address: the argument, else ``KIT_SCHEDULER``; None when neither names one."""
    address = scheduler if scheduler is not None else os.environ.get(SCHEDULER_ENV, "")
    return address.strip() or None


def client(scheduler: str | None = None, timeout: float = CONNECT_TIMEOUT) -> "Client | None":
    """A Dask client of the scheduler at ``scheduler`` or ``KIT_SCHEDULER`` (one per address and process); None when unset."""
    address = scheduler_address(scheduler)
    if address is None:
        return None
    known = _clients.get(address)
    if known is not None and known.status == "running":
        return known
    source = "the scheduler argument" if scheduler is not None else SCHEDULER_ENV
    try:
        from distributed import Client
    except ImportError as err:
        raise ImportError(f"{source} names the Dask scheduler {address}, but the Dask client is not installed: "
                          f"{INSTALL_HINT}, or unset {SCHEDULER_ENV} to run on this machine.") from err
    try:
        _probe(address, timeout)
        connected = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, ValueError) as err:  # refused, timed out, or not an address at all
        raise ClusterError(
            f"Cannot reach the Dask scheduler at {address} (from {source}): {err}. Fix: start "
            f"the scheduler and its workers (`make cluster` on this machine prints the address to export), check "
            f"the address (e.g. tcp://host:8786) and that its port is open, or unset {SCHEDULER_ENV} to run on "
            "this machine.") from None
    _clients[address] = connected
    return connected


def _probe(address: str, timeout: float) -> None:
    """Open and close a TCP connection to a ``tcp://host:port`` scheduler; OSError when nothing answers.

    A Client that fails to connect spends seconds more closing itself when it is garbage collected, and
    prints a traceback doing so; this check fails fast and quietly in the common case (nothing listening).
    """
    scheme, _, rest = address.rpartition("://")
    scheme = scheme or "tcp"   # Dask's default, as in "host:8786"
    if scheme not in SCHEMES:
        raise ValueError(f"unknown address scheme {scheme!r} (Dask knows {', '.join(SCHEMES)})")
    if scheme != "tcp":
        return  # tls://, ucx://, ...: the Client itself tells
    host, _, port = rest.rstrip("/").rpartition(":")
    if not port.isdigit():
        raise ValueError(f"{address!r} names no port")
    socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout).close()


# --- A real cluster on this machine ---------------------------------------------------------------
@dataclass
class LocalCluster:
    """A scheduler and workers started by ``local_cluster``, each a process of its own."""

    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)

    def close(self) -> None:
        """Stop the workers, then the scheduler (and forget any client connected to it)."""
        known = _clients.pop(self.address, None)
        if known is not None:
            known.close()
        for proc in [*self.workers, self.scheduler]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*self.workers, self.scheduler]:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def local_cluster(workers: int = 2, *, threads_per_worker: int = 1, env: dict[str, str] | None = None,
                  start_timeout_s: float = 60) -> Iterator[LocalCluster]:
    """Start ``dask scheduler`` and ``workers`` × ``dask worker`` on localhost, each in its own process; yield it.

    Each worker runs ``threads_per_worker`` tasks at a time under a nanny (a killed worker is restarted).
    ``env`` is added to the processes' environment (e.g. ``helpers.device.worker_environment()``). Raises
    ImportError when ``distributed`` is not installed and TimeoutError when the cluster does not come up.
    """
    try:
        import distributed  # noqa: F401  (the servers are its modules)
    except ImportError as err:
        raise ImportError(f"A local Dask cluster needs the Dask servers: {INSTALL_HINT}.") from err
    with tempfile.TemporaryDirectory(prefix="kit-cluster-") as tmp:
        info = Path(tmp) / "scheduler.json"
        base = {**os.environ, **(env or {}), "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": str(ALLOWED_FAILURES),
                "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0"}
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                      "--port", "0", "--no-dashboard", "--scheduler-file", str(info)],
                                     env=base, cwd=tmp, **quiet)
        cluster = LocalCluster("", scheduler)
        try:
            address = _wait_for_address(info, scheduler, start_timeout_s)
            cluster.address = address
            cluster.workers = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                                                 "--nthreads", str(threads_per_worker), "--nworkers", "1",
                                                 "--no-dashboard", "--memory-limit", "0", "--local-directory", tmp],
                                                env=base, cwd=tmp, **quiet) for _ in range(workers)]
            _wait_for_workers(address, workers, start_timeout_s)
            yield cluster
        finally:
            cluster.close()


def _wait_for_address(info: Path, scheduler: subprocess.Popen, timeout_s: float) -> str:
    """The scheduler's address, once it has written its scheduler file."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if scheduler.poll() is not None:
            raise RuntimeError(f"The local Dask scheduler exited at start-up (exit code {scheduler.returncode}).")
        try:
            return json.loads(info.read_text())["address"]
        except (OSError, ValueError, KeyError):
            time.sleep(0.1)
    raise TimeoutError(f"The local Dask scheduler did not start within {timeout_s:.0f} s.")


def _wait_for_workers(address: str, n: int, timeout_s: float) -> None:
    """Return once ``n`` workers have joined the scheduler at ``address``."""
    from distributed import Client

    with Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False) as probe:
        try:
            probe.wait_for_workers(n, timeout=timeout_s)
        except TimeoutError:
            raise TimeoutError(f"{n} local Dask worker(s) did not join within {timeout_s:.0f} s "
                               f"({len(probe.scheduler_info()['workers'])} did).") from None

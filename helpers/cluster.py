"""The Dask cluster that work may be sent to: the one named by ``KIT_SCHEDULER`` (or an argument), or none.

``dask_client()`` is the one way the kit reaches a cluster: ``run_grid`` sends its runs through it, and
grading sends submissions through it. Without ``KIT_SCHEDULER`` (and no argument) it returns None and the
work stays on this machine. A scheduler that does not answer is an error that names the address and says
what to do, never a silent fall-back: the user asked for the cluster.

``local_cluster()`` starts a real scheduler and workers on this machine, each in a process of its own
(the tests, the benchmark, and a laptop trying the cluster path). Its scheduler retries a run whose worker
died once (``ALLOWED_FAILURES``); a cluster started otherwise should be configured the same way
(``DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=1``), or Dask's default retries it three times.

A ground-floor module: it imports nothing from the kit, and ``distributed`` only when a cluster is used.
"""
from __future__ import annotations

import json
import os
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

__all__ = ["SCHEDULER_ENV", "ALLOWED_FAILURES", "SchedulerUnreachable", "scheduler_address", "dask_client",
           "LocalCluster", "local_cluster"]

SCHEDULER_ENV = "KIT_SCHEDULER"
CONNECT_TIMEOUT_S = 10
# A run whose worker dies (killed, out of memory) is tried once more, elsewhere; a second death names it.
ALLOWED_FAILURES = 1
INSTALL_HINT = 'pip install "dask[distributed]"'

_CLIENTS: dict[str, "Client"] = {}


class SchedulerUnreachable(ConnectionError):
    """KIT_SCHEDULER (or scheduler=) names a Dask scheduler that cannot be reached."""


def scheduler_address(scheduler: str | None = None) -> str | None:
    """The Dask scheduler to use: the argument, else ``KIT_SCHEDULER``, else None (work stays on this machine)."""
    text = (scheduler if scheduler is not None else os.environ.get(SCHEDULER_ENV, "")).strip()
    return text or None


def dask_client(scheduler: str | None = None) -> "Client | None":
    """A connected ``distributed.Client`` for ``scheduler_address(scheduler)``, reused across calls; None without one.

    Raises SchedulerUnreachable (naming the setting and the address) when no scheduler answers within
    ``CONNECT_TIMEOUT_S`` seconds, and ImportError with the install command when ``distributed`` is missing.
    """
    address = scheduler_address(scheduler)
    if address is None:
        return None
    setting = "the scheduler argument" if scheduler is not None else SCHEDULER_ENV
    client = _CLIENTS.get(address)
    if client is not None and client.status == "running":
        return client
    try:
        from distributed import Client
    except ImportError as err:
        raise ImportError(f"{setting} is {address!r}, but the Dask client is not installed: {INSTALL_HINT}, or "
                          f"unset {SCHEDULER_ENV} to work on this machine.") from err
    try:
        client = Client(address, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as err:
        raise SchedulerUnreachable(
            f"{setting} is {address!r}, but no Dask scheduler answered there within {CONNECT_TIMEOUT_S} s "
            f"({type(err).__name__}: {err}). Start the cluster first (make cluster), check the address "
            f"(tcp://host:8786), or unset {SCHEDULER_ENV} to work on this machine.") from None
    _CLIENTS[address] = client
    return client


# --- A real cluster on this machine ---------------------------------------------------------------
@dataclass
class LocalCluster:
    """A scheduler and workers started by ``local_cluster``, each a process of its own."""

    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)

    def close(self) -> None:
        """Stop the workers, then the scheduler (and forget any client connected to it)."""
        client = _CLIENTS.pop(self.address, None)
        if client is not None:
            client.close()
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
        base = {**os.environ, **(env or {}), "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": str(ALLOWED_FAILURES)}
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

    with Client(address, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False) as client:
        try:
            client.wait_for_workers(n, timeout=timeout_s)
        except TimeoutError:
            raise TimeoutError(f"{n} local Dask worker(s) did not join within {timeout_s:.0f} s "
                               f"({len(client.scheduler_info()['workers'])} did).") from None

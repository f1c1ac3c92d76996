"""Where a grid's runs train: here, in local worker processes, or on a Dask cluster; what a run hands back.

``train_once`` runs the training function once and turns what it returned into the parts of a run record
(JSON-able, plus the trained weights when asked); it is the same code in this process, in a local worker
and on a Dask worker, and it trains on ``device.WORKER_THREADS`` torch thread everywhere (torch's sums, and
so a run's last digits, change with the thread count), so a run's numbers do not depend on where it trained.
Workers only train and hand the outcome back: the process that called ``run_grid`` writes every record
(``helpers.experiments``), so no worker needs the cache folder.

The training function and its fixed settings travel once per grid as cloudpickle bytes (functions defined in
a notebook go by value). A local worker keeps the last function it unpickled, so later runs of the grid
send only their settings; on Dask the bytes are one task's result, fetched once by each worker. A worker
trains one run at a time.

Both pools are futures of existing engines: joblib's loky executor here, a ``distributed`` client's executor on
a cluster. Not joblib's ``Parallel`` (nor its dask backend): it stops the whole call at the first dead worker,
while a grid writes each record as its run finishes and reports a dead run by its grid point and goes on.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

from .config import note_seeds, seed_offset, seed_offset_as, seeds_used
from .device import WORKER_THREADS, cpu_threads_for, worker_environment
from .history import History, json_safe, summarize

__all__ = ["RESERVED_COLUMNS", "train_once", "Shipment", "ship", "LocalPool", "DaskPool", "WorkerDied", "NEED",
           "IDLE_S"]

# Columns run_grid fills itself; a grid setting keeps its name, so these never overwrite one.
RESERVED_COLUMNS = {"seed", "time_s", "cached", "error", "weights", "history", *summarize(History())}
# Local workers wait this long for the next grid before they exit: a sheet's grids share one start-up.
IDLE_S = 300
# A local worker that lacks the grid's training function answers NEED; the run is sent again with it.
NEED = "need the training function"


class WorkerDied(RuntimeError):
    """The process training a run died (killed, out of memory, a crash in native code)."""


# --- One run, wherever it trains -------------------------------------------------------------------
def train_once(train_fn: Callable, params: dict, fixed: dict, seed: int, keep_models: bool) -> dict:
    """Run ``train_fn(**params, **fixed, seed=seed)`` once, on ``WORKER_THREADS`` torch thread; return its outcome.

    The outcome is ``{"time_s", "history", "metrics", "state_dict"}`` (``state_dict`` only with
    ``keep_models``), or ``{"time_s", "error"}`` when the run raised: one broken configuration must not stop
    the grid. NotImplementedError (an exercise not written yet) is raised, not recorded.
    """
    start = time.perf_counter()
    try:
        with cpu_threads_for(WORKER_THREADS):   # the same numbers here, on a local worker and on Dask
            result = train_fn(**params, **fixed, seed=seed)
        parts, model = _encode(result, params)
        if keep_models and model is None:
            raise ValueError("run_grid(keep_models=True) needs train_fn to return {'history': ..., 'model': model}.")
    except NotImplementedError:  # an exercise not written yet is not a broken configuration: say so now
        raise
    except Exception as exc:
        return {"time_s": time.perf_counter() - start, "error": f"{type(exc).__name__}: {exc}"}
    outcome = {"time_s": time.perf_counter() - start, **parts}
    if keep_models:
        outcome["state_dict"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return outcome


def _encode(result: Any, params: dict) -> tuple[dict, Any]:
    """Split what train_fn returned (History, or dict of scalars with optional "history" and "model")
    into the JSON parts of its record and the trained model (or None)."""
    if isinstance(result, History):
        return {"history": result.to_dict(), "metrics": {}}, None
    if isinstance(result, dict):
        history, model = result.get("history"), result.get("model")
        if history is not None and not isinstance(history, History):
            raise ValueError(f"train_fn returned a dict whose 'history' is a {type(history).__name__}; "
                             "it must be a History (or leave the key out).")
        if model is not None and not hasattr(model, "state_dict"):
            raise ValueError(f"train_fn returned a dict whose 'model' is a {type(model).__name__}; "
                             "it must be a torch nn.Module (or leave the key out).")
        metrics = {k: json_safe(v) for k, v in result.items() if k not in ("history", "model")}
        clash = sorted(set(metrics) & (RESERVED_COLUMNS | set(params)))
        if clash:
            raise ValueError(f"train_fn returned {clash}, which would overwrite run_grid's column(s) of the same "
                             f"name (grid settings: {sorted(params)}; run_grid's own: {sorted(RESERVED_COLUMNS)}). "
                             "Rename the returned key(s), e.g. 'measured_' + name.")
        return {"history": None if history is None else history.to_dict(), "metrics": metrics}, model
    raise ValueError(f"train_fn must return a History or a dict of scalars (optionally with keys 'history' and "
                     f"'model'); it returned a {type(result).__name__}.")


# --- What travels to the workers -------------------------------------------------------------------
@dataclass(frozen=True)
class Shipment:
    """A grid's training function and fixed settings as cloudpickle bytes, named by their digest."""

    digest: str
    payload: bytes


def ship(train_fn: Callable, fixed: dict) -> Shipment:
    """Pickle ``(train_fn, fixed)`` for the workers (by value where they are a notebook's); raises what cloudpickle raises."""
    import cloudpickle

    payload = cloudpickle.dumps((train_fn, fixed))
    return Shipment(hashlib.sha256(payload).hexdigest(), payload)


_LOADED: OrderedDict[str, tuple[Callable, dict]] = OrderedDict()  # in a worker: the grids' functions, newest last
_ONE_RUN = threading.Lock()  # a Dask worker with several threads still trains one run at a time


def _work(digest: str, payload: bytes | None, params: dict, seed: int, keep_models: bool, offset: int = 0) -> Any:
    """In a worker: train one run of the grid ``digest`` on one thread, under the sender's ``KIT_SEED`` (``offset``:
    a worker may have started before it was set, or on another machine); return its outcome and the seeds it set."""
    with _ONE_RUN:   # two runs in one process would share torch's global random generator and its threads
        loaded = _LOADED.get(digest)
        if loaded is None:
            if payload is None:
                return NEED
            import cloudpickle

            # Bytes the run_grid process pickled a moment ago and sent over its own pipe, never a file.
            loaded = _LOADED[digest] = cloudpickle.loads(payload)
            while len(_LOADED) > 2:  # a grid's data can be large: keep the current grids' only
                _LOADED.popitem(last=False)
        train_fn, fixed = loaded
        with seed_offset_as(offset):
            outcome = train_once(train_fn, params, fixed, seed, keep_models)
        outcome["seeds"] = seeds_used()
        return outcome


def _as_sent(payload: bytes) -> bytes:
    """On a Dask worker: the grid's pickled function, as a task's result (see DaskPool)."""
    return payload


# --- Pools: where the runs go ----------------------------------------------------------------------
class LocalPool:
    """``workers`` local processes (loky, reused across grids for ``IDLE_S`` s), one torch thread each."""

    tries = 2  # a run whose worker died is tried once more, alone
    death = "the worker process training this run died twice"

    def __init__(self, workers: int, shipment: Shipment):
        from joblib.externals.loky import get_reusable_executor

        self.slots, self.shipment = workers, shipment
        self._executor = get_reusable_executor(max_workers=workers, timeout=IDLE_S, env=worker_environment())
        self._first = workers  # the first runs carry the function: each fresh worker needs it once

    def submit(self, params: dict, seed: int, keep_models: bool, with_payload: bool = False) -> cf.Future:
        """Queue one run; its future gives ``_work``'s outcome."""
        if self._first > 0:
            with_payload, self._first = True, self._first - 1
        payload = self.shipment.payload if with_payload else None
        return self._executor.submit(_work, self.shipment.digest, payload, params, seed, keep_models, seed_offset())

    def died(self, err: BaseException) -> bool:
        """Whether ``err`` says a worker process died; the pool then restarts its workers."""
        from joblib.externals.loky.process_executor import TerminatedWorkerError

        if not isinstance(err, TerminatedWorkerError):
            return False
        self.restart()
        return True

    def restart(self) -> None:
        """A fresh set of workers (after one died, every run queued on the old ones failed with it)."""
        from joblib.externals.loky import get_reusable_executor

        executor = get_reusable_executor(max_workers=self.slots, timeout=IDLE_S, env=worker_environment())
        if executor is not self._executor:  # every failed run reports the death: restart once
            self._executor, self._first = executor, self.slots

    def stop(self) -> None:
        """Stop the runs in flight now (Ctrl-C, an unwritten exercise): kill the workers."""
        self._executor.shutdown(wait=False, kill_workers=True)


class DaskPool:
    """The workers of the Dask cluster behind ``client``; the scheduler retries a run whose worker died.

    A result still on a worker when it dies is lost with it, and Dask computes it again: that run trains twice,
    while this process still writes its record once.
    """

    tries = 1  # the scheduler has already retried it (its allowed-failures)
    death = "the Dask worker training this run died, also when the scheduler tried it again"

    def __init__(self, client: Any, shipment: Shipment):
        from .cluster import CONNECT_TIMEOUT

        self.client, self.shipment = client, shipment
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except TimeoutError:
            raise RuntimeError(f"The Dask cluster at {client.scheduler.address} has no workers (none joined within "
                               f"{CONNECT_TIMEOUT} s): start some (dask worker {client.scheduler.address} "
                               "--nthreads 1), or unset KIT_SCHEDULER to train on this machine.") from None
        self.slots = max(1, sum(client.nthreads().values()))
        # The function travels once per worker, as the result of a task: a worker that dies takes scattered data
        # with it (and every run waiting for it), while a task's result the scheduler computes again.
        self._payload = client.submit(_as_sent, shipment.payload, pure=False)
        self._executor = client.get_executor(pure=False)
        self._futures: list = []

    def submit(self, params: dict, seed: int, keep_models: bool, with_payload: bool = False) -> cf.Future:
        """Send one run to the cluster; its future gives ``_work``'s outcome."""
        return self._executor.submit(_work, self.shipment.digest, self._payload, params, seed, keep_models,
                                     seed_offset())

    def died(self, err: BaseException) -> bool:
        """Whether ``err`` is Dask's KilledWorker: the run's workers died more often than the scheduler retries."""
        from distributed.scheduler import KilledWorker

        return isinstance(err, KilledWorker)

    def stop(self) -> None:
        """Cancel what the cluster has not finished (Ctrl-C, an unwritten exercise)."""
        self._executor.shutdown(wait=False)


def absorb(outcome: dict) -> dict:
    """Take a worker's outcome into this process: note the seeds it set (for the run record); return the outcome."""
    note_seeds(outcome.pop("seeds", ()))
    return outcome

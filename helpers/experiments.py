"""Run many trainings and remember them: ``run_grid`` with an on-disk cache (sweeps live in ``sweeps``).

Every finished run is written to ``cache_dir()/"runs"/<name>/<key>.json`` the moment it ends (and,
with ``keep_models=True``, its trained weights to ``<key>.pt``), where ``key`` is a stable hash
(``store.content_key``) of the training function's name (module + qualname), its code
(``store.callable_identity``: its source, the notebook and project functions it calls, the kit's
sources), its settings, the seed and the run profile. Re-running an unchanged notebook therefore
takes seconds, an interrupted grid resumes where it stopped, and editing ``train_fn``, a function it
calls or ``helpers/`` trains the runs again (the old records stay on disk under their old keys).
A lambda, or a function whose source cannot be read, is refused: its runs could not be keyed by code.

Where runs train (``helpers.workers``): with ``KIT_SCHEDULER`` (or ``scheduler=``) on that Dask cluster;
else, when the grid has more than one run to train and the runs train on the CPU, in local worker processes,
one per core this process may use (``device.cpu_threads``), each on one torch thread; else here. Workers
only train and hand each run's outcome back: this process writes every record, so a run's record and the
table are the same wherever it trained, and rows follow the grid's order, not the order runs finished in.
A function that cannot be sent to worker processes (cloudpickle refuses it) trains here, with a one-line
note; a cluster refuses it with a message. A worker that dies has its run tried once more (alone, so the
death is told apart from its neighbours'); a second death is recorded as that run's error and the grid goes on.

Each run is claimed under a lock (``<key>.lock`` beside its record, ``store.file_lock``) held by this
process while the run trains, here or on a worker: a second process running the same grid on the same cache
waits for that run and reads its record instead of training it twice. The operating system drops the lock
when its holder dies, so a killed run never blocks the next attempt. The lock is this machine's; a cluster's
workers never touch the cache. A record that cannot be this run's (damaged, wrong shape) is named in a
warning and trained again.
"""
from __future__ import annotations

import concurrent.futures as cf
import functools
import itertools
import math
import re
import sys
import warnings
from collections import Counter, deque
from contextlib import ExitStack
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import cluster, runlog, store
from .config import cache_dir, get_profile, number_setting, with_seed_offset
from .device import WORKER_THREADS, cpu_threads_for
from .history import History, summarize
from .workers import NEED, DaskPool, LocalPool, Shipment, absorb, ship, train_once

if TYPE_CHECKING:
    from torch import nn

__all__ = ["run_grid", "GridRunError", "cache_key", "function_name", "summarize", "trained_model", "train_as_in_grid"]


# --- Cache keys --------------------------------------------------------------------------------
def function_name(fn: Callable) -> str:
    """``module.qualname`` of a function (of the wrapped one for functools.partial)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"


def _canonical(value: Any, where: str) -> Any:
    """A JSON value that is equal for equal settings, so the hash is stable across sessions."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)  # JSON has no NaN/inf
    if isinstance(value, np.generic):
        return _canonical(value.item(), where)
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_canonical(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v, where) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, Enum):
        return _canonical(value.value, where)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, type) or callable(value) and hasattr(value, "__qualname__"):
        # A function passed as a setting is code the run uses: its name and its code identify it.
        return {"fn": function_name(value), "code": store.callable_identity(value)}
    if type(value).__module__ == "torch" and type(value).__name__ in ("device", "dtype"):
        return str(value)
    raise ValueError(
        f"Cannot build a stable cache key from {where}={value!r} ({type(value).__name__}). Pass plain settings "
        "(numbers, strings, bools, lists, dicts) and let train_fn build models or data from them.")


def _key_payload(train_fn: Callable, params: dict, fixed: dict, seed: int, profile: str,
                 code: str | None = None) -> dict:
    """Everything that identifies one run (``code``: ``store.callable_identity(train_fn)``, computed once per grid)."""
    # the seed is the sheet's name for it; KIT_SEED, when not 0, is keyed beside it (its runs drew other numbers)
    payload = with_seed_offset({"fn": function_name(train_fn), "code": code or store.callable_identity(train_fn),
                                "params": _canonical(params, "params"), "fixed": _canonical(fixed, "fixed"),
                                "seed": seed, "profile": profile})
    if isinstance(train_fn, functools.partial):  # partial(fn, x=1) is a different experiment than fn
        payload["partial"] = _canonical({"args": list(train_fn.args), "kwargs": train_fn.keywords}, "partial")
    return payload


def cache_key(train_fn: Callable, params: dict, *, seed: int = 0, fixed: dict | None = None,
              profile: str | None = None) -> str:
    """The stable hash naming one run's cache file (settings, seed, profile and ``train_fn``'s code)."""
    return store.content_key(_key_payload(train_fn, params, dict(fixed or {}), seed, get_profile(profile)))


def _run_folder(train_fn: Callable, name: str | None) -> Path:
    """``cache_dir()/runs/<name or qualname>``, with characters unsafe in folder names replaced."""
    label = name or function_name(train_fn).rsplit(".", 1)[-1]
    return cache_dir() / "runs" / re.sub(r"[^A-Za-z0-9_.-]+", "_", label)


# --- One run -------------------------------------------------------------------------------------
@dataclass
class _Run:
    params: dict
    seed: int
    payload: dict
    path: Path  # the run's record (JSON); its weights, when kept, lie beside it as .pt

    @property
    def weights(self) -> Path:
        return self.path.with_suffix(".pt")

    @property
    def lock(self) -> Path:
        return self.path.with_suffix(".lock")

    def label(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in {**self.params, "seed": self.seed}.items())


def _record_problem(record: Any, run: _Run) -> str | None:
    """Why a cache file cannot be this run's record (None when it can)."""
    if not isinstance(record, dict):
        return f"it holds {type(record).__name__} instead of a run record"
    if record.get("key") != run.payload:
        return None if "key" in record else "it has no 'key'"
    if not isinstance(record.get("metrics"), dict):
        return "its 'metrics' is missing or not a mapping"
    if "error" in record:
        return "it records a failed run"
    if not isinstance(record.get("time_s"), (int, float)):
        return "its 'time_s' is missing or not a number"
    if "history" not in record:
        return "it has no 'history'"
    if record["history"] is None:
        return None
    try:
        History.from_dict(record["history"])
    except (TypeError, ValueError, AttributeError, KeyError) as err:
        return f"its 'history' cannot be read ({type(err).__name__}: {err})"
    return None


def _load_record(run: _Run, keep_models: bool) -> dict | None:
    """The cached record of a run, or None if missing, for other settings, damaged, or missing its weights."""
    if not run.path.is_file():
        return None
    record = store.read_json(run.path)
    problem = "it is not valid JSON" if record is None else _record_problem(record, run)
    if problem is not None:  # damaged by hand or by another tool: say which file, then train it afresh
        warnings.warn(f"The cached run {run.path} is damaged ({problem}); training {run.label()} again.",
                      stacklevel=2)
        return None
    if record.get("key") != run.payload:  # a hash collision or a copied file: not this run
        return None
    if keep_models and not run.weights.is_file():  # the History alone cannot give back the trained model
        return None
    return record


def _execute(index: int, train_fn: Callable, run: _Run, fixed: dict, keep_models: bool,
             wait: bool = True, force: bool = False) -> tuple[int, dict, bool] | None:
    """Train one run in this process under its lock and cache it; return (index, record, cached).

    The lock (a file beside the record) makes a second process on the same cache wait for the run and
    then read its record, instead of training it again; with ``wait=False`` a busy run returns None.
    An exception in train_fn becomes an "error" record (not cached).
    """
    with store.file_lock(run.lock, wait=wait, note=run.label()) as locked:
        if not locked:
            return None
        record = None if force else _load_record(run, keep_models)
        if record is not None:  # another process trained it while we waited
            return index, record, True
        return index, _save(run, train_once(train_fn, run.params, fixed, run.seed, keep_models), keep_models), False


def _save(run: _Run, outcome: dict, keep_models: bool) -> dict:
    """The run's record from its outcome (``workers.train_once``); cached (weights first) unless the run failed."""
    if "error" in outcome:
        return {"key": run.payload, "error": outcome["error"], "time_s": outcome["time_s"], "history": None,
                "metrics": {}}
    record = {"key": run.payload, "time_s": outcome["time_s"], "history": outcome["history"],
              "metrics": outcome["metrics"]}
    if keep_models:  # weights first: a record on disk promises that its weights are there too
        store.save_torch(run.weights, {"key": store.content_key(run.payload), "state_dict": outcome["state_dict"]})
    store.write_json(run.path, record)
    return record


# --- Many runs ---------------------------------------------------------------------------------
def _grids(grid: dict | list[dict]) -> list[dict]:
    """The grid as a list of dicts of value lists: one dict is one product, a list of them their union."""
    if isinstance(grid, dict):
        return [grid]
    if isinstance(grid, (list, tuple)) and grid and all(isinstance(g, dict) for g in grid):
        return list(grid)
    raise ValueError(f"grid must be a dict of value lists ({{'lr': [0.1, 0.01]}}) or a non-empty list of them (their "
                     f"runs one after the other, e.g. [{{'depth': [1], 'width': [16]}}, {{'depth': [6], 'width': [8]}}]); "
                     f"got {type(grid).__name__} {grid!r:.80}.")


def _check_grid(grids: list[dict], fixed: dict, repeats: int) -> None:
    """Clear errors for the usual slips: a bare value instead of a list, clashing names."""
    number_setting("repeats", repeats, integer=True, minimum=1)
    for grid in grids:
        for key, values in grid.items():
            if not isinstance(values, (list, tuple, range, np.ndarray)) or len(values) == 0:
                raise ValueError(f"grid[{key!r}] must be a non-empty list of values, got {values!r}; "
                                 f"for a single value write {{{key!r}: [{values!r}]}} or put it in fixed=.")
        clash = set(grid) & set(fixed)
        if clash:
            raise ValueError(f"{sorted(clash)} appear both in grid and in fixed; keep each setting in one of them.")
        if "seed" in grid or "seed" in fixed:
            raise ValueError("Do not pass 'seed' in grid or fixed: run_grid passes seed=0..repeats-1 itself.")


def _plan(train_fn: Callable, grids: list[dict], fixed: dict, repeats: int, profile: str,
          name: str | None) -> list[_Run]:
    """Every (combination, seed) of every grid, in order, with its cache file."""
    folder = _run_folder(train_fn, name)
    code = store.callable_identity(train_fn)
    runs = []
    for grid in grids:
        for combo in itertools.product(*(list(v) for v in grid.values())):
            params = dict(zip(grid, combo))
            for seed in range(repeats):
                payload = _key_payload(train_fn, params, fixed, seed, profile, code)
                runs.append(_Run(params, seed, payload, folder / f"{store.content_key(payload)}.json"))
    return runs


def _pool(train_fn: Callable, fixed: dict, n_jobs: int | None, scheduler: str | None,
          pending: int) -> LocalPool | DaskPool | None:
    """Where the pending runs train: a Dask cluster, local worker processes, or (None) this process."""
    client = cluster.client(scheduler)
    workers = 0 if client is not None else min(_workers(n_jobs), pending)
    if client is None and workers <= 1:
        return None
    try:
        shipment: Shipment = ship(train_fn, fixed)
    except Exception as err:
        if not _is_pickling_error(err):
            raise
        why = f"{type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}"
        if client is not None:
            raise ValueError(f"The grid would train on the Dask cluster (KIT_SCHEDULER or scheduler=), which needs "
                             f"{function_name(train_fn)} and its fixed settings to pickle, and they do not ({why}). "
                             "Let train_fn build what it needs (data, models) from plain settings, or unset "
                             "KIT_SCHEDULER to train on this machine.") from None
        warnings.warn(f"{function_name(train_fn)} (or a fixed setting) cannot be sent to worker processes ({why}); "
                      "its grid trains in this process.", stacklevel=4)
        return None
    return DaskPool(client, shipment) if client is not None else LocalPool(workers, shipment)


def _is_pickling_error(err: Exception) -> bool:
    """Whether cloudpickle refused an object (what it raises for a lock, a generator, an open file, ...)."""
    import pickle

    return isinstance(err, (pickle.PicklingError, TypeError, AttributeError, ValueError, RecursionError))


def _workers(n_jobs: int | None) -> int:
    """Worker processes for ``n_jobs``: None (or -1) means one per usable core while runs train on the CPU."""
    if n_jobs is None or n_jobs == -1:
        from .device import cpu_threads, get_device

        # One GPU is one device however many cores feed it: its runs train here, one after the other.
        return cpu_threads() if get_device().type == "cpu" else 1
    return number_setting("n_jobs (worker processes; None or -1 for every core)", n_jobs, integer=True, minimum=1)


def _execute_all(train_fn: Callable, runs: list[_Run], pending: list[int], fixed: dict, n_jobs: int | None,
                 scheduler: str | None, keep_models: bool, force: bool = False) -> Iterator[tuple[int, dict, bool]]:
    """Yield (index, record, cached) for the pending runs as they finish, here, on local workers or on Dask."""
    pool = _pool(train_fn, fixed, n_jobs, scheduler, len(pending)) if pending else None
    busy = []  # runs another process is training right now: do the others first, then wait for these
    if pool is None:
        for i in pending:
            result = _execute(i, train_fn, runs[i], fixed, keep_models, False, force)
            if result is None:
                busy.append(i)
            else:
                yield result
    else:
        yield from _execute_on(pool, runs, pending, busy, keep_models, force)
    for i in busy:
        yield _execute(i, train_fn, runs[i], fixed, keep_models, True, force)


def _claim(run: _Run, keep_models: bool, force: bool) -> tuple[ExitStack | None, dict | None]:
    """Take the run's lock for the time it trains elsewhere: (held lock, None), (None, its record) when another
    process cached it meanwhile, or (None, None) when another process is training it now."""
    stack = ExitStack()
    if not stack.enter_context(store.file_lock(run.lock, wait=False, note=run.label())):
        stack.close()
        return None, None
    record = None if force else _load_record(run, keep_models)
    if record is not None:
        stack.close()
        return None, record
    return stack, None


def _execute_on(pool: LocalPool | DaskPool, runs: list[_Run], pending: list[int], busy: list[int],
                keep_models: bool, force: bool) -> Iterator[tuple[int, dict, bool]]:
    """Yield (index, record, cached) as the pending runs finish on the pool's workers; this process writes the records.

    At most two runs per worker are in flight (and locked). When a local worker dies, every run in flight
    fails with it: each is tried again, alone, so that a second death is that run's own; it becomes the run's
    error record. Dask's scheduler retries a dead worker's run itself, so its KilledWorker is final.
    """
    queue, again = deque(pending), deque()   # again: runs whose worker died, with the lock they still hold
    in_flight: dict[cf.Future, tuple[int, ExitStack]] = {}
    deaths: Counter = Counter()
    try:
        while queue or again or in_flight:
            alone = again or any(deaths[i] for i, _ in in_flight.values())
            while len(in_flight) < (1 if alone else 2 * pool.slots) and (again or queue):
                if again:
                    i, stack = again.popleft()
                else:
                    i = queue.popleft()
                    stack, record = _claim(runs[i], keep_models, force)
                    if stack is None:  # cached by another process meanwhile, or being trained by one now
                        if record is not None:
                            yield i, record, True
                        else:
                            busy.append(i)
                        continue
                in_flight[pool.submit(runs[i].params, runs[i].seed, keep_models)] = (i, stack)
            if not in_flight:
                continue
            done, _ = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
            for future in done:
                i, stack = in_flight.pop(future)
                error = future.exception()
                if error is None and future.result() == NEED:  # a fresh worker: send the run again with the function
                    in_flight[pool.submit(runs[i].params, runs[i].seed, keep_models, True)] = (i, stack)
                    continue
                if error is not None and not pool.died(error):
                    stack.close()
                    raise error  # NotImplementedError (an unwritten exercise), or the pool itself failed
                if error is not None:
                    deaths[i] += 1
                    if deaths[i] < pool.tries:
                        again.append((i, stack))
                        continue
                    outcome = {"time_s": math.nan, "error": f"WorkerDied: {pool.death} (killed, or out of memory?); "
                               "the other runs went on. Run the grid again to retry it, or train it alone with "
                               "n_jobs=1 to see its own error."}
                else:
                    outcome = absorb(future.result())
                record = _save(runs[i], outcome, keep_models)
                stack.close()
                yield i, record, False
    except BaseException:
        pool.stop()  # Ctrl-C, an unwritten exercise, a lost cluster: nothing more trains, nothing more is written
        raise
    finally:
        for _, stack in [*in_flight.values(), *again]:
            stack.close()


def _count_cached(runs: list[_Run], keep_models: bool) -> int:
    """How many runs have a usable record on disk now (workers may have written some we were not told of)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sum(_load_record(run, keep_models) is not None for run in runs)


def _row(run: _Run, record: dict, cached: bool, keep_models: bool) -> dict:
    """One DataFrame row: settings, seed, summaries, returned scalars, timing, the History."""
    history = None if record.get("history") is None else History.from_dict(record["history"])
    row = {**run.params, "seed": run.seed}
    # A grid setting named like a summary field (a grid over "epochs") keeps its name and value;
    # the summary's number goes into "run_<name>" (e.g. run_epochs: the epochs actually run).
    summary = summarize(history) if history is not None else {}
    row.update({f"run_{k}" if k in run.params else k: v for k, v in summary.items()})
    row.update({k: math.nan if v is None else v for k, v in record.get("metrics", {}).items()})
    row.update(time_s=record.get("time_s", math.nan), cached=cached)
    if "error" in record:
        row["error"] = record["error"]
    if keep_models:
        row["weights"] = None if "error" in record else str(run.weights)
    row["history"] = history
    return row


def run_grid(train_fn: Callable[..., History | dict], grid: dict[str, list] | list[dict[str, list]], *, repeats: int = 1,
             fixed: dict | None = None, profile: str | None = None, force: bool = False, n_jobs: int | None = None,
             scheduler: str | None = None, name: str | None = None, quiet: bool = False, errors: str = "raise",
             keep_models: bool = False) -> pd.DataFrame:
    """Run ``train_fn(**params, **fixed, seed=s)`` for every grid combination and seed; one row per run.

    ``grid`` maps setting names to value lists (every combination runs), or is a list of such dicts whose
    runs follow one another in one grid: ``[{"depth": [1], "width": [16]}, {"depth": [6], "width": [8]}]``
    trains two shapes, not four, and trains them side by side like any grid.
    ``train_fn`` returns a History, or a dict of scalars (optionally with key ``"history"``).
    Finished runs are cached as JSON under their settings and their code (see the module docstring)
    and reused unless ``force=True``; a lambda is refused (define ``train_fn`` with ``def``);
    an exception in one run does not stop the others: every run is tried (and the good ones cached),
    then ``errors="raise"`` (the default) raises ``GridRunError`` naming the failed runs, while
    ``errors="record"`` returns them in an ``error`` column instead. Ctrl-C stops the grid and
    keeps every finished run. The DataFrame's ``attrs["params"]`` names the grid columns
    (``plot_runs`` uses it for labels).

    Where the runs train: ``n_jobs`` local worker processes of one torch thread each (default: one per
    core this process may use, ``KIT_THREADS`` to change it, or 1 where the runs train on a GPU);
    ``n_jobs=1`` trains here. ``scheduler="tcp://host:8786"`` (or ``KIT_SCHEDULER``) sends them to that
    Dask cluster instead. Rows, records and numbers are the same wherever the runs trained.

    ``keep_models=True`` also keeps each run's trained weights: ``train_fn`` then returns
    ``{"history": history, "model": model}``, the frame gets a ``weights`` column, and
    ``trained_model(row, model)`` loads a row's weights into a freshly built model.
    """
    if errors not in ("raise", "record"):
        raise ValueError(f"errors must be 'raise' or 'record'; got {errors!r}.")
    fixed, grids = dict(fixed or {}), _grids(grid)
    _check_grid(grids, fixed, repeats)
    repeats = int(repeats)
    runs = _plan(train_fn, grids, fixed, repeats, get_profile(profile), name)
    settings = list(dict.fromkeys(key for g in grids for key in g))  # the grid's setting names, in order
    records: list[tuple[dict, bool] | None] = [None] * len(runs)
    counts = {"cached": 0, "trained": 0, "errors": 0}
    bar = tqdm(total=len(runs), desc=name or function_name(train_fn).rsplit(".", 1)[-1], disable=quiet)

    def done(i: int, record: dict, cached: bool) -> None:
        records[i] = (record, cached)
        counts["errors" if "error" in record else "cached" if cached else "trained"] += 1
        bar.set_postfix(counts, refresh=False)
        bar.update()

    pending = []
    for i, run in enumerate(runs):
        record = None if force else _load_record(run, keep_models)
        if record is None:
            pending.append(i)
        else:
            done(i, record, cached=True)
    try:
        for i, record, cached in _execute_all(train_fn, runs, pending, fixed, n_jobs, scheduler, keep_models, force):
            done(i, record, cached=cached)
    except KeyboardInterrupt:
        print(f"Interrupted: {_count_cached(runs, keep_models)} of {len(runs)} runs are cached; "
              "run the cell again to resume.", file=sys.stderr)
        raise
    finally:
        bar.close()
        runlog.note_runs(trained=counts["trained"], cached=counts["cached"])
    frame = _frame(runs, records, settings, keep_models)
    if errors == "raise" and counts["errors"]:
        raise GridRunError(frame, settings + ["seed"])
    return frame


class GridRunError(RuntimeError):
    """Some runs of a grid raised; the others finished and are cached (``.frame`` holds all rows)."""

    def __init__(self, frame: pd.DataFrame, columns: list[str]):
        failed = frame[frame["error"].notna()]
        lines = [", ".join(f"{c}={row[c]}" for c in columns) + f": {row['error']}" for _, row in failed.iterrows()]
        super().__init__(f"{len(failed)} of {len(frame)} runs failed (the others are cached; run again to retry "
                         "only the failed ones, or pass errors='record' to get them as an 'error' column):\n  "
                         + "\n  ".join(lines[:10]) + ("\n  ..." if len(lines) > 10 else ""))
        self.frame = frame


def _frame(runs: list[_Run], records: list, params: list[str], keep_models: bool) -> pd.DataFrame:
    """Rows in grid order; ``attrs["params"]`` remembers which columns are settings."""
    frame = pd.DataFrame([_row(run, record, cached, keep_models) for run, (record, cached) in zip(runs, records)])
    if "error" in frame:
        frame["error"] = frame["error"].astype(object).where(frame["error"].notna(), None)
    frame.attrs["params"] = params
    return frame



def train_as_in_grid(train_fn: Callable[..., Any], /, *, seed: int = 0, **params: Any) -> Any:
    """Run ``train_fn(**params, seed=seed)`` here exactly as a grid's run trains on a worker; return what it returns.

    A run the text compares with a grid's run (the grid's winner trained again to keep its model, a check that
    it is the grid's model) must train on the grid's thread count: torch's sums, and so a run's numbers, change
    with it, and a kernel uses every core while each grid run trains on ``WORKER_THREADS``. The kernel's own
    thread count is restored afterwards.
    """
    with cpu_threads_for(WORKER_THREADS):
        return train_fn(**params, seed=seed)


def trained_model(row: Any, model: "nn.Module") -> "nn.Module":
    """Load the weights a ``run_grid(keep_models=True)`` row kept into ``model`` (built alike); return it in eval mode."""
    path = row.get("weights") if hasattr(row, "get") else None
    if not path:
        raise ValueError("This row has no kept weights: run the grid with run_grid(..., keep_models=True), "
                         "and pick a row whose run did not fail.")
    try:
        saved = store.load_torch(path)
        model.load_state_dict(saved["state_dict"])
    except FileNotFoundError:
        raise FileNotFoundError(f"The weights {path} are gone from the cache; run the run_grid cell again "
                                "(it retrains the runs whose weights are missing).") from None
    return model.eval()

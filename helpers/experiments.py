"""Run many trainings and remember them: ``run_grid`` with an on-disk cache (sweeps live in ``sweeps``).

Every finished run is written to ``cache_dir()/"runs"/<name>/<key>.json`` the moment it ends (and,
with ``keep_models=True``, its trained weights to ``<key>.pt``), where ``key`` is a stable hash
(``store.content_key``) of the training function's name (module + qualname), its code
(``store.callable_identity``: its source, the notebook and project functions it calls, the kit's
sources), its settings, the seed and the run profile. Re-running an unchanged notebook therefore
takes seconds, an interrupted grid resumes where it stopped, and editing ``train_fn``, a function it
calls or ``helpers/`` trains the runs again (the old records stay on disk under their old keys).
A lambda, or a function whose source cannot be read, is refused: its runs could not be keyed by code.

Each run is trained under a lock (``<key>.lock`` beside its record, ``store.file_lock``): a second
process running the same grid on the same cache waits for that run and reads its record instead of
training it twice. The operating system drops the lock when its holder dies, so a killed run never
blocks the next attempt. A record that cannot be this run's (damaged, wrong shape) is named in a
warning and trained again.
"""
from __future__ import annotations

import functools
import itertools
import math
import os
import pickle
import re
import sys
import time
import warnings
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import runlog, store
from .config import cache_dir, get_profile, number_setting
from .history import History, json_safe, summarize

if TYPE_CHECKING:
    from torch import nn

__all__ = ["run_grid", "GridRunError", "cache_key", "function_name", "summarize", "trained_model"]


# joblib backend for n_jobs > 1: separate processes, since training holds the GIL for much of its time.
PARALLEL_BACKEND = "loky"


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
    payload = {"fn": function_name(train_fn), "code": code or store.callable_identity(train_fn),
               "params": _canonical(params, "params"), "fixed": _canonical(fixed, "fixed"), "seed": seed,
               "profile": profile}
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


# Columns run_grid fills itself; a grid setting keeps its name, so these never overwrite one.
RESERVED_COLUMNS = {"seed", "time_s", "cached", "error", "weights", "history", *summarize(History())}


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
    """Train one run under its lock and cache it; return (index, record, cached).

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
        return index, _train(train_fn, run, fixed, keep_models), False


def _train(train_fn: Callable, run: _Run, fixed: dict, keep_models: bool) -> dict:
    """Train one run; cache it (and its weights) if it succeeded; an exception becomes an "error" record."""
    start = time.perf_counter()
    try:
        result = train_fn(**run.params, **fixed, seed=run.seed)
        parts, model = _encode(result, run.params)
        if keep_models and model is None:
            raise ValueError("run_grid(keep_models=True) needs train_fn to return {'history': ..., 'model': model}.")
    except NotImplementedError:  # an exercise not written yet is not a broken configuration: say so now
        raise
    except Exception as exc:  # one broken configuration must not stop the grid
        return {"key": run.payload, "error": f"{type(exc).__name__}: {exc}",
                "time_s": time.perf_counter() - start, "history": None, "metrics": {}}
    record = {"key": run.payload, "time_s": time.perf_counter() - start, **parts}
    if keep_models:  # weights first: a record on disk promises that its weights are there too
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        store.save_torch(run.weights, {"key": store.content_key(run.payload), "state_dict": state})
    store.write_json(run.path, record)
    return record


# --- Many runs ---------------------------------------------------------------------------------
def _check_grid(grid: dict, fixed: dict, repeats: int) -> None:
    """Clear errors for the usual slips: a bare value instead of a list, clashing names."""
    number_setting("repeats", repeats, integer=True, minimum=1)
    for key, values in grid.items():
        if not isinstance(values, (list, tuple, range, np.ndarray)) or len(values) == 0:
            raise ValueError(f"grid[{key!r}] must be a non-empty list of values, got {values!r}; "
                             f"for a single value write {{{key!r}: [{values!r}]}} or put it in fixed=.")
    clash = set(grid) & set(fixed)
    if clash:
        raise ValueError(f"{sorted(clash)} appear both in grid and in fixed; keep each setting in one of them.")
    if "seed" in grid or "seed" in fixed:
        raise ValueError("Do not pass 'seed' in grid or fixed: run_grid passes seed=0..repeats-1 itself.")


def _plan(train_fn: Callable, grid: dict, fixed: dict, repeats: int, profile: str, name: str | None) -> list[_Run]:
    """Every (combination, seed) with its cache file."""
    folder = _run_folder(train_fn, name)
    code = store.callable_identity(train_fn)
    runs = []
    for combo in itertools.product(*(list(v) for v in grid.values())):
        params = dict(zip(grid, combo))
        for seed in range(repeats):
            payload = _key_payload(train_fn, params, fixed, seed, profile, code)
            runs.append(_Run(params, seed, payload, folder / f"{store.content_key(payload)}.json"))
    return runs


def _parallel_ok(train_fn: Callable, n_jobs: int) -> bool:
    """Worker processes import train_fn by name: it must live in a module, not in a notebook."""
    if n_jobs == 1:
        return False
    importable = (getattr(train_fn, "__module__", "__main__") != "__main__"
                  and "<locals>" not in function_name(train_fn) and "<lambda>" not in function_name(train_fn))
    try:
        pickle.dumps(train_fn)
    except Exception:
        importable = False
    if not importable:
        warnings.warn(f"n_jobs={n_jobs} needs a train_fn importable from a module (defined in a .py file, not "
                      f"in a notebook or inside another function); {function_name(train_fn)} is not, so the "
                      "grid runs in this process (n_jobs=1).", stacklevel=3)
    return importable


def _execute_all(train_fn: Callable, runs: list[_Run], pending: list[int], fixed: dict,
                 n_jobs: int, keep_models: bool, force: bool = False) -> Iterator[tuple[int, dict, bool]]:
    """Yield (index, record, cached) for the pending runs as they finish, here or in worker processes."""
    if not _parallel_ok(train_fn, n_jobs):
        busy = []  # runs another process is training right now: do the others first, then wait for these
        for i in pending:
            result = _execute(i, train_fn, runs[i], fixed, keep_models, False, force)
            if result is None:
                busy.append(i)
            else:
                yield result
        for i in busy:
            yield _execute(i, train_fn, runs[i], fixed, keep_models, True, force)
        return
    from joblib import Parallel, delayed, parallel_config
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    # One thread per worker: n_jobs torch processes each using every core would fight over them.
    limit = {"inner_max_num_threads": 1} if PARALLEL_BACKEND == "loky" else {}
    try:
        with parallel_config(backend=PARALLEL_BACKEND, **limit):
            jobs = (delayed(_execute)(i, train_fn, runs[i], fixed, keep_models, True, force) for i in pending)
            yield from Parallel(n_jobs=n_jobs, return_as="generator_unordered")(jobs)
    except TerminatedWorkerError as err:
        lost = [runs[i].label() for i in pending if _died_while_training(runs[i])]
        which = "; ".join(lost) if lost else "(the run could not be told)"
        raise RuntimeError(f"A worker process died (killed, or out of memory?) while training {which}. The runs "
                           "that finished are cached: run the cell again to resume, or pass n_jobs=1 to train "
                           "in this process and see the run's own error.") from err


def _died_while_training(run: _Run) -> bool:
    """True when a process took this run's lock, is gone, and left no record: it died during the run."""
    holder = store.lock_holder(run.lock)
    if holder is None or run.path.is_file():
        return False
    try:
        os.kill(holder[0], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


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


def run_grid(train_fn: Callable[..., History | dict], grid: dict[str, list], *, repeats: int = 1,
             fixed: dict | None = None, profile: str | None = None, force: bool = False, n_jobs: int = 1,
             name: str | None = None, quiet: bool = False, errors: str = "raise",
             keep_models: bool = False) -> pd.DataFrame:
    """Run ``train_fn(**params, **fixed, seed=s)`` for every grid combination and seed; one row per run.

    ``train_fn`` returns a History, or a dict of scalars (optionally with key ``"history"``).
    Finished runs are cached as JSON under their settings and their code (see the module docstring)
    and reused unless ``force=True``; a lambda is refused (define ``train_fn`` with ``def``);
    an exception in one run does not stop the others: every run is tried (and the good ones cached),
    then ``errors="raise"`` (the default) raises ``GridRunError`` naming the failed runs, while
    ``errors="record"`` returns them in an ``error`` column instead. Ctrl-C stops the grid and
    keeps every finished run. ``n_jobs > 1`` trains in local worker processes (joblib), which
    needs ``train_fn`` defined in an importable module (a .py file); a function defined in a
    notebook falls back to ``n_jobs=1`` with a warning. The DataFrame's ``attrs["params"]``
    names the grid columns (``plot_runs`` uses it for labels).

    ``keep_models=True`` also keeps each run's trained weights: ``train_fn`` then returns
    ``{"history": history, "model": model}``, the frame gets a ``weights`` column, and
    ``trained_model(row, model)`` loads a row's weights into a freshly built model.
    """
    if errors not in ("raise", "record"):
        raise ValueError(f"errors must be 'raise' or 'record'; got {errors!r}.")
    fixed = dict(fixed or {})
    _check_grid(grid, fixed, repeats)
    repeats = int(repeats)
    runs = _plan(train_fn, grid, fixed, repeats, get_profile(profile), name)
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
        for i, record, cached in _execute_all(train_fn, runs, pending, fixed, n_jobs, keep_models, force):
            done(i, record, cached=cached)
    except KeyboardInterrupt:
        print(f"Interrupted: {_count_cached(runs, keep_models)} of {len(runs)} runs are cached; "
              "run the cell again to resume.", file=sys.stderr)
        raise
    finally:
        bar.close()
        runlog.note_runs(trained=counts["trained"], cached=counts["cached"])
    frame = _frame(runs, records, list(grid), keep_models)
    if errors == "raise" and counts["errors"]:
        raise GridRunError(frame, list(grid) + ["seed"])
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

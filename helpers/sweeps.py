"""Hyperparameter sweeps with optuna: declared spaces, resumable studies, tidy results.

A sweep is a study stored in a database (SQLite under ``cache_dir()/"sweeps"`` by default),
so re-running a notebook only runs the trials that are still missing; a study is kept per version
of the objective's code (``store.callable_identity``), so editing the objective runs it again. Every
trial keeps its per-epoch metrics in ``trial.user_attrs["history"]`` (``History.to_dict()``).
"""
from __future__ import annotations

import functools
import itertools
import math
import os
import socket
import warnings
from datetime import datetime, timedelta
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import optuna
import pandas as pd

from . import runlog, store
from .config import cache_dir, get_profile, number_setting
from .history import History, summarize, trial_history

__all__ = ["Categorical", "IntRange", "LogUniform", "Uniform", "Space", "run_sweep", "sweep_frame", "trial_history",
           "default_storage", "grid_size", "n_finished", "SAMPLERS", "METRICS", "StudyMismatchError",
           "IncompleteSweepWarning"]

SAMPLERS = ("random", "grid", "tpe", "bayes")
# Per-epoch History fields a sweep can optimise.
METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
# A study is stored per version of its objective's code: "<study_name>@<code identity>".
VERSION_MARK = "@"
# A RUNNING trial that names no live worker and started longer ago than this was cut off by a crash.
STALE_AFTER = timedelta(minutes=1)


class StudyMismatchError(ValueError):
    """A stored study was made for another search space, objective, metric or direction."""


class IncompleteSweepWarning(UserWarning):
    """A sweep ended with fewer finished trials than it was asked for (some trials failed)."""

# optuna logs one INFO line per trial; the sweep table tells the story instead.
# (Call optuna.logging.set_verbosity(optuna.logging.INFO) to get them back.)
optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class Categorical:
    """A choice among a few values (numbers, strings, bools)."""

    choices: tuple

    def __init__(self, choices):
        choices = tuple(choices)
        if not choices:
            raise ValueError("Categorical needs at least one choice, e.g. Categorical(['sgd', 'adam']).")
        object.__setattr__(self, "choices", choices)


@dataclass(frozen=True)
class IntRange:
    """An integer from ``low`` to ``high`` inclusive (optionally every ``step``, or log-spaced)."""

    low: int
    high: int
    step: int = 1
    log: bool = False

    def __post_init__(self):
        if self.low > self.high:
            raise ValueError(f"IntRange needs low <= high, got low={self.low}, high={self.high}.")


@dataclass(frozen=True)
class LogUniform:
    """A positive float drawn uniformly on a log scale between ``low`` and ``high``."""

    low: float
    high: float

    def __post_init__(self):
        if not 0 < self.low < self.high:
            raise ValueError(f"LogUniform needs 0 < low < high, got low={self.low}, high={self.high}.")


@dataclass(frozen=True)
class Uniform:
    """A float drawn uniformly between ``low`` and ``high``."""

    low: float
    high: float

    def __post_init__(self):
        if not self.low < self.high:
            raise ValueError(f"Uniform needs low < high, got low={self.low}, high={self.high}.")


Space = dict[str, Categorical | IntRange | LogUniform | Uniform]


def _suggest(trial: optuna.Trial, name: str, dim) -> Any:
    """Ask the trial for one value of one declared dimension."""
    if isinstance(dim, Categorical):
        return trial.suggest_categorical(name, list(dim.choices))
    if isinstance(dim, IntRange):
        return trial.suggest_int(name, dim.low, dim.high, step=dim.step, log=dim.log)
    if isinstance(dim, LogUniform):
        return trial.suggest_float(name, dim.low, dim.high, log=True)
    if isinstance(dim, Uniform):
        return trial.suggest_float(name, dim.low, dim.high)
    raise ValueError(f"Search space entry {name!r} is {dim!r}; use Categorical, IntRange, LogUniform or Uniform.")


def _grid_values(space: Space) -> dict[str, list]:
    """Turn a space of finite dimensions into the lists GridSampler walks through."""
    values = {}
    for name, dim in space.items():
        if isinstance(dim, Categorical):
            values[name] = list(dim.choices)
        elif isinstance(dim, IntRange) and not dim.log:
            values[name] = list(range(dim.low, dim.high + 1, dim.step))
        else:
            raise ValueError(f"The grid sampler needs finite dimensions, but {name!r} is {dim!r}; "
                             "declare it as Categorical([...]) or a linear IntRange, or use sampler='tpe'/'random'.")
    return values


def grid_size(space: Space) -> int:
    """Number of points of a finite space (what sampler='grid' visits)."""
    return math.prod(len(v) for v in _grid_values(space).values())


def _make_sampler(sampler: str, seed: int) -> optuna.samplers.BaseSampler:
    """Build the optuna sampler named by ``sampler``.

    A grid sweep enqueues its points itself (``_run_grid``), in a fixed order and only the ones not
    yet finished, so it needs no GridSampler: optuna's orders the grid by its seed and counts failed
    trials as visited, which made a resumed grid skip some points and repeat others.
    """
    if sampler in ("random", "grid"):
        return optuna.samplers.RandomSampler(seed=seed)
    if sampler in ("tpe", "bayes"):
        return optuna.samplers.TPESampler(seed=seed)
    raise ValueError(f"Unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}.")


def default_storage(study_name: str, profile: str | None = None) -> str:
    """SQLite URL of a sweep's default database: ``cache_dir()/sweeps/<study_name>-<profile>.db``."""
    folder = cache_dir() / "sweeps"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / f'{study_name}-{get_profile(profile)}.db'}"


def _storage(storage: str | Path | None, study_name: str, profile: str | None):
    """A database URL, a path to an SQLite file, "memory" (not persisted), or None for the default."""
    if storage is None:
        return default_storage(study_name, profile)
    if storage == "memory":
        return optuna.storages.InMemoryStorage()
    if isinstance(storage, Path) or "://" not in str(storage):
        Path(storage).parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{Path(storage).resolve()}"
    return str(storage)


def n_finished(study: optuna.Study) -> int:
    """Number of trials that finished (complete or pruned); failed or running ones do not count."""
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def _objective_identity(objective: Callable) -> dict:
    """The objective's name and bound arguments: which question its trials answer (not its module: a notebook
    and a worker script importing the same function from a .py file share one study). Its code is the
    study's version (``_open_study``)."""
    fn, bound = objective, []
    while isinstance(fn, functools.partial):
        bound.append(repr((fn.args, sorted(fn.keywords.items()))))
        fn = fn.func
    name = getattr(fn, "__qualname__", type(fn).__qualname__)
    return {"name": name, "bound": bound}


def _fingerprint(objective: Callable, space: Space, metric: str, direction: str, reduce: str) -> dict:
    """What a study's trials mean: the search space, the objective, and how a trial is scored."""
    return {"space": {name: repr(dim) for name, dim in sorted(space.items())},
            "objective": _objective_identity(objective), "metric": metric, "direction": direction,
            "reduce": reduce}


def _differences(stored: dict, fingerprint: dict) -> list[str]:
    """The parts of a stored fingerprint that ask another question than this sweep's."""
    keys = [k for k in fingerprint if k != "objective" and stored.get(k) != fingerprint[k]]
    objective = stored.get("objective") or {}
    if {k: objective.get(k) for k in ("name", "bound")} != fingerprint["objective"]:
        keys.insert(0, "objective")  # (studies stored before code versions also held a source hash here)
    return keys


def _open_study(storage: Any, study_name: str, fingerprint: dict, code: str, direction: str,
                where: str) -> optuna.Study:
    """The study of this sweep at this version of its code, stored as ``<study_name>@<code>``.

    A study belongs to its name *and* to its question (search space, objective, metric, direction,
    reduce): a stored version of ``study_name`` that asked another question raises StudyMismatchError.
    The objective's code (``store.callable_identity``: its source, the functions it calls, the kit) picks
    the version: after an edit the sweep runs in a fresh study, and going back to the old code finds the
    old trials again.
    """
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        name, stored = summary.study_name, summary.user_attrs.get("fingerprint")
        if stored is None or name.partition(VERSION_MARK)[0] != study_name:
            continue  # another study, or one stored without a fingerprint (never reused)
        differs = _differences(stored, fingerprint)
        if differs:
            suggestion = f"{study_name}-{store.content_key(fingerprint, 8)}"
            raise StudyMismatchError(
                f"The study {study_name!r} in {where} was made for another sweep: its "
                + ", ".join("objective function (name or bound arguments)" if k == "objective" else
                            "search space" if k == "space" else k for k in differs)
                + " differ. Its trials would not answer this sweep's question, so they are not reused. Fix: pass "
                f"a new study_name (e.g. study_name={suggestion!r}), or delete the stored study to start over.")
    study = optuna.create_study(storage=storage, study_name=f"{study_name}{VERSION_MARK}{code[:12]}",
                                direction=direction, load_if_exists=True)
    if "fingerprint" not in study.user_attrs:
        study.set_user_attr("fingerprint", fingerprint)
    return study


def _worker() -> str:
    """Who runs a trial: host and process id, so a later call can tell a crashed trial from a live one."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _is_stale(trial: optuna.trial.FrozenTrial) -> bool:
    """True for a RUNNING trial whose process is gone (killed), or that never got going long ago."""
    worker = trial.user_attrs.get("worker")
    if worker is None:
        started = trial.datetime_start
        return started is not None and datetime.now() - started > STALE_AFTER
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname():
        return False  # another machine's trial: only that machine can tell whether it still runs
    if int(pid) == os.getpid():
        return True  # this process is starting a sweep, so its own earlier trial was interrupted
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _fail_stale_trials(study: optuna.Study) -> None:
    """Mark trials cut off by a crash as FAIL, so they are retried rather than waited for."""
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if _is_stale(trial):
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)


def _grid_points(space: Space) -> list[dict]:
    """Every grid point, in the order the space declares its values (the same order every call)."""
    values = _grid_values(space)
    return [dict(zip(values, combo)) for combo in itertools.product(*values.values())]


def _point_key(params: dict) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


def _next_grid_point(study: optuna.Study, points: list[dict], skip: set) -> dict | None:
    """The first grid point with no finished, queued or running trial, and not in ``skip`` (or None)."""
    taken = set(skip)
    for trial in study.get_trials(deepcopy=False):
        if trial.state in FINISHED or trial.state in (optuna.trial.TrialState.WAITING,
                                                      optuna.trial.TrialState.RUNNING):
            params = trial.params or trial.system_attrs.get("fixed_params", {})
            taken.add(_point_key(params))
    return next((p for p in points if _point_key(p) not in taken), None)


def _queued(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))


def _objective_wrapper(objective: Callable, space: Space, metric: str, direction: str, reduce: str):
    """Adapt ``objective(params, trial_number) -> History`` to optuna's ``trial -> float``."""
    worst = math.inf if direction == "minimize" else -math.inf

    def run(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", _worker())
        params = {name: _suggest(trial, name, dim) for name, dim in space.items()}
        try:
            history = objective(params, trial.number)
        except Exception as exc:  # optuna marks the trial failed; keep the reason for the warning and the table
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            raise
        if isinstance(history, dict):
            history = history["history"]
        trial.set_user_attr("history", history.to_dict())
        trial.set_user_attr("diverged", bool(history.diverged))
        value = _history_value(history, metric, reduce)
        # A diverged run is a result, not a crash: it gets the worst possible value, so
        # the sweep goes on and TPE learns to avoid that region.
        return worst if history.diverged or not math.isfinite(value) else value

    return run


def _history_value(history: History, metric: str, reduce: str) -> float:
    """Final (last finite) or best value of one per-epoch metric."""
    return history.final(metric) if reduce == "final" else history.best(metric)


def run_sweep(objective: Callable[[dict, int], History], space: Space, *, n_trials: int | None,
              sampler: str = "tpe", metric: str = "val_loss", direction: str = "minimize",
              storage: str | Path | None = None, study_name: str = "sweep", seed: int = 0,
              profile: str | None = None, reduce: str = "final", quiet: bool = False) -> optuna.Study:
    """Run (or resume) a hyperparameter sweep until ``n_trials`` trials have finished.

    ``objective(params, trial_number)`` trains one configuration and returns its History;
    the trial's value is the final (``reduce="final"``) or best (``"best"``) value of ``metric``.
    The study lives in ``storage`` (default: an SQLite file in ``cache_dir()/"sweeps"``; also a
    database URL, a file path, or "memory" for a throw-away study), so a second call counts
    the finished trials and only runs the missing ones. A diverged run
    is recorded with value +inf (minimize) or -inf (maximize); an exception marks the trial
    failed and the sweep goes on (failed trials do not count as finished: the next call
    retries them, and a call that ends short of ``n_trials`` warns with ``IncompleteSweepWarning``).
    A trial cut off by a crash (its process is gone) is marked failed and retried. ``sampler`` is
    "random", "grid" (Categorical/IntRange only, visited in declaration order, each point once however
    often the sweep is interrupted; ``n_trials=None`` means the whole grid) or "tpe"/"bayes".

    A study belongs to its name *and* to what it measures: the first call stores a fingerprint of the
    search space, the objective (its name) and ``metric``/``direction``/``reduce``; a later call with the
    same name but another fingerprint raises ``StudyMismatchError`` instead of returning trials of another
    sweep. The objective's code (its source, the notebook functions it calls, ``helpers/``) versions the
    study: after editing any of them the sweep runs its trials again, in the study ``<study_name>@<code>``
    (the returned study's ``study_name``), and the old code's trials stay stored under their own version.

    Several processes or machines can share one study through a database server; run the
    same call on each of them and together they stop at ``n_trials``::

        run_sweep(train_one, {"lr": LogUniform(1e-4, 1e-1)}, n_trials=100,
                  storage="postgresql://user:password@dbhost/sweeps", study_name="mlp-lr")

    (An SQLite file is fine for several processes on one machine, not over a network share.)
    """
    if metric not in METRICS:
        raise ValueError(f"Unknown metric {metric!r}; choose one of {', '.join(METRICS)}.")
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction must be 'minimize' or 'maximize', got {direction!r}.")
    if reduce not in ("final", "best"):
        raise ValueError(f"reduce must be 'final' or 'best', got {reduce!r}.")
    if sampler not in SAMPLERS:
        raise ValueError(f"Unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}.")
    if sampler == "grid":
        _grid_values(space)  # a continuous dimension is refused before any study is touched
    if not space:
        raise ValueError("The search space is empty; give at least one dimension, e.g. {'lr': LogUniform(1e-4, 1e-1)}.")
    if n_trials is None:
        if sampler != "grid":
            raise ValueError("n_trials=None is only allowed with sampler='grid' (it means the whole grid).")
        n_trials = grid_size(space)
    n_trials = number_setting("n_trials", n_trials, integer=True, minimum=1)
    if sampler == "grid":
        n_trials = min(n_trials, grid_size(space))  # a grid has no more points to visit
    where = "memory" if storage == "memory" else str(storage or default_storage(study_name, profile))
    study = _open_study(_storage(storage, study_name, profile), study_name,
                        _fingerprint(objective, space, metric, direction, reduce), store.callable_identity(objective),
                        direction, where)
    _fail_stale_trials(study)
    done, before = n_finished(study), len(study.trials)
    # Re-seed past the trials already in the study, so a resumed random sweep does not
    # replay the configurations it already tried.
    study.sampler = _make_sampler(sampler, seed + len(study.trials))
    study.set_user_attr("metric", metric)
    run = _objective_wrapper(objective, space, metric, direction, reduce)
    if done < n_trials and sampler == "grid":
        _run_grid(study, run, _grid_points(space), n_trials, quiet)
    elif done < n_trials:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            stop_at = optuna.study.MaxTrialsCallback(n_trials, states=FINISHED)
        study.optimize(run, n_trials=n_trials - done, callbacks=[stop_at], catch=(Exception,),
                       show_progress_bar=not quiet)
    runlog.note_runs(trained=len(study.trials) - before, cached=min(done, n_trials))
    _warn_if_incomplete(study, n_trials, before)
    return study


def _run_grid(study: optuna.Study, run: Callable, points: list[dict], n_trials: int, quiet: bool) -> None:
    """Run the missing grid points one at a time, first to last; each call of optimize takes the queued one."""
    from tqdm.auto import tqdm

    budget = n_trials - n_finished(study)
    tried: set = set()  # a failing point is tried once per call, not again and again
    with tqdm(total=budget, disable=quiet, desc=study.study_name) as bar:
        for _ in range(budget):
            if n_finished(study) >= n_trials:
                break
            if not _queued(study):
                point = _next_grid_point(study, points, tried)
                if point is None:
                    break  # every point is finished, failed in this call, or being run by another process
                tried.add(_point_key(point))
                study.enqueue_trial(point)
            study.optimize(run, n_trials=1, catch=(Exception,), show_progress_bar=False)
            bar.update()


def _warn_if_incomplete(study: optuna.Study, n_trials: int, before: int) -> None:
    """Say so when a call ends with fewer finished trials than asked for (failed trials are retried next call)."""
    finished = n_finished(study)
    if finished >= n_trials:
        return
    failed = [t for t in study.trials[before:] if t.state == optuna.trial.TrialState.FAIL]
    reason = failed[-1].user_attrs.get("error", "") if failed else ""
    reason = f" The last failure: {reason}." if reason else ""
    warnings.warn(f"Sweep {study.study_name!r}: only {finished} of {n_trials} trials finished; "
                  f"{len(failed)} failed in this call.{reason} Run the call again to retry them.",
                  IncompleteSweepWarning, stacklevel=3)


def sweep_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value, params, summary metrics, duration and its History."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        duration = trial.duration.total_seconds() if trial.duration is not None else math.nan
        history = trial_history(trial)
        rows.append({"trial": trial.number, "state": trial.state.name,
                     "value": math.nan if trial.value is None else trial.value, **trial.params,
                     **(summarize(history) if history is not None else {}),
                     "diverged": bool(trial.user_attrs.get("diverged", False)),
                     "duration_s": duration, "history": history})
    frame = pd.DataFrame(rows)
    frame.attrs["params"] = sorted({name for t in study.get_trials(deepcopy=False) for name in t.params})
    return frame

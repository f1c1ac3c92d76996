"""Hyperparameter sweeps with optuna: declared spaces, resumable studies, tidy results.

A sweep is a study stored in a database (SQLite under ``cache_dir()/"sweeps"`` by default),
so re-running a notebook only runs the trials that are still missing. Every trial keeps its
per-epoch metrics in ``trial.user_attrs["history"]`` (``History.to_dict()``).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import optuna
import pandas as pd

from . import runlog
from .config import cache_dir, get_profile
from .record import History, summarize, trial_history

__all__ = ["Categorical", "IntRange", "LogUniform", "Uniform", "Space", "run_sweep", "sweep_frame", "trial_history",
           "default_storage", "grid_size", "n_finished", "SAMPLERS", "METRICS"]

SAMPLERS = ("random", "grid", "tpe", "bayes")
# Per-epoch History fields a sweep can optimise.
METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)

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


def _make_sampler(sampler: str, space: Space, seed: int) -> optuna.samplers.BaseSampler:
    """Build the optuna sampler named by ``sampler``."""
    if sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if sampler == "grid":
        return optuna.samplers.GridSampler(_grid_values(space), seed=seed)
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


def _objective_wrapper(objective: Callable, space: Space, metric: str, direction: str, reduce: str):
    """Adapt ``objective(params, trial_number) -> History`` to optuna's ``trial -> float``."""
    worst = math.inf if direction == "minimize" else -math.inf

    def run(trial: optuna.Trial) -> float:
        params = {name: _suggest(trial, name, dim) for name, dim in space.items()}
        history = objective(params, trial.number)
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
    retries them). ``sampler`` is "random", "grid" (Categorical/IntRange only; ``n_trials=None``
    means the whole grid) or "tpe"/"bayes".

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
    if not space:
        raise ValueError("The search space is empty; give at least one dimension, e.g. {'lr': LogUniform(1e-4, 1e-1)}.")
    if n_trials is None:
        if sampler != "grid":
            raise ValueError("n_trials=None is only allowed with sampler='grid' (it means the whole grid).")
        n_trials = grid_size(space)
    study = optuna.create_study(storage=_storage(storage, study_name, profile), study_name=study_name,
                                direction=direction, load_if_exists=True,
                                sampler=_make_sampler(sampler, space, seed))
    done, before = n_finished(study), len(study.trials)
    # Re-seed past the trials already in the study, so a resumed random sweep does not
    # replay the configurations it already tried.
    study.sampler = _make_sampler(sampler, space, seed + len(study.trials))
    study.set_user_attr("metric", metric)
    if done < n_trials:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            stop_at = optuna.study.MaxTrialsCallback(n_trials, states=FINISHED)
        study.optimize(_objective_wrapper(objective, space, metric, direction, reduce),
                       n_trials=n_trials - done, callbacks=[stop_at], catch=(Exception,),
                       show_progress_bar=not quiet)
    runlog.note_runs(trained=len(study.trials) - before, cached=min(done, n_trials))
    return study


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

"""Hyperparameter sweeps with optuna: declared spaces, resumable studies, tidy results, workers on many machines.

A sweep is a study stored in a database (SQLite under ``cache_dir()/"sweeps"`` by default; a journal file or
PostgreSQL for several processes, see ``helpers.sweep_storage``), so re-running a notebook only runs the trials
that are still missing. A study is kept per version of the objective's code (``store.callable_identity``) and
run profile, so editing the objective runs it again. Every trial keeps its per-epoch metrics in
``trial.user_attrs["history"]`` (``History.to_dict()``).

Several processes can work on one study: ``run_sweep(..., n_jobs=3)`` on this machine, and
``python -m helpers.sweeps worker STUDY`` on any number of machines. Each process claims one trial at a time
under the storage's claim lock, so together they stop at the trial budget and a grid sweep visits each point
once. A worker finds the objective by the importable name the study recorded (``module:function``, never a
pickle), so the objective must live in a .py file, not in the notebook.
"""
from __future__ import annotations

import argparse
import functools
import importlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, Callable, Sequence

import optuna
import pandas as pd

from . import runlog, store
from .config import REPO_ROOT, SEED_ENV, get_profile, number_setting, seed_offset, shifted_seed
from .history import History, summarize, trial_history
from .search_space import (Categorical, IntRange, LogUniform, Space, Uniform, grid_points, grid_size, grid_values,
                           point_key, space_from_json, space_to_json, suggest)
from .sweep_storage import STORAGE_ENV, SweepStorage, SweepStorageError, default_storage, resolve

__all__ = ["Categorical", "IntRange", "LogUniform", "Uniform", "Space", "run_sweep", "open_sweep", "work",
           "sweep_frame", "trial_history", "default_storage", "grid_size", "n_finished", "SAMPLERS", "METRICS",
           "StudyMismatchError", "ObjectiveNotImportableError", "SweepStorageError", "IncompleteSweepWarning"]

SAMPLERS = ("random", "grid", "tpe", "bayes")
# Per-epoch History fields a sweep can optimise.
METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")
State = optuna.trial.TrialState
FINISHED = (State.COMPLETE, State.PRUNED)
# A study is stored per version of its objective's code and run profile: "<study_name>@<version>".
VERSION_MARK = "@"
# A RUNNING trial that names no live worker and started longer ago than this was cut off by a crash.
STALE_AFTER = timedelta(minutes=1)
RECIPE = "recipe"   # the study's user attribute that tells a worker process how to run it


class StudyMismatchError(ValueError):
    """A stored study was made for another search space, objective, metric or direction (or other code)."""


class ObjectiveNotImportableError(ValueError):
    """Another process cannot import the sweep's objective (it is defined in a notebook, say)."""


class IncompleteSweepWarning(UserWarning):
    """A sweep ended with fewer finished trials than it was asked for (some trials failed)."""

# optuna logs one INFO line per trial; the sweep table tells the story instead.
# (Call optuna.logging.set_verbosity(optuna.logging.INFO) to get them back.)
optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class Plan:
    """What a process working on a study needs besides the objective: how to sample and score, and when to stop."""

    space: Space
    sampler: str
    metric: str
    direction: str
    reduce: str
    n_trials: int
    seed: int


def _make_sampler(sampler: str, seed: int) -> optuna.samplers.BaseSampler:
    """Build the optuna sampler named by ``sampler``.

    A grid sweep enqueues its points itself (``_claim``), in a fixed order and only the ones not yet taken,
    so it needs no GridSampler: optuna's orders the grid by its seed and counts failed trials as visited,
    which made a resumed grid skip some points and repeat others (and several processes repeat points).
    """
    if sampler in ("random", "grid"):
        return optuna.samplers.RandomSampler(seed=shifted_seed(seed))
    if sampler in ("tpe", "bayes"):
        return optuna.samplers.TPESampler(seed=shifted_seed(seed))
    raise ValueError(f"Unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}.")


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


def _version(code: str, profile: str) -> str:
    """What follows the '@' in a stored study's name: the objective's code and the profile its trials ran in.

    The profile is part of it because a shared storage (``KIT_SWEEP_STORAGE``) holds the quick and the full
    profile's studies side by side, and the settings an objective reads from the profile are not in its code.
    """
    # KIT_SEED draws other trials and trains them from other seeds: a study of its own (named as before at 0)
    offset = seed_offset()
    return store.content_key([code, profile] + ([{"seed_offset": offset}] if offset else []), 12)


def _open_study(storage: SweepStorage, study_name: str, fingerprint: dict, version: str,
                direction: str) -> optuna.Study:
    """The study of this sweep at this version of its code and profile, stored as ``<study_name>@<version>``.

    A study belongs to its name *and* to its question (search space, objective, metric, direction,
    reduce): a stored version of ``study_name`` that asked another question raises StudyMismatchError.
    The objective's code (``store.callable_identity``: its source, the functions it calls, the kit) picks
    the version: after an edit the sweep runs in a fresh study, and going back to the old code finds the
    old trials again.
    """
    for summary in optuna.get_all_study_summaries(storage.optuna(), include_best_trial=False):
        name, stored = summary.study_name, summary.user_attrs.get("fingerprint")
        if stored is None or name.partition(VERSION_MARK)[0] != study_name:
            continue  # another study, or one stored without a fingerprint (never reused)
        differs = _differences(stored, fingerprint)
        if differs:
            suggestion = f"{study_name}-{store.content_key(fingerprint, 8)}"
            raise StudyMismatchError(
                f"The study {study_name!r} in {storage.where} was made for another sweep: its "
                + ", ".join("objective function (name or bound arguments)" if k == "objective" else
                            "search space" if k == "space" else k for k in differs)
                + " differ. Its trials would not answer this sweep's question, so they are not reused. Fix: pass "
                f"a new study_name (e.g. study_name={suggestion!r}), or delete the stored study to start over.")
    study = optuna.create_study(storage=storage.optuna(), study_name=f"{study_name}{VERSION_MARK}{version}",
                                direction=direction, load_if_exists=True)
    if "fingerprint" not in study.user_attrs:
        study.set_user_attr("fingerprint", fingerprint)
    return study


# --- where another process finds the objective --------------------------------------------------------
def _import(module: str, qualname: str) -> Any:
    """The object ``module:qualname`` names (importing the module)."""
    found = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def _objective_reference(objective: Callable) -> dict:
    """Where another process finds ``objective``: module, qualified name, import folder, bound arguments.

    Raises ObjectiveNotImportableError saying why not (defined in a notebook, inside a function, ...).
    """
    fn, args, kwargs = objective, (), {}
    if isinstance(fn, functools.partial):  # (nested partials are flattened by functools itself)
        fn, args, kwargs = fn.func, fn.args, fn.keywords
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    name = qualname or type(fn).__qualname__
    if not module or module == "__main__":
        raise ObjectiveNotImportableError(f"{name} is defined in the notebook (or in the script run as __main__), "
                                          "which another process cannot import")
    if not qualname or "<" in qualname:
        raise ObjectiveNotImportableError(f"{module}.{name} is defined inside a function (or is a lambda), so "
                                          "another process cannot import it by name")
    try:
        found = _import(module, qualname)
    except Exception as err:  # whatever the module raises on import
        raise ObjectiveNotImportableError(f"{module}:{qualname} cannot be imported ({type(err).__name__}: {err})") \
            from None
    if found is not fn:
        raise ObjectiveNotImportableError(f"{module}:{qualname} names another object than the objective "
                                          "(was it redefined after the import?)")
    try:
        plain = json.loads(json.dumps([list(args), kwargs]))
    except (TypeError, ValueError):
        plain = None
    if plain != [list(args), kwargs]:
        raise ObjectiveNotImportableError(f"the arguments bound to {module}:{qualname} are not plain data "
                                          "(numbers, strings, lists, dicts) that a study can record")
    file = getattr(sys.modules.get(module), "__file__", None)
    folder = None
    if file:  # the folder to put on sys.path: above the top-level package
        root = Path(file).resolve().parent
        for _ in range(module.count(".") + (Path(file).name == "__init__.py")):
            root = root.parent
        folder = root.relative_to(REPO_ROOT).as_posix() if root.is_relative_to(REPO_ROOT) else str(root)
    return {"module": module, "qualname": qualname, "path": folder, "args": list(args), "kwargs": dict(kwargs)}


def _load_objective(reference: dict) -> Callable:
    """The objective a ``_objective_reference`` names, imported in this process."""
    folder = reference.get("path")
    if folder:
        folder = Path(folder) if Path(folder).is_absolute() else REPO_ROOT / folder
        if folder.is_dir() and str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    fn = _import(reference["module"], reference["qualname"])
    return functools.partial(fn, *reference["args"], **reference["kwargs"]) \
        if reference["args"] or reference["kwargs"] else fn


def _recipe(objective: Callable, plan: Plan, profile: str) -> dict:
    """How a worker process runs the study: its objective's import name and the plan, as plain JSON data."""
    recipe = {"objective": None, "problem": None, "space": None, "sampler": plan.sampler, "metric": plan.metric,
              "direction": plan.direction, "reduce": plan.reduce, "n_trials": plan.n_trials, "seed": plan.seed,
              "profile": profile, **({"seed_offset": seed_offset()} if seed_offset() else {})}
    try:
        recipe["space"] = space_to_json(plan.space)
        recipe["objective"] = _objective_reference(objective)
    except ValueError as err:  # ObjectiveNotImportableError, or a space JSON cannot carry
        recipe["problem"] = str(err)
    return recipe


def _fix_for(problem: str) -> str:
    """The fix for an objective no other process can import."""
    return (f"{problem}. Fix: move the objective (and the functions it calls) into a .py file next to the notebook, "
            "e.g. sweep_objectives.py, import it in the notebook (`from sweep_objectives import objective`) and "
            "run the sweep from there: the study then records where worker processes find it")


# --- claiming and running trials, in one process among many ---------------------------------------------
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
        return True  # this process is claiming a trial, so its own earlier trial was interrupted
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _fail_stale_trials(study: optuna.Study) -> None:
    """Mark trials cut off by a crash as FAIL, so they are retried rather than waited for."""
    for trial in study.get_trials(deepcopy=False, states=(State.RUNNING,)):
        if _is_stale(trial):
            study.tell(trial.number, state=State.FAIL)


def _params(trial: optuna.trial.FrozenTrial) -> dict:
    """The point a trial runs: the one it was enqueued with (a grid point), else its parameters.

    The enqueued point first: a running trial stores its parameters one at a time as it asks for them, and
    another process reading it half-way must not take a half-stored point for another grid point.
    """
    return trial.system_attrs.get("fixed_params") or trial.params


def _next_grid_point(trials: list, points: list[dict], skip: set) -> dict | None:
    """The first grid point with no finished, queued or running trial, and not in ``skip`` (or None)."""
    taken = set(skip)
    for trial in trials:
        if trial.state in FINISHED or trial.state in (State.WAITING, State.RUNNING):
            taken.add(point_key(_params(trial)))
    return next((p for p in points if point_key(p) not in taken), None)


def _failed_since(trials: list, started: datetime) -> set:
    """Points whose trial raised since ``started``: a failing point is tried once per round, not once per worker."""
    return {point_key(_params(t)) for t in trials if t.state == State.FAIL and "error" in t.user_attrs
            and t.datetime_start is not None and t.datetime_start >= started}


def _claim(study: optuna.Study, storage: SweepStorage, plan: Plan, points: list[dict] | None, tried: set,
           started: datetime) -> optuna.Trial | None:
    """Start this process's next trial; None when the budget is met or every grid point left is taken.

    It runs under the storage's claim lock, so no other process counts or starts a trial in between: the
    budget counts the finished and running trials of every process, and a grid point with a finished,
    running or queued trial is taken (a stale one, whose process died on this machine, is failed first,
    and so is free again).
    """
    with storage.claim_lock(study.study_name):
        if storage.shared:  # (one process on SQLite: run_sweep failed them before it started)
            _fail_stale_trials(study)
        trials = study.get_trials(deepcopy=False)
        if sum(t.state in FINISHED or t.state == State.RUNNING for t in trials) >= plan.n_trials:
            return None
        if points is not None and not any(t.state == State.WAITING for t in trials):
            point = _next_grid_point(trials, points, tried | _failed_since(trials, started))
            if point is None:
                return None
            tried.add(point_key(point))
            study.enqueue_trial(point)
        # Seeded by the trial's number: processes draw distinct configurations, and a resumed random
        # sweep does not replay the ones it tried.
        study.sampler = _make_sampler(plan.sampler, plan.seed + len(trials))
        trial = study.ask()  # takes the queued grid point, if any
        trial.set_user_attr("worker", _worker())
        return trial


def _run_trial(study: optuna.Study, trial: optuna.Trial, run: Callable[[optuna.Trial], float]) -> None:
    """Run one claimed trial and store its outcome; an exception fails the trial, and the sweep goes on."""
    try:
        value = run(trial)
    except optuna.TrialPruned:
        study.tell(trial, state=State.PRUNED)
    except Exception:  # run() noted the error on the trial, for the warning and the table
        study.tell(trial, state=State.FAIL)
    except BaseException:  # Ctrl-C or a kill signal: the trial is not left RUNNING
        study.tell(trial, state=State.FAIL)
        raise
    else:
        study.tell(trial, value)


def _work(study: optuna.Study, storage: SweepStorage, plan: Plan, run: Callable, attempts: int,
          quiet: bool) -> None:
    """Claim and run trials one at a time until the budget is met, nothing is left to claim, or ``attempts`` are used."""
    from tqdm.auto import tqdm

    started, tried = datetime.now(), set()
    points = grid_points(plan.space) if plan.sampler == "grid" else None
    with tqdm(total=plan.n_trials, initial=min(n_finished(study), plan.n_trials), disable=quiet,
              desc=study.study_name) as bar:
        for _ in range(attempts):
            trial = _claim(study, storage, plan, points, tried, started)
            if trial is None:
                break
            _run_trial(study, trial, run)
            if not quiet:
                bar.n = min(n_finished(study), plan.n_trials)  # every process's trials
                bar.refresh()


def _objective_wrapper(objective: Callable, plan: Plan) -> Callable[[optuna.Trial], float]:
    """Adapt ``objective(params, trial_number) -> History`` to optuna's ``trial -> float``."""
    worst = math.inf if plan.direction == "minimize" else -math.inf

    def run(trial: optuna.Trial) -> float:
        try:
            params = {name: suggest(trial, name, dim) for name, dim in plan.space.items()}
            history = objective(params, trial.number)
        except Exception as exc:  # the trial fails; keep the reason for the warning and the table
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            raise
        if isinstance(history, dict):
            history = history["history"]
        trial.set_user_attr("history", history.to_dict())
        trial.set_user_attr("diverged", bool(history.diverged))
        value = _history_value(history, plan.metric, plan.reduce)
        # A diverged run is a result, not a crash: it gets the worst possible value, so
        # the sweep goes on and TPE learns to avoid that region.
        return worst if history.diverged or not math.isfinite(value) else value

    return run


def _history_value(history: History, metric: str, reduce: str) -> float:
    """Final (last finite) or best value of one per-epoch metric."""
    return history.final(metric) if reduce == "final" else history.best(metric)


# --- a sweep: open its study, run it here and in worker processes ---------------------------------------
def _make_plan(space: Space, n_trials: int | None, sampler: str, metric: str, direction: str, reduce: str,
               seed: int) -> Plan:
    """Check a sweep's settings (clear errors before any study is touched) and fix its trial budget."""
    if metric not in METRICS:
        raise ValueError(f"Unknown metric {metric!r}; choose one of {', '.join(METRICS)}.")
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction must be 'minimize' or 'maximize', got {direction!r}.")
    if reduce not in ("final", "best"):
        raise ValueError(f"reduce must be 'final' or 'best', got {reduce!r}.")
    if sampler not in SAMPLERS:
        raise ValueError(f"Unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}.")
    if sampler == "grid":
        grid_values(space)  # a continuous dimension is refused before any study is touched
    if not space:
        raise ValueError("The search space is empty; give at least one dimension, e.g. {'lr': LogUniform(1e-4, 1e-1)}.")
    if n_trials is None:
        if sampler != "grid":
            raise ValueError("n_trials=None is only allowed with sampler='grid' (it means the whole grid).")
        n_trials = grid_size(space)
    n_trials = number_setting("n_trials", n_trials, integer=True, minimum=1)
    if sampler == "grid":
        n_trials = min(n_trials, grid_size(space))  # a grid has no more points to visit
    return Plan(dict(space), sampler, metric, direction, reduce, n_trials, int(seed))


def _open(storage: SweepStorage, objective: Callable, plan: Plan, study_name: str,
          profile: str | None) -> optuna.Study:
    """Create or reopen the sweep's study at this code version, and record how a worker process runs it."""
    profile = get_profile(profile)
    version = _version(store.callable_identity(objective), profile)
    study = _open_study(storage, study_name, _fingerprint(objective, plan.space, plan.metric, plan.direction,
                                                          plan.reduce), version, plan.direction)
    study.set_user_attr("metric", plan.metric)
    study.set_user_attr(RECIPE, _recipe(objective, plan, profile))  # the latest call's budget is the one to meet
    return study


def open_sweep(objective: Callable[[dict, int], History], space: Space, *, n_trials: int | None,
               sampler: str = "tpe", metric: str = "val_loss", direction: str = "minimize",
               storage: str | Path | None = None, study_name: str = "sweep", seed: int = 0,
               profile: str | None = None, reduce: str = "final") -> optuna.Study:
    """Create (or reopen) a sweep's study without running a trial; worker processes then run it.

    The arguments are ``run_sweep``'s. The study records its budget, search space, sampler and scoring and,
    when the objective lives in a .py file, where to import it from, so that
    ``python -m helpers.sweeps worker STUDY_NAME`` can run its trials on any machine that reaches the storage.
    """
    plan = _make_plan(space, n_trials, sampler, metric, direction, reduce, seed)
    return _open(resolve(storage, study_name, profile), objective, plan, study_name, profile)


def run_sweep(objective: Callable[[dict, int], History], space: Space, *, n_trials: int | None,
              sampler: str = "tpe", metric: str = "val_loss", direction: str = "minimize",
              storage: str | Path | None = None, study_name: str = "sweep", seed: int = 0,
              profile: str | None = None, reduce: str = "final", quiet: bool = False,
              n_jobs: int = 1) -> optuna.Study:
    """Run (or resume) a hyperparameter sweep until ``n_trials`` trials have finished.

    ``objective(params, trial_number)`` trains one configuration and returns its History;
    the trial's value is the final (``reduce="final"``) or best (``"best"``) value of ``metric``.
    The study lives in ``storage`` (default: ``KIT_SWEEP_STORAGE``, else an SQLite file in
    ``cache_dir()/"sweeps"``; also a file path, a ``.journal`` file, a database URL, or "memory" for a
    throw-away study; see ``helpers.sweep_storage``), so a second call counts the finished trials and only
    runs the missing ones. A diverged run is recorded with value +inf (minimize) or -inf (maximize); an
    exception marks the trial failed and the sweep goes on (failed trials do not count as finished: the
    next call retries them, and a call that ends short of ``n_trials`` warns with ``IncompleteSweepWarning``).
    A trial cut off by a crash (its process is gone) is marked failed and retried. ``sampler`` is
    "random", "grid" (Categorical/IntRange only, visited in declaration order, each point once however
    often the sweep is interrupted and however many processes run it; ``n_trials=None`` means the whole
    grid) or "tpe"/"bayes".

    A study belongs to its name *and* to what it measures: the first call stores a fingerprint of the
    search space, the objective (its name) and ``metric``/``direction``/``reduce``; a later call with the
    same name but another fingerprint raises ``StudyMismatchError`` instead of returning trials of another
    sweep. The objective's code (its source, the notebook functions it calls, ``helpers/``) and the run
    profile version the study: after editing any of them the sweep runs its trials again, in the study
    ``<study_name>@<version>`` (the returned study's ``study_name``), and the old trials stay stored under
    their own version.

    ``n_jobs=3`` runs trials in this process and two worker processes (``python -m helpers.sweeps worker``)
    on one storage that they can share: a ``.journal`` file or PostgreSQL (SQLite is refused). Worker
    processes import the objective by name, so it must live in a .py file. Processes on other machines
    join the same way, from a checkout of the same commit::

        run_sweep(train_one, {"lr": LogUniform(1e-4, 1e-1)}, n_trials=100, study_name="mlp-lr",
                  storage="postgresql://user:password@dbhost:5432/sweeps")
        # on each other machine:
        #   python -m helpers.sweeps worker mlp-lr --storage postgresql://user:password@dbhost:5432/sweeps
    """
    n_jobs = number_setting("n_jobs", n_jobs, integer=True, minimum=1)
    plan = _make_plan(space, n_trials, sampler, metric, direction, reduce, seed)
    storage_ = resolve(storage, study_name, profile)
    if n_jobs > 1:
        storage_.require_shared(f"n_jobs={n_jobs} worker processes")
        try:
            _objective_reference(objective)
        except ObjectiveNotImportableError as err:
            raise ObjectiveNotImportableError(f"run_sweep(n_jobs={n_jobs}) runs trials in worker processes, which "
                                              f"import the objective by name, but {_fix_for(str(err))}; or pass "
                                              "n_jobs=1 to run the sweep in this process.") from None
    study = _open(storage_, objective, plan, study_name, profile)
    _fail_stale_trials(study)  # a trial cut off by a crash is free again before the budget is counted
    done, before = n_finished(study), len(study.trials)
    if done < plan.n_trials:
        helpers = _start_workers(study, storage_, n_jobs - 1)
        try:
            _work(study, storage_, plan, _objective_wrapper(objective, plan), plan.n_trials - done, quiet)
        except BaseException:
            _stop_workers(helpers)
            raise
        _join_workers(helpers)
    runlog.note_runs(trained=len(study.trials) - before, cached=min(done, plan.n_trials))
    _warn_if_incomplete(study, plan.n_trials, before)
    return study


def _start_workers(study: optuna.Study, storage: SweepStorage, count: int) -> list[tuple[subprocess.Popen, IO]]:
    """Start ``count`` worker processes on this machine for the study; each logs into a temporary file."""
    # The storage travels in the environment, not on the command line, where `ps` would show a password.
    # One thread each, as run_grid's and make grade's workers: processes side by side share the cores.
    env = {**os.environ, STORAGE_ENV: storage.spec, "OMP_NUM_THREADS": "1", "KIT_THREADS": "1",
           # the same kit as this process, whether it is installed or not
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    workers = []
    for _ in range(count):
        log = tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace")
        proc = subprocess.Popen([sys.executable, "-m", "helpers.sweeps", "worker", study.study_name, "--quiet"],
                                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        workers.append((proc, log))
    return workers


def _join_workers(workers: list[tuple[subprocess.Popen, IO]]) -> None:
    """Wait for the worker processes; warn with its last lines when one failed."""
    for proc, log in workers:
        code = proc.wait()
        log.seek(0)
        tail = "\n".join(log.read().strip().splitlines()[-8:])
        log.close()
        if code != 0:
            warnings.warn(f"A sweep worker process exited with code {code} (the trial it was running, if any, "
                          f"is retried by the next call). Its last lines:\n{tail}", RuntimeWarning, stacklevel=3)


def _stop_workers(workers: list[tuple[subprocess.Popen, IO]]) -> None:
    """Interrupt the worker processes (each fails its running trial, so the next call retries it)."""
    for proc, _ in workers:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc, log in workers:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# --- a worker process: python -m helpers.sweeps worker STUDY ----------------------------------------------
def _stored_versions(storage: SweepStorage, study_name: str) -> dict[str, dict]:
    """The stored studies ``study_name`` names (a version ``name@v``, or every version of ``name``) with their recipes."""
    summaries = optuna.get_all_study_summaries(storage.optuna(), include_best_trial=False)
    recipes = {s.study_name: s.user_attrs.get(RECIPE) for s in summaries}
    if VERSION_MARK in study_name:
        found = {n: r for n, r in recipes.items() if n == study_name and r}
    else:
        found = {n: r for n, r in recipes.items() if r and n.partition(VERSION_MARK)[0] == study_name}
        if os.environ.get("KIT_PROFILE"):
            found = {n: r for n, r in found.items() if r["profile"] == get_profile()}
    if not found:
        held = ", ".join(sorted(recipes)) or "no study"
        raise SweepStorageError(
            f"No sweep {study_name!r} in {storage.where} (from {storage.origin}){' for KIT_PROFILE=' + get_profile() if os.environ.get('KIT_PROFILE') and VERSION_MARK not in study_name else ''}; "
            f"it holds: {held}. Start the sweep first (run_sweep or open_sweep creates the study and records "
            "how to run it), then start workers with its study_name and the same storage.")
    profiles = sorted({r["profile"] for r in found.values()})
    if len(profiles) > 1:
        raise SweepStorageError(f"The sweep {study_name!r} in {storage.where} is stored for the profiles "
                                f"{' and '.join(profiles)}: set KIT_PROFILE to the one to work on.")
    return found


def _served(storage: SweepStorage, study_name: str) -> tuple[str, dict, Callable]:
    """The stored version this machine's code computes: (its name, its recipe, the objective imported here)."""
    found = _stored_versions(storage, study_name)
    runnable = {name: recipe for name, recipe in found.items() if recipe["objective"] is not None}
    if not runnable:
        name, recipe = sorted(found.items())[0]
        raise ObjectiveNotImportableError(f"The sweep {name} cannot run in a worker process: "
                                          f"{_fix_for(recipe['problem'])}.")
    imported: dict[str, tuple[Callable, str]] = {}
    for name, recipe in sorted(runnable.items()):
        # The objective's module may read the profile's settings when it is imported.
        os.environ["KIT_PROFILE"] = recipe["profile"]
        os.environ[SEED_ENV] = str(recipe.get("seed_offset", 0))   # and its trials draw from the sheet's KIT_SEED
        where = json.dumps(recipe["objective"], sort_keys=True)
        if where not in imported:
            ref = recipe["objective"]
            try:
                objective = _load_objective(ref)
            except Exception as err:  # whatever the module raises on import
                raise ObjectiveNotImportableError(
                    f"The objective of {name}, {ref['module']}:{ref['qualname']}, cannot be imported here "
                    f"({type(err).__name__}: {err}). Start the worker in a checkout of the same project (the "
                    f"module's folder: {ref['path']})") from None
            code = _version(store.callable_identity(objective), recipe["profile"])
            imported[where] = (objective, f"{name.partition(VERSION_MARK)[0]}{VERSION_MARK}{code}")
        objective, ours = imported[where]
        if ours == name:
            return name, recipe, objective
    raise StudyMismatchError(
        f"This machine's code computes {ours}, but {storage.where} holds {', '.join(sorted(runnable))}: the version "
        "covers the objective's source, the project functions it calls and helpers/. Fix: check out the same "
        "commit as the machine that started the sweep (or run the sweep from here to start a new version).")


def work(study_name: str, storage: str | Path | None = None, *, quiet: bool = False,
         progress: Callable[[str], None] | None = None) -> optuna.Study:
    """Run trials of a stored sweep in this process until its budget is met; return the study.

    What ``python -m helpers.sweeps worker STUDY`` runs. ``study_name`` is the one given to ``run_sweep``
    (the stored version whose code matches this machine's is served) or a stored ``<name>@<version>``;
    ``storage`` is a journal file or PostgreSQL URL (default ``KIT_SWEEP_STORAGE``). The study's recipe
    says everything else: the objective's import name, space, sampler, scoring, budget and run profile
    (this process switches to it). Any number of processes on any number of machines can work at once.
    """
    storage_ = resolve(storage, study_name.partition(VERSION_MARK)[0])
    storage_.require_shared("worker processes (python -m helpers.sweeps worker)")
    name, recipe, objective = _served(storage_, study_name)
    plan = Plan(space_from_json(recipe["space"]), recipe["sampler"], recipe["metric"], recipe["direction"],
                recipe["reduce"], int(recipe["n_trials"]), int(recipe["seed"]))
    study = optuna.load_study(study_name=name, storage=storage_.optuna())
    done, before = n_finished(study), len(study.trials)
    if progress:
        ref = recipe["objective"]
        progress(f"worker {_worker()}: {name} in {storage_.where}, objective {ref['module']}:{ref['qualname']}, "
                 f"profile {recipe['profile']}, {plan.sampler} sampler; {done} of {plan.n_trials} trials finished")
    if done < plan.n_trials:
        _work(study, storage_, plan, _objective_wrapper(objective, plan), plan.n_trials - done, quiet)
    if progress:
        mine = sum(t.user_attrs.get("worker") == _worker() for t in study.get_trials(deepcopy=False)[before:])
        progress(f"worker {_worker()}: ran {mine} trials; {n_finished(study)} of {plan.n_trials} finished")
    return study


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m helpers.sweeps worker STUDY [--storage URL]``; errors are one clear line, exit code 1."""
    parser = argparse.ArgumentParser(prog="python -m helpers.sweeps", description="Work on a stored sweep.")
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker", help="run trials of a stored sweep until its budget is met")
    w.add_argument("study", help="the study_name given to run_sweep (or a stored <name>@<version>)")
    w.add_argument("--storage", default=None,
                   help=f"a .journal file or a PostgreSQL URL (default: {STORAGE_ENV})")
    w.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        work(args.study, args.storage, quiet=args.quiet, progress=print)
    except (SweepStorageError, StudyMismatchError, ObjectiveNotImportableError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def _warn_if_incomplete(study: optuna.Study, n_trials: int, before: int) -> None:
    """Say so when a call ends with fewer finished trials than asked for (failed trials are retried next call)."""
    finished = n_finished(study)
    if finished >= n_trials:
        return
    failed = [t for t in study.trials[before:] if t.state == State.FAIL]
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


if __name__ == "__main__":
    # Run through the imported module, not this __main__ copy: the objective's module imports helpers.sweeps,
    # and both must see one set of classes (Categorical, History, ...).
    from helpers import sweeps
    raise SystemExit(sweeps.main())

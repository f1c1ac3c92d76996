"""Sweep storages side by side: SQLite (one process), a journal file and PostgreSQL (one and three processes).

Two objectives: an instant one, so the table shows what claiming, storing and reading a trial costs each
storage, and one that sleeps 0.5 s, a stand-in for training, so it shows what three workers gain. Rates are
taken over the span of the trials (first start to last end), so the workers' start-up (about 2 s each, the
imports) is left out; the wall column includes it.

    python -m benchmarks.sweep_storage                                   # SQLite and journal file
    python -m benchmarks.sweep_storage --postgres postgresql://user@host:5432/db --no-write
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._results import write_section
from helpers.search_space import Categorical, IntRange
from helpers.sweeps import open_sweep, run_sweep

REPO = Path(__file__).resolve().parent.parent
OBJECTIVE = '''
import os
import time

from helpers.history import History


def objective(params, number):
    time.sleep(float(os.environ.get("BENCH_SLEEP", "0")))
    history = History()
    history.append_epoch(epoch=1, val_loss=params["a"] + params["b"] / 10)
    return history
'''


def space(points: int) -> dict:
    """A grid of ``points`` points (a multiple of 4)."""
    return {"a": Categorical(list(range(points // 4))), "b": IntRange(0, 3)}


def measure(storage: str, processes: int, points: int, sleep: float, name: str) -> dict:
    """Run a ``points``-point grid sweep with ``processes`` processes; its rate and wall time."""
    import objective_module

    os.environ["BENCH_SLEEP"] = str(sleep)
    started = time.perf_counter()
    if processes == 1:
        study = run_sweep(objective_module.objective, space(points), n_trials=None, sampler="grid", storage=storage,
                          study_name=name, quiet=True)
    else:
        study = open_sweep(objective_module.objective, space(points), n_trials=None, sampler="grid",
                           storage=storage, study_name=name)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        workers = [subprocess.Popen([sys.executable, "-m", "helpers.sweeps", "worker", name, "--storage", storage,
                                     "--quiet"], env=env, stdout=subprocess.DEVNULL) for _ in range(processes)]
        if any(w.wait() != 0 for w in workers):
            raise RuntimeError(f"a worker failed on {storage}")
    wall = time.perf_counter() - started
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == points and len({(t.params["a"], t.params["b"]) for t in trials}) == points
    span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    return {"wall": wall, "span": span, "rate": points / span}


def main() -> int:
    """Measure every storage at 1 and 3 processes; print and record the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=None, help="a PostgreSQL URL to include (its database is written to)")
    parser.add_argument("--no-write", action="store_true", help="do not update benchmarks/RESULTS.md")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="kit-bench-sweeps-") as tmp:
        (Path(tmp) / "objective_module.py").write_text(OBJECTIVE)
        sys.path.insert(0, tmp)
        os.environ["KIT_CACHE"] = str(Path(tmp) / "cache")
        tag = str(int(time.time()))  # fresh study names on a reused PostgreSQL database
        cases = [("SQLite", f"{tmp}/s.db", 1), ("journal file", f"{tmp}/s.journal", 1),
                 ("journal file", f"{tmp}/s.journal", 3)]
        if args.postgres:
            cases += [("PostgreSQL", args.postgres, 1), ("PostgreSQL", args.postgres, 3)]
        for label, storage, processes in cases:
            instant = measure(storage, processes, 40, 0.0, f"instant-{processes}-{tag}")
            slow = measure(storage, processes, 12, 0.5, f"slow-{processes}-{tag}")
            rows.append(f"| {label} | {processes} | {instant['rate']:.1f} | {1000 / instant['rate']:.0f} | "
                        f"{slow['span']:.1f} s | {slow['wall']:.1f} s |")
            print(rows[-1], flush=True)
    table = ("| storage | processes | instant trials/s | ms per trial | 12 × 0.5 s trials: span | wall (with start-up) |\n"
             "|---|---:|---:|---:|---:|---:|\n" + "\n".join(rows))
    print(table)
    if not args.no_write:
        write_section("Sweep storages: SQLite, journal file, PostgreSQL", table + "\n\n" + (
            "Grid sweeps run to the end: 40 instant trials (the storage's own cost per trial: claim under the lock, "
            "store the History, read the study), and 12 trials of 0.5 s (a stand-in for training). One process is "
            "`run_sweep`; three are `python -m helpers.sweeps worker` processes on a study made by `open_sweep`. "
            "SQLite serves one process only (parallel workers on it are refused). Three processes on a 2-core machine "
            "take turns at the claim lock and share the cores, so their instant rate is no higher than one's; what "
            "they gain shows in the 0.5 s rows (ideal span 2.0 s)."))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Sheet 1's deep-versus-wide grid: here (one process), on local worker processes, and on a 2-worker Dask cluster.

The training function is the sheet's own ``train_moons``, taken from its notebook cell and defined as a
notebook defines it (``__main__``), so workers get it by value as in a kernel. Each way runs the grid into
an empty cache after a warm-up grid (workers started, torch imported, the function sent), so the times are
the grid's, not the workers' start-up. The cluster is real: ``dask scheduler`` and two ``dask worker``
processes on localhost (``helpers.cluster.local_cluster``).

Reported: wall seconds of each way, the ratio to one process, and the scheduling overhead per run: the
worker time a grid did not spend training, ``(wall × workers − Σ run seconds) / runs``. It counts sending
the run and its outcome, writing the record here, and workers idle at the grid's end. Target (issue 23):
≤ 50 ms per run on the cluster.

    python -m benchmarks.grid_workers                      # smoke profile (issue 23's benchmark)
    python -m benchmarks.grid_workers --profile quick      # the quick profile's grid (84 runs)
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import linecache
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHEET = REPO / "notebooks" / "01_backprop_autodiff.ipynb"
TARGET_MS = 50


def sheet_function(sheet: Path = SHEET, name: str = "train_moons") -> tuple[dict, dict]:
    """The notebook cell defining ``name``, run as a kernel runs it (``__main__``); return (its namespace, settings)."""
    from helpers.config import get_profile, seed_everything
    from helpers.models import MLP, count_parameters
    from helpers.profiles import settings
    from helpers.synthetic import Synthetic2D
    from helpers.training import fit

    cells = ["".join(c["source"]) for c in json.loads(sheet.read_text())["cells"] if c["cell_type"] == "code"]
    source = next(c for c in cells if f"def {name}(" in c)
    filename = f"<{sheet.stem} cell>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)  # as ipykernel does
    namespace = {"__name__": "__main__", "settings": settings, "seed_everything": seed_everything, "MLP": MLP,
                 "count_parameters": count_parameters, "Synthetic2D": Synthetic2D, "fit": fit,
                 "PROFILE": get_profile()}
    with contextlib.redirect_stdout(io.StringIO()):  # the cell prints its settings for the reader
        exec(compile(source, filename, "exec"), namespace)
    return namespace, namespace["DEEP_WIDE"]


def timed_grid(train_fn, deep_wide: dict, cache: Path, repeats: int | None = None, **where) -> dict:
    """Run the deep-versus-wide grid into ``cache``; return its wall seconds, run seconds and run count."""
    from helpers.experiments import run_grid

    os.environ["KIT_CACHE"] = str(cache)
    fixed = {k: deep_wide[k] for k in ("epochs", "n_samples", "noise", "batch_size", "lr", "activation")}
    start = time.perf_counter()
    frame = run_grid(train_fn, {"depth": deep_wide["depths"], "width": deep_wide["widths"]},
                     repeats=repeats or deep_wide["repeats"], fixed=fixed, name="sheet1-deep-wide", quiet=True, **where)
    wall = time.perf_counter() - start
    assert not frame["cached"].any(), "the measured grid must train every run"
    return {"wall_s": wall, "run_s": float(frame["time_s"].sum()), "runs": len(frame),
            "losses": frame["final_val_loss"].round(12).tolist()}


def main(argv: list[str] | None = None) -> dict:
    """Time the grid three ways, print the table and write it into RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-dask", action="store_true", help="leave the cluster out (no Dask servers here)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args(argv)
    os.environ["KIT_PROFILE"] = args.profile
    os.environ.pop("KIT_SCHEDULER", None)
    from helpers.device import use_cpu_threads, worker_environment

    use_cpu_threads(1)  # the grid's runs train on one thread wherever they run: compare like with like
    namespace, deep_wide = sheet_function()
    train = namespace["train_moons"]
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-grid-") as tmp:
        tmp = Path(tmp)
        results["one process"] = timed_grid(train, deep_wide, tmp / "serial", n_jobs=1)
        timed_grid(train, deep_wide, tmp / "warm-local", repeats=1, n_jobs=args.workers)
        results[f"{args.workers} local worker processes"] = timed_grid(train, deep_wide, tmp / "local",
                                                                       n_jobs=args.workers)
        if not args.no_dask:
            from helpers.cluster import local_cluster

            env = {**worker_environment(), "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
            with local_cluster(args.workers, env=env) as cluster:
                timed_grid(train, deep_wide, tmp / "warm-dask", repeats=1, scheduler=cluster.address)
                results[f"Dask, {args.workers} workers"] = timed_grid(train, deep_wide, tmp / "dask",
                                                                      scheduler=cluster.address)
    serial = results["one process"]
    same = all(r["losses"] == serial["losses"] for r in results.values())
    rows = []
    for way, r in results.items():
        workers = 1 if way == "one process" else args.workers
        overhead_ms = (r["wall_s"] * workers - r["run_s"]) / r["runs"] * 1e3
        r.update(ratio=r["wall_s"] / serial["wall_s"], overhead_ms=overhead_ms)
        rows.append(f"| {way} | {r['runs']} | {r['wall_s']:.2f} | {r['run_s']:.2f} | {r['ratio']:.2f}× | "
                    f"{overhead_ms:.0f} |")
    dask = next((r for way, r in results.items() if way.startswith("Dask")), None)
    verdict = "" if dask is None else (
        f" **Dask: {dask['overhead_ms']:.0f} ms per run** ({'meets' if dask['overhead_ms'] <= TARGET_MS else 'misses'} "
        f"the target ≤ {TARGET_MS} ms); the cluster takes {dask['wall_s'] / results[f'{args.workers} local worker processes']['wall_s']:.2f}× "
        "the local workers' time.")
    markdown = (
        f"Sheet 1's deep-versus-wide grid (`train_moons` from the notebook), profile `{args.profile}`, into an empty "
        "cache after a warm-up grid; one torch thread per run everywhere. Overhead per run: worker time not spent "
        "training, (wall × workers − Σ run seconds) / runs.\n\n"
        "| where | runs | wall (s) | Σ run (s) | wall / one process | overhead per run (ms) |\n"
        "|---|---:|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n\n"
        f"Final validation losses {'identical' if same else 'DIFFER'} across the ways.{verdict}")
    print(markdown)
    if not args.no_write:
        from benchmarks._results import write_section

        print("written to", write_section("Grids on workers and on Dask (sheet 1's deep-versus-wide grid)", markdown))
    return results


if __name__ == "__main__":
    main()

"""How much does fit() cost over a bare hand-written loop? One epoch of the same MLP on the same tensors.

Both variants run alternately in one process (bare, fit, fit, bare, ...) so drift in machine load hits
both equally. fit() runs with its progress bar, its standard callbacks (History recorder, memory monitor)
and accuracy on; the bare loop builds its optimizer with the same ``make_optimizer`` call, so the two
differ by the Trainer's loop alone. Target: ≤ 1.05× at every batch size measured (small batches are the
hard case: the Trainer's per-batch events cost the same however little work a batch holds).

Other jobs on the machine only ever add time, so the headline is the ratio of the fastest epoch of each
(the least disturbed one); the medians of wall and CPU time stand beside it. On an idle machine all three agree.

    python -m benchmarks.trainer_overhead               # full: 50,000 FashionMNIST images, batch 32, 128, 512
    python -m benchmarks.trainer_overhead --limit 2000 --repeats 2 --batch-size 128   # a quick check that it runs
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn

from helpers.device import get_device, use_cpu_threads
from helpers.models import MLP
from helpers.training import fit, make_optimizer

TARGET = 1.05


def load_tensors(limit: int | None) -> tuple[torch.Tensor, torch.Tensor, str]:
    """FashionMNIST training tensors when the kit can load them, else random ones of the same shape."""
    try:
        from helpers.data import load_fashion_mnist

        train = load_fashion_mnist().train
        X, y, source = train.X, train.y, f"FashionMNIST training split ({len(train.X):,} images)"
    except (ImportError, FileNotFoundError, RuntimeError) as err:
        # Timing does not depend on pixel values: random tensors of the real shape measure the same work.
        g = torch.Generator().manual_seed(0)
        X, y = torch.randn(50_000, 1, 28, 28, generator=g), torch.randint(0, 10, (50_000,), generator=g)
        source = f"random tensors 50,000×1×28×28 (FashionMNIST not loadable: {type(err).__name__})"
    if limit is not None:
        X, y = X[:limit], y[:limit]
    return X, y, source


def make_loader(X: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device):
    """The kit's in-memory BatchLoader (shuffled), or plain slices where helpers.data lacks it."""
    try:
        from helpers.data import BatchLoader

        return BatchLoader(X, y, batch_size, shuffle=True, seed=0, device=device)
    except ImportError:
        X, y = X.to(device), y.to(device)
        return [(X[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(X), batch_size)]


def bare_epoch(model: nn.Module, loader, device: torch.device) -> None:
    """The loop a student writes by hand: forward, loss, backward, step; nothing recorded (fit()'s optimizer)."""
    optimizer = make_optimizer("adam", model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    model.to(device).train()
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fit_epoch(model: nn.Module, loader, device: torch.device) -> None:
    """The same epoch through fit(): progress bar, step losses, accuracy, timing, memory."""
    fit(model, loader, 1, optimizer="adam", lr=1e-3, device=device, quiet=False, desc="fit")


def timed(fn, model: nn.Module, loader, device: torch.device) -> tuple[float, float]:
    """Wall and CPU seconds of fn on a fresh copy of the model (same starting weights every time).

    CPU seconds (this process's, all its threads: the memory monitor's too) do not count the time other
    jobs on a shared machine took the cores away, so on a CPU they compare the two loops' work fairly.
    """
    model = copy.deepcopy(model)
    start, cpu = time.perf_counter(), time.process_time()
    fn(model, loader, device)
    return time.perf_counter() - start, time.process_time() - cpu


def compare(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int, repeats: int,
            device: torch.device) -> tuple[list[tuple], list[tuple], int]:
    """Bare and fit() (wall, CPU) epoch times at one batch size, alternating who goes first; and the steps."""
    loader = make_loader(X, y, batch_size, device)
    timed(bare_epoch, model, loader, device)  # warm-up: allocator, kernels, lazy imports
    timed(fit_epoch, model, loader, device)
    bare, fitted = [], []
    for repeat in range(repeats):
        order = (("bare", bare_epoch), ("fit", fit_epoch))
        for name, fn in order if repeat % 2 == 0 else order[::-1]:  # alternate who goes first
            (bare if name == "bare" else fitted).append(timed(fn, model, loader, device))
    return bare, fitted, len(loader)


def main(argv: list[str] | None = None) -> dict[int, float]:
    """Run the comparison per batch size, print it, write it to RESULTS.md and return {batch size: fit/bare}."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--repeats", type=int, default=9, help="timed epochs per variant (fastest and median reported)")
    parser.add_argument("--batch-size", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--device", default=None, help="default: KIT_DEVICE, else cuda/mps/cpu")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: the kit's, KIT_THREADS or the usable cores); 1 keeps a shared "
                             "machine's other jobs out of the step")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args(argv)
    if args.repeats < 1 or (args.limit is not None and args.limit < 1):
        parser.error("--repeats and --limit must be >= 1")

    use_cpu_threads(args.threads)
    device = get_device(args.device)
    X, y, source = load_tensors(args.limit)
    torch.manual_seed(0)
    model = MLP(28 * 28, 10, depth=2, width=256)
    rows, ratios, medians, cpu_ratios = [], {}, {}, {}
    for batch_size in args.batch_size:
        bare, fitted, steps = compare(model, X, y, batch_size, args.repeats, device)
        fastest = [min(t[0] for t in runs) for runs in (bare, fitted)]
        wall = [statistics.median(t[0] for t in runs) for runs in (bare, fitted)]
        cpu = [statistics.median(t[1] for t in runs) for runs in (bare, fitted)]
        ratios[batch_size] = fastest[1] / fastest[0]
        medians[batch_size], cpu_ratios[batch_size] = wall[1] / wall[0], cpu[1] / cpu[0]
        per_step = (fastest[1] - fastest[0]) / steps * 1e6
        rows.append(f"| {batch_size} | {steps} | {fastest[0]:.3f} | {fastest[1]:.3f} | **{ratios[batch_size]:.3f}×** | "
                    f"{per_step:+.0f} | {medians[batch_size]:.3f}× | {cpu_ratios[batch_size]:.3f}× | "
                    f"{', '.join(f'{t[0]:.2f}' for t in bare)} | {', '.join(f'{t[0]:.2f}' for t in fitted)} |")
    worst = max(ratios.values())
    verdict = "meets" if worst <= TARGET else "misses"
    markdown = (
        f"One epoch of MLP(784→256→256→10), Adam, {len(X):,} samples on {device}, {torch.get_num_threads()} torch "
        f"thread(s); data: {source}. {args.repeats} alternating repeats of each after one warm-up; fit() with progress "
        "bar, History and accuracy on; the bare loop uses fit()'s optimizer (make_optimizer). Headline: the fastest "
        "epoch of fit over the fastest bare epoch (other jobs only add time); medians of wall and CPU seconds (the "
        "process's, all threads) beside it.\n\n"
        "| batch | steps | fastest bare (s) | fastest fit (s) | fit / bare | fit's cost per step (µs) | "
        "median wall fit / bare | median CPU fit / bare | bare runs, wall (s) | fit runs, wall (s) |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n" + "\n".join(rows) + "\n\n"
        f"**Worst fit / bare = {worst:.3f}×** ({verdict} the target ≤ {TARGET:.2f}× at every batch size; median wall "
        f"up to {max(medians.values()):.3f}×, median CPU up to {max(cpu_ratios.values()):.3f}×)."
    )
    print(markdown)
    if not args.no_write:
        from benchmarks._results import write_section

        print("written to", write_section("Trainer overhead (fit vs bare loop)", markdown))
    return ratios


if __name__ == "__main__":
    main()

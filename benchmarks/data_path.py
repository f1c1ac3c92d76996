"""One training epoch on FashionMNIST: in-memory tensors (BatchLoader) vs torchvision DataLoader.

The per-sample path converts every image on access (PIL → ToTensor → Normalize) in Python;
the in-memory path decodes the data set once and slices batches out of one tensor.
Same model (784→128→10 MLP), optimiser and batch size for both, measured in one run.

    python -m benchmarks.data_path               # full training split (50,000 images)
    python -m benchmarks.data_path --limit 2000  # a quick check
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Subset

from benchmarks._results import write_section
from helpers.config import seed_everything
from helpers.data import Split, fashion_mnist_datasets, load_fashion_mnist

TITLE = "Data path: in-memory tensors vs per-sample DataLoader (FashionMNIST, one epoch)"
TARGET = 10.0  # the in-memory epoch should be at least this many times faster at batch size 64


def make_model() -> nn.Module:
    """The small MLP both paths train: 784 → 128 → 10."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


def time_epoch(loader, seed: int = 0) -> float:
    """Train a fresh model for one epoch over ``loader``; return the wall-clock seconds."""
    seed_everything(seed)
    model = make_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    start = time.perf_counter()
    for xb, yb in loader:
        optimizer.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        optimizer.step()
    return time.perf_counter() - start


def warm_up(split: Split, batch_size: int) -> None:
    """Run a few steps first so that one-off start-up costs are charged to neither path."""
    seed_everything(0)
    model = make_model()
    for i, (xb, yb) in enumerate(split.loader(batch_size)):
        F.cross_entropy(model(xb), yb).backward()
        if i == 20:
            break


def run(limit: int | None, batch_size: int, workers: list[int]) -> tuple[list[dict], int, float]:
    """Time both paths; return one row per path, the number of samples and the decode time."""
    start = time.perf_counter()
    tensors = load_fashion_mnist()
    decode_s = time.perf_counter() - start
    train_ds, _, _ = fashion_mnist_datasets()
    n = min(limit or len(tensors.train), len(tensors.train))
    # The first n samples of the same split on both paths (fashion_mnist_datasets keeps the split order).
    split = Split(tensors.train.X[:n], tensors.train.y[:n])
    subset = Subset(train_ds, range(n))
    warm_up(split, batch_size)

    rows = [{"path": "in-memory BatchLoader", "workers": "-",
             "seconds": time_epoch(split.loader(batch_size, shuffle=True, seed=0))}]
    for w in workers:
        loader = DataLoader(subset, batch_size=batch_size, shuffle=True, num_workers=w,
                            generator=torch.Generator().manual_seed(0))
        rows.append({"path": "DataLoader, per-sample ToTensor+Normalize", "workers": str(w),
                     "seconds": time_epoch(loader)})
    return rows, n, decode_s


def report(rows: list[dict], n: int, decode_s: float, batch_size: int, limit: int | None) -> tuple[str, float]:
    """Markdown table plus the headline ratio (per-sample with 0 workers / in-memory)."""
    fast = rows[0]["seconds"]
    lines = ["| path | num_workers | epoch (s) | samples/s | slower than in-memory |", "|---|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['path']} | {row['workers']} | {row['seconds']:.3f} | {n / row['seconds']:,.0f} | "
                     f"{row['seconds'] / fast:.1f}× |")
    ratio = rows[1]["seconds"] / fast if len(rows) > 1 else float("nan")
    verdict = "meets" if ratio >= TARGET else "misses"
    scope = f"first {n:,} training images (--limit {limit})" if limit else f"all {n:,} training images"
    lines += ["", f"One epoch over the {scope}, batch size {batch_size}, MLP 784→128→10, SGD. "
              f"Decoding the data set into tensors once took {decode_s:.2f} s (not in the epoch times).",
              f"**In-memory epoch is {ratio:.1f}× faster than per-sample DataLoader with num_workers=0** "
              f"({verdict} the ≥ {TARGET:.0f}× target)."]
    return "\n".join(lines), ratio


def main(argv: list[str] | None = None) -> float:
    """Run the benchmark, print the table and write it into benchmarks/RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader num_workers to time")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads for both paths (default: torch's choice)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args(argv)
    if args.threads is not None:
        # On a busy machine, spinning OpenMP threads can slow tiny matrix products many times over.
        torch.set_num_threads(args.threads)
    if args.limit is not None and args.limit < args.batch_size:
        parser.error(f"--limit must be at least the batch size ({args.batch_size}), got {args.limit}")
    rows, n, decode_s = run(args.limit, args.batch_size, args.workers)
    markdown, ratio = report(rows, n, decode_s, args.batch_size, args.limit)
    print(markdown)
    if not args.no_write:
        print(f"written to {write_section(TITLE, markdown)}")
    return ratio


if __name__ == "__main__":
    main()

"""GPU performance lab benchmark: parts 1, 2 and 6 of sheet 4 at a chosen profile (default full).

    python -m benchmarks.gpu_lab                 # full settings, writes benchmarks/RESULTS.md
    python -m benchmarks.gpu_lab --small         # seconds: smoke settings, prints only (a check that it runs)

Targets on an H100: MediumNet CIFAR-10 epoch with the data on the device <= 1 s; LargeNet GPU speedup
>= 20x over the course's 2-core CPU (emulated on any machine with --cpu-threads 2).
The CPU is timed on --cpu-limit images and its epoch time extrapolated from images/s (epoch time is linear
in the number of images); the table says so. Without CIFAR-10 on disk the script uses the sheet's full-size,
format-faithful stand-ins (``helpers.data.cifar10_or_standins``: same shapes, same file format, so the same
timings; the losses mean nothing) and says so. The measurements are the sheet's own (``helpers.gpu_lab.Lab``).
Without a GPU its rows and targets read "awaiting a GPU".
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import pandas as pd
import torch

from helpers.config import get_profile
from helpers.data import cifar10_datasets, cifar10_or_standins, load_cifar10
from helpers.device import accelerator
from helpers.gpu_lab import Lab, device_name
from helpers.profiles import settings

from ._results import write_section

TITLE = "GPU performance lab (sheet 4)"
AWAITING = "awaiting a GPU"


def load_lab(profile: str) -> tuple[Lab, str]:
    """The sheet's Lab on CIFAR-10, or on its full-size stand-ins (smoke: small ones), and a note on which."""
    root, real = cifar10_or_standins()
    note = "CIFAR-10" if real else ("small smoke stand-ins" if profile == "smoke" else
                                    "CIFAR-10-format stand-ins of the real size; timings are valid, losses are not")
    return Lab(cifar10_datasets(root)[0], load_cifar10(root), real=real), note


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub markdown table (numbers to 4 significant digits, missing values as '–')."""
    def cell(v):
        if isinstance(v, float):
            return "–" if math.isnan(v) else f"{v:.4g}"
        return str(v)
    head = "| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns)
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head] + body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="full", choices=["smoke", "quick", "full"])
    parser.add_argument("--small", action="store_true", help="smoke settings, CPU limit 64 images, print only")
    parser.add_argument("--cpu-threads", type=int, default=2, help="torch threads for the CPU runs (course: 2)")
    parser.add_argument("--cpu-limit", type=int, default=4_000,
                        help="training images for the CPU runs (epoch time extrapolated); 0 = the profile's")
    parser.add_argument("--no-write", action="store_true", help="print the table, do not touch RESULTS.md")
    args = parser.parse_args(argv)
    profile = "smoke" if args.small else get_profile(args.profile)
    cpu_limit = 64 if args.small else args.cpu_limit
    write = not (args.no_write or args.small)

    t0 = time.perf_counter()
    gpu, cpu = accelerator(), torch.device("cpu")
    lab, source = load_lab(profile)
    n_full = len(lab.splits.train)
    print(f"profile {profile}; data: {source}; GPU: {device_name(gpu) if gpu else AWAITING}", flush=True)
    rows = []

    def add(part, model, device, *, batch_size, limit, epochs, warmup_steps, num_workers, pipeline):
        n = n_full if limit is None else min(limit, n_full)
        if device is None:
            rows.append({"part": part, "model": model, "kind": "gpu", "device": AWAITING, "pipeline": pipeline,
                         "batch": batch_size, "images timed": 0})
            return
        threads = torch.get_num_threads()
        if device.type == "cpu":
            torch.set_num_threads(args.cpu_threads)
            n = min(n, cpu_limit) if cpu_limit else n
        try:
            rec = lab.measure(model, device, batch_size=batch_size, train_limit=n, epochs=epochs,
                              warmup_steps=warmup_steps, num_workers=num_workers, pipeline=pipeline)
        finally:
            torch.set_num_threads(threads)
        full_epoch = n_full / rec["images_per_s"]
        rows.append({"part": part, "model": model, "kind": "cpu" if device.type == "cpu" else "gpu",
                     "device": device_name(device), "pipeline": pipeline,
                     "batch": batch_size, "images timed": rec["images_per_epoch"],
                     "epoch time (s)": rec["epoch_time_median"], "spread (s)": rec["epoch_time_spread"],
                     "images/s": rec["images_per_s"],
                     f"epoch of {n_full:,} (s)": full_epoch,
                     "extrapolated": rec["images_per_epoch"] < n_full,
                     "peak memory (MB)": rec["peak_mem_mb"], "memory kind": rec["peak_mem_kind"]})
        print(f"  {part} {model} {device.type} {pipeline} b{batch_size}: {rec['epoch_time_median']:.3f} s "
              f"({rec['images_per_s']:.0f} img/s)", flush=True)

    # Part 1 (+ LargeNet for the speedup target): CPU vs GPU on both input pipelines.
    s = settings("gpu.cpu_vs_gpu", profile)
    common = dict(epochs=s["epochs"], warmup_steps=s["warmup_steps"], num_workers=s["num_workers"])
    for model in ("MediumNet", "LargeNet"):
        for pipeline in ("dataloader", "tensors"):
            for device in (cpu, gpu):
                add("1 cpu vs gpu", model, device, batch_size=s["batch_size"], limit=s["train_limit"],
                    pipeline=pipeline, **common)
    # Part 2: batch sizes on the lab device (GPU when there is one), both pipelines.
    s = settings("gpu.batch_size", profile)
    for b in s["batch_sizes"]:
        for pipeline in ("dataloader", "tensors"):
            add("2 batch size", s["model"], gpu or cpu, batch_size=b, limit=s["train_limit"], pipeline=pipeline,
                epochs=s["epochs"], warmup_steps=s["warmup_steps"], num_workers=s["num_workers"])
    # The sheet's 'where the time goes' is the dataloader/tensors pair of parts 1 and 2 (MediumNet, batch 64).

    table = pd.DataFrame(rows)
    key = f"epoch of {n_full:,} (s)"

    def epoch(model, kind, pipeline):
        sel = table[(table.part == "1 cpu vs gpu") & (table.model == model) & (table.pipeline == pipeline)
                    & (table.kind == kind)]
        return float(sel[key].iloc[0]) if len(sel) and key in sel and not sel[key].isna().all() else math.nan

    lines = []
    for model in ("MediumNet", "LargeNet"):
        for pipeline in ("dataloader", "tensors"):
            c, g = epoch(model, "cpu", pipeline), epoch(model, "gpu", pipeline)
            lines.append(f"- {model}, {pipeline}: CPU ({args.cpu_threads} threads) {c:.2f} s, GPU "
                         + (f"{g:.3f} s, speedup {c / g:.1f}×" if gpu else AWAITING))
    g_med = epoch("MediumNet", "gpu", "tensors")
    speed_large = epoch("LargeNet", "cpu", "tensors") / epoch("LargeNet", "gpu", "tensors")
    verdict = (lambda ok: "PASS" if ok else "FAIL") if gpu is not None else (lambda ok: AWAITING)
    lines.append(f"- target MediumNet epoch with data on the device ≤ 1 s: {verdict(g_med <= 1.0)}"
                 + (f" ({g_med:.3f} s)" if gpu else ""))
    lines.append(f"- target LargeNet GPU speedup ≥ 20× over a {args.cpu_threads}-thread CPU: "
                 f"{verdict(speed_large >= 20)}" + (f" ({speed_large:.1f}×)" if gpu else ""))
    summary = "\n".join(lines)
    notes = (f"Profile `{profile}`; data: {source}. Epoch times are medians over timed epochs after warm-up "
             f"steps, synchronised (CUDA events on the GPU). CPU runs use {args.cpu_threads} torch threads and "
             f"{cpu_limit or 'all'} images; the column `{key}` extrapolates every run to the full training set "
             f"from its images/s. `dataloader` = torchvision Dataset + DataLoader (the course's path), `tensors` = "
             f"in-memory batches already on the device (the kit's path). 'Where the time goes' = dataloader vs tensors rows.")
    markdown = f"{notes}\n\n{summary}\n\n{markdown_table(table)}\n"
    print("\n" + markdown)
    print(f"({time.perf_counter() - t0:.0f} s)")
    if write:
        print(f"written to {write_section(TITLE, markdown)}")
    else:
        print("RESULTS.md not written (--small or --no-write).")
    return 0


if __name__ == "__main__":
    sys.exit(main())

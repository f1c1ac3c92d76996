"""Machinery for sheet 2's demonstrations: toy problems, timing, plots and tables.

The exercises themselves (gradient descent, the Adam step, the training loop, reading the curves)
are written out in the notebook; this module holds what they stand on.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from . import style
from .config import numpy_rng, shifted_seed

if TYPE_CHECKING:
    from .history import History

style.apply_style()
WIDE = (style.MAX_WIDTH_IN, 3.0)  # inches: two panels side by side on an A4 page, text still >= 8 pt

# --- 1.1 A convex problem for the gradient-descent variants --------------------------------------


def two_blobs(n: int = 1000, distance: float = 2.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return a 2-D binary data set of two overlapping Gaussian blobs: X (n, 2) float64, y (n,) in {0, 1}."""
    if n < 2:
        raise ValueError(f"n={n} is too small for two classes; use n >= 2.")
    rng = numpy_rng(seed)
    y = (np.arange(n) % 2).astype(np.float64)
    centres = np.where(y[:, None] == 1, distance / 2, -distance / 2) * np.array([1.0, 0.5])
    # The classes overlap, so the logistic loss has a finite minimiser (no separating line).
    return centres + rng.normal(size=(n, 2)), y


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # tanh form: numerically stable for large |z|, no overflow warnings.
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def logistic_loss(w: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
    """Return the mean binary cross-entropy of the logistic model p = σ(X w[:-1] + w[-1])."""
    z = X @ w[:-1] + w[-1]
    # log(1 + e^z) - y z, written with logaddexp to stay finite for large |z|.
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def logistic_grad(w: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Return the gradient of ``logistic_loss`` with respect to w (weights, then bias)."""
    residual = _sigmoid(X @ w[:-1] + w[-1]) - y
    return np.append(X.T @ residual, residual.sum()) / len(y)


def logistic_optimum(X: np.ndarray, y: np.ndarray, iterations: int = 25) -> tuple[np.ndarray, float]:
    """Return the minimiser and minimum of ``logistic_loss``, found by Newton's method."""
    Xb = np.hstack([X, np.ones((len(X), 1))])
    w = np.zeros(Xb.shape[1])
    for _ in range(iterations):
        p = _sigmoid(Xb @ w)
        hessian = (Xb * (p * (1 - p))[:, None]).T @ Xb / len(y)
        w = w - np.linalg.solve(hessian, Xb.T @ (p - y) / len(y))
    return w, logistic_loss(w, X, y)


@dataclass
class GDRun:
    """One gradient-descent run: the loss after every update and the time spent in updates so far."""

    batch_size: int
    n_samples: int
    loss: np.ndarray      # loss[i] = full-data loss after i updates (loss[0]: initial weights)
    seconds: np.ndarray   # seconds[i] = time spent in the first i updates (loss evaluation excluded)

    @property
    def updates_per_epoch(self) -> int:
        """Number of updates in one pass over the data."""
        return math.ceil(self.n_samples / self.batch_size)

    def first_update_below(self, target: float) -> int | None:
        """Return the first update count at which the loss is at or below ``target`` (None if never)."""
        hits = np.flatnonzero(self.loss <= target)
        return int(hits[0]) if len(hits) else None


def time_descent(updates: Iterator[np.ndarray], X: np.ndarray, y: np.ndarray, batch_size: int) -> GDRun:
    """Consume an iterator of weights (one per update), timing only the updates; record the full-data loss."""
    losses, seconds, spent = [], [0.0], 0.0
    first = True
    while True:
        tic = time.perf_counter()
        w = next(updates, None)
        if w is None:
            break
        if first:  # the first item is the starting point, not an update
            losses.append(logistic_loss(w, X, y))
            first = False
            continue
        spent += time.perf_counter() - tic
        # Monitoring only: the full-data loss is not part of the method, so it is not timed.
        losses.append(logistic_loss(w, X, y))
        seconds.append(spent)
    return GDRun(batch_size, len(y), np.array(losses), np.array(seconds))


def compare_gd_variants(descent: Callable[..., Iterator[np.ndarray]], X: np.ndarray, y: np.ndarray,
                        methods: dict[str, tuple[int, float]], epochs: int, loss_star: float,
                        target: float, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run ``descent(X, y, batch_size, lr, epochs, seed)`` per method {name: (batch_size, lr)}; return (table, traces).

    The table has one column per method (narrow enough for a page); traces hold the excess loss
    L - L* after every update, against epochs and seconds.
    """
    table, traces = {}, []
    for name, (batch_size, lr) in methods.items():
        # the sheet's own descent draws from the seed itself: hand it the seed KIT_SEED shifts
        run = time_descent(descent(X, y, batch_size, lr, epochs, shifted_seed(seed)), X, y, batch_size)
        hit = run.first_update_below(target)
        n_updates = len(run.loss) - 1
        last_epoch = run.loss[-run.updates_per_epoch:] - loss_star
        table[name] = {
            "learning rate": lr,
            "samples per update": batch_size,  # per-sample gradients computed: the cost of one update
            "updates per epoch": run.updates_per_epoch,
            "µs per update": 1e6 * run.seconds[-1] / n_updates,
            "updates to target": math.nan if hit is None else hit,
            "epochs to target": math.nan if hit is None else hit / run.updates_per_epoch,
            "ms to target": math.nan if hit is None else 1e3 * run.seconds[hit],
            "L − L* at the end": run.loss[-1] - loss_star,
            "max L − L*, last epoch": last_epoch.max(),
        }
        traces.append(pd.DataFrame({"method": name, "epoch": np.arange(n_updates + 1) / run.updates_per_epoch,
                                    "seconds": run.seconds, "excess loss": run.loss - loss_star}))
    return pd.DataFrame(table), pd.concat(traces, ignore_index=True)


def plot_gd_traces(traces: pd.DataFrame, tolerance: float, points: int = 300) -> Figure:
    """Excess loss L - L* of each method against epochs (left) and update time (right), log scales."""
    fig = Figure(figsize=WIDE, layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for (name, trace), colour in zip(traces.groupby("method", sort=False), ("tab:blue", "tab:orange", "tab:green")):
        every = max(1, len(trace) // points)  # SGD makes thousands of updates; a few hundred points show it
        shown = trace.iloc[::every]
        for ax, x in zip(axes, ("epoch", "seconds")):
            ax.plot(shown[x], shown["excess loss"].clip(lower=1e-8), color=colour, lw=1.2, label=name)
    for ax, xlabel in zip(axes, ("epochs (passes over the data)", "seconds spent in updates")):
        ax.axhline(tolerance, color="black", ls=":", lw=1, label="target")
        ax.set(yscale="log", xlabel=xlabel)
        ax.grid(alpha=0.3)
    axes[1].set_xscale("log")
    axes[0].set_ylabel("L(w) − L*")
    axes[1].legend(fontsize=8, loc="lower left")
    return fig


# --- 1.1 and 1.2 A rough one-dimensional landscape -------------------------------------------------


def rough_loss(w: np.ndarray | float, ripple: float = 0.3, frequency: float = 6.0) -> np.ndarray | float:
    """Return a 1-D rough landscape: a bowl w²/2 with ripples; global minimum 0 at w = 0."""
    return 0.5 * np.square(w) + ripple * (1 - np.cos(frequency * np.asarray(w)))


def rough_grad(w: np.ndarray | float, ripple: float = 0.3, frequency: float = 6.0) -> np.ndarray | float:
    """Return the derivative of ``rough_loss``."""
    return np.asarray(w) + ripple * frequency * np.sin(frequency * np.asarray(w))


def descend_rough_landscape(w0: float, lrs: Sequence[float], noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """Run gradient descent on ``rough_loss`` with rate lrs[t] at step t, gradient noise of std ``noise``; return iterates."""
    rng = numpy_rng(seed)
    ws = [float(w0)]
    for lr in lrs:
        # Gaussian noise on the gradient stands in for the sampling noise of a mini-batch gradient.
        g = float(rough_grad(ws[-1])) + (noise * rng.normal() if noise else 0.0)
        ws.append(ws[-1] - lr * g)
    return np.array(ws)


def plot_landscape_descent(runs: dict[str, np.ndarray]) -> Figure:
    """Plot ``descend_rough_landscape`` iterates on the landscape (left) and their loss per step (right)."""
    fig = Figure(figsize=WIDE, layout="constrained")
    ax_land, ax_loss = fig.subplots(1, 2)
    lim = 1.1 * max(float(np.abs(ws).max()) for ws in runs.values())
    grid = np.linspace(-lim, lim, 800)
    ax_land.plot(grid, rough_loss(grid), color="0.6", lw=1)
    for (name, ws), colour in zip(runs.items(), ("tab:red", "tab:blue", "tab:green", "tab:purple")):
        steps = np.arange(1, len(ws))
        # Clipped at 1e-6: a run that reaches the minimum would otherwise squash the log axis.
        ax_loss.plot(steps, np.maximum(rough_loss(ws[1:]), 1e-6), color=colour, lw=1.2, label=name)
        ax_land.plot(ws, rough_loss(ws), "o-", ms=2, lw=0.5, alpha=0.6, color=colour)
        # End points on top, so no later path hides them.
        ax_land.plot(ws[-1], rough_loss(ws[-1]), "*", ms=12, color=colour, markeredgecolor="black", zorder=5)
    ax_land.set(xlabel="parameter w", ylabel="loss L(w)", title="iterates (★ = last)")
    ax_loss.set(xlabel="step t", ylabel="loss L(w_t)", yscale="log", title="loss per step")
    for ax in (ax_land, ax_loss):
        ax.grid(alpha=0.3)
    fig.legend(*ax_loss.get_legend_handles_labels(), loc="outside lower center", ncols=3, fontsize=8)
    return fig


SCHEDULERS: dict[str, Callable[..., torch.optim.lr_scheduler.LRScheduler]] = {
    "constant": torch.optim.lr_scheduler.ConstantLR,
    "step": torch.optim.lr_scheduler.StepLR,
    "exponential": torch.optim.lr_scheduler.ExponentialLR,
    "cosine": torch.optim.lr_scheduler.CosineAnnealingLR,
}


def scheduler_lrs(name: str, lr: float, epochs: int, **kwargs) -> list[float]:
    """Return the learning rate of each epoch under a torch.optim.lr_scheduler (e.g. "step", step_size=10)."""
    if name not in SCHEDULERS:
        raise ValueError(f"Unknown schedule {name!r}; choose one of {', '.join(SCHEDULERS)}.")
    if name == "constant":
        kwargs = {"factor": 1.0, **kwargs}
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = SCHEDULERS[name](optimizer, **kwargs)
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()  # torch expects optimizer.step() before scheduler.step()
        scheduler.step()
    return lrs


# --- 1.4 Optimisers in a narrow valley ------------------------------------------------------------


def descend_valley(make_optimizer: Callable[[list[torch.Tensor]], torch.optim.Optimizer], steps: int,
                   scales: tuple[float, float] = (1.0, 50.0), start: tuple[float, float] = (-4.0, 1.0)) -> np.ndarray:
    """Minimise L(w) = ½ Σ scales_i w_i² with a torch optimiser; return the iterates, shape (steps + 1, 2)."""
    w = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    s = torch.tensor(scales, dtype=torch.float64)
    optimizer = make_optimizer([w])
    path = [w.detach().clone()]
    for _ in range(steps):
        optimizer.zero_grad()
        (0.5 * (s * w ** 2).sum()).backward()
        optimizer.step()
        path.append(w.detach().clone())
    return torch.stack(path).numpy()


def valley_loss(path: np.ndarray, scales: tuple[float, float] = (1.0, 50.0)) -> np.ndarray:
    """Return L(w) = ½ Σ scales_i w_i² for each row of ``path``."""
    return 0.5 * (np.asarray(scales) * np.asarray(path) ** 2).sum(axis=1)


def plot_valley_paths(paths: dict[str, np.ndarray], scales: tuple[float, float] = (1.0, 50.0),
                      shown_steps: int = 40) -> Figure:
    """The first ``shown_steps`` iterates of each optimiser on the valley's contours (left), loss per step (right)."""
    fig = Figure(figsize=WIDE, layout="constrained")
    ax_path, ax_loss = fig.subplots(1, 2)
    g1, g2 = np.meshgrid(np.linspace(-4.5, 1.0, 200), np.linspace(-1.3, 1.3, 200))
    ax_path.contour(g1, g2, 0.5 * (scales[0] * g1 ** 2 + scales[1] * g2 ** 2), levels=12, colors="0.75", linewidths=0.6)
    for (name, path), colour in zip(paths.items(), ("tab:red", "tab:blue", "tab:green", "tab:purple")):
        ax_path.plot(path[:shown_steps + 1, 0], path[:shown_steps + 1, 1], "o-", ms=2, lw=0.8, color=colour)
        ax_loss.plot(np.arange(1, len(path)), valley_loss(path[1:], scales), color=colour, lw=1.2, label=name)
    ax_path.set(xlabel="w₁ (flat direction)", ylabel="w₂ (steep direction)", title=f"first {shown_steps} steps")
    ax_loss.set(xlabel="step t", ylabel="loss", yscale="log", title="loss per step")
    for ax in (ax_path, ax_loss):
        ax.grid(alpha=0.3)
    fig.legend(*ax_loss.get_legend_handles_labels(), loc="outside lower center", ncols=len(paths), fontsize=8)
    return fig


# --- 2.4 Two training runs side by side -------------------------------------------------------------


def plot_run_curves(runs: dict[str, History]) -> Figure:
    """Loss (left) and accuracy (right) per epoch, counted from 1: training dashed, validation solid, one colour per run."""
    fig = Figure(figsize=(style.MAX_WIDTH_IN, 3.2), layout="constrained")
    axes = fig.subplots(1, 2)
    for (name, history), colour in zip(runs.items(), ("tab:blue", "tab:red", "tab:green", "tab:purple")):
        epochs = history.epoch_numbers()
        for ax, metric in zip(axes, ("loss", "acc")):
            ax.plot(epochs, getattr(history, f"train_{metric}"), "--", color=colour, lw=1.2, label=f"{name}, training")
            ax.plot(epochs, getattr(history, f"val_{metric}"), "-", color=colour, lw=1.6, label=f"{name}, validation")
    for ax, ylabel in zip(axes, ("cross-entropy loss", "accuracy")):
        ax.set(xlabel="epoch", ylabel=ylabel)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    # Below the panels, so the legend never covers a curve.
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=8)
    return fig


def first_epoch_reaching(history: History, metric: str, level: float) -> float:
    """Return the first epoch (counted from 1, from the History's record) whose ``metric`` is >= level, NaN if none."""
    return next((int(e) for e, v in zip(history.epoch_numbers(), getattr(history, metric)) if v >= level), math.nan)


def compare_runs(runs: dict[str, History], target_acc: float) -> pd.DataFrame:
    """Speed (in epochs), stability and final numbers of each run as display strings, one column per run.

    Epochs count from 1 (``History.epoch_numbers``). Wall-clock time is left out: cached runs may come from
    differently loaded machines.
    """
    def pct(x: float) -> str:
        return f"{100 * x:.2f} %"

    table = {}
    for name, h in runs.items():
        epochs = h.epoch_numbers()
        steps_per_epoch = len(h.step_loss) // max(1, epochs[-1])
        table[name] = {
            "val acc after epoch 1": pct(h.val_acc[0]),
            f"first epoch with val acc ≥ {target_acc:.0%}": f"{first_epoch_reaching(h, 'val_acc', target_acc):g}",
            "std of step loss, last epoch": f"{np.std(h.step_loss[-steps_per_epoch:]):.3f}",
            "epochs whose val loss rose": f"{int(np.sum(np.diff(h.val_loss) > 0))} of {len(h.epoch) - 1}",
            "lowest val loss (epoch)": f"{h.best('val_loss'):.3f} ({epochs[np.nanargmin(h.val_loss)]})",
            "final val loss": f"{h.final('val_loss'):.3f}",
            "best val acc (epoch)": f"{pct(h.best('val_acc'))} ({epochs[np.nanargmax(h.val_acc)]})",
            "final val acc": pct(h.final("val_acc")),
            "final train acc − val acc": f"{100 * (h.final('train_acc') - h.final('val_acc')):.2f} points",
        }
    return pd.DataFrame(table)

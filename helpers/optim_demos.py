"""Small demonstrations for sheet 2: gradient-descent variants, a rough 1-D landscape, Adam by hand."""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from matplotlib.figure import Figure
import numpy as np
import pandas as pd
import torch

if TYPE_CHECKING:
    from .record import History

# --- 1. Batch, stochastic and mini-batch gradient descent on a convex problem ------------


def two_blobs(n: int = 1000, distance: float = 2.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return a 2-D binary data set of two overlapping Gaussian blobs: X (n, 2) float64, y (n,) in {0, 1}."""
    if n < 2:
        raise ValueError(f"n={n} is too small for two classes; use n >= 2.")
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(np.float64)
    centres = np.where(y[:, None] == 1, distance / 2, -distance / 2) * np.array([1.0, 0.5])
    X = centres + rng.normal(size=(n, 2))
    # The classes overlap, so the logistic loss has a finite minimiser (no separating line).
    return X, y


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
    """One gradient-descent run: the loss after every update and the training time spent so far."""

    method: str
    batch_size: int
    lr: float
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


def run_gradient_descent(X: np.ndarray, y: np.ndarray, batch_size: int | None, lr: float, epochs: int,
                         seed: int = 0, method: str | None = None) -> GDRun:
    """Run (mini-batch) gradient descent on the logistic loss; batch_size None or n is batch GD, 1 is SGD."""
    n = len(y)
    batch_size = n if batch_size is None else batch_size
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size={batch_size} must lie in 1..{n} (the number of samples), or be None for BGD.")
    if lr <= 0 or epochs < 1:
        raise ValueError(f"Need lr > 0 and epochs >= 1 (got lr={lr}, epochs={epochs}).")
    rng = np.random.default_rng(seed)
    w = np.zeros(X.shape[1] + 1)
    losses, seconds, spent = [logistic_loss(w, X, y)], [0.0], 0.0
    for _ in range(epochs):
        order = rng.permutation(n)  # a fresh random order each epoch
        for start in range(0, n, batch_size):
            tic = time.perf_counter()
            idx = order[start:start + batch_size]
            w = w - lr * logistic_grad(w, X[idx], y[idx])
            spent += time.perf_counter() - tic
            # Monitoring only: the full-data loss is not part of the method, so it is not timed.
            losses.append(logistic_loss(w, X, y))
            seconds.append(spent)
    name = method or ("BGD" if batch_size == n else "SGD" if batch_size == 1 else f"mini-batch ({batch_size})")
    return GDRun(name, batch_size, lr, n, np.array(losses), np.array(seconds))


def compare_gd_variants(X: np.ndarray, y: np.ndarray, methods: dict[str, tuple[int | None, float]],
                        epochs: int, target: float, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run each method {name: (batch_size, lr)}; return (summary table, per-update loss traces)."""
    rows, traces = [], []
    for name, (batch_size, lr) in methods.items():
        run = run_gradient_descent(X, y, batch_size, lr, epochs, seed=seed, method=name)
        hit = run.first_update_below(target)
        n_updates = len(run.loss) - 1
        rows.append({
            "method": name, "batch_size": run.batch_size, "lr": lr,
            "samples_per_update": run.batch_size,  # gradient terms evaluated per update: the cost of one update
            "updates_per_epoch": run.updates_per_epoch,
            "us_per_update": 1e6 * run.seconds[-1] / n_updates,
            "updates_to_target": hit,
            "epochs_to_target": None if hit is None else hit / run.updates_per_epoch,
            "seconds_to_target": None if hit is None else float(run.seconds[hit]),
            "final_loss": float(run.loss[-1]),
        })
        traces.append(pd.DataFrame({
            "method": name, "update": np.arange(n_updates + 1),
            "epoch": np.arange(n_updates + 1) / run.updates_per_epoch,
            "seconds": run.seconds, "loss": run.loss,
        }))
    return pd.DataFrame(rows), pd.concat(traces, ignore_index=True)


# --- 2. Learning-rate schedules ---------------------------------------------------------------


def rough_loss(w: np.ndarray | float, ripple: float = 0.3, frequency: float = 6.0) -> np.ndarray | float:
    """Return a 1-D rough landscape: a bowl w²/2 with ripples; global minimum 0 at w = 0."""
    return 0.5 * np.square(w) + ripple * (1 - np.cos(frequency * np.asarray(w)))


def rough_grad(w: np.ndarray | float, ripple: float = 0.3, frequency: float = 6.0) -> np.ndarray | float:
    """Return the derivative of ``rough_loss``."""
    return np.asarray(w) + ripple * frequency * np.sin(frequency * np.asarray(w))


def descend_rough_landscape(w0: float, lrs: Sequence[float], ripple: float = 0.3,
                            frequency: float = 6.0) -> np.ndarray:
    """Run gradient descent on ``rough_loss`` with learning rate lrs[t] at step t; return all iterates."""
    ws = [float(w0)]
    for lr in lrs:
        ws.append(ws[-1] - lr * float(rough_grad(ws[-1], ripple, frequency)))
    return np.array(ws)


def plot_landscape_descent(runs: dict[str, np.ndarray], ripple: float = 0.3, frequency: float = 6.0,
                           title: str | None = None) -> Figure:
    """Plot iterates of ``descend_rough_landscape`` runs on the landscape (left) and their loss per step (right)."""
    # A bare Figure, not pyplot: the notebook shows it once, and nothing stays open.
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax_land, ax_loss = fig.subplots(1, 2)
    lim = 1.1 * max(float(np.abs(ws).max()) for ws in runs.values())
    grid = np.linspace(-lim, lim, 800)
    ax_land.plot(grid, rough_loss(grid, ripple, frequency), color="0.6", lw=1, label="loss landscape")
    for name, ws in runs.items():
        line, = ax_loss.plot(rough_loss(ws, ripple, frequency), label=name)
        ax_land.plot(ws, rough_loss(ws, ripple, frequency), "o-", ms=3, lw=0.6, alpha=0.7,
                     color=line.get_color(), label=name)
    for line, ws in zip(ax_loss.lines, runs.values()):
        # End points last and on top, so no later path hides them.
        ax_land.plot(ws[-1], rough_loss(ws[-1], ripple, frequency), "*", ms=15, color=line.get_color(),
                     markeredgecolor="black", zorder=5)
    ax_land.set(xlabel="parameter w", ylabel="loss L(w)", title="Iterates on the landscape (★ = last)")
    ax_loss.set(xlabel="step t", ylabel="loss L(w_t)", title="Loss per step")
    ax_land.legend(fontsize=8)
    ax_loss.legend(fontsize=8)
    if title:
        fig.suptitle(title)
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


# --- 4. Adam by hand ------------------------------------------------------------------------------


def adam_step_by_hand(m_prev: float, v_prev: float, g: float, beta1: float = 0.9, beta2: float = 0.999,
                      lr: float = 1e-3, eps: float = 1e-8, t: int | None = None) -> dict[str, float]:
    """Return Adam's new moments m, v and update Δw; t=None means no bias correction, else step t (1-based)."""
    m = beta1 * m_prev + (1 - beta1) * g
    v = beta2 * v_prev + (1 - beta2) * g * g
    # Bias correction divides by 1 - β^t; leaving it out is the same as t → ∞.
    c1 = 1.0 if t is None else 1 - beta1 ** t
    c2 = 1.0 if t is None else 1 - beta2 ** t
    delta = -lr * (m / c1) / (math.sqrt(v / c2) + eps)
    return {"m": m, "v": v, "delta": delta}


def adam_step_torch(m_prev: float, v_prev: float, g: float, beta1: float = 0.9, beta2: float = 0.999,
                    lr: float = 1e-3, eps: float = 1e-8, t: int = 1, w: float = 0.0) -> dict[str, float]:
    """Return m, v and Δw from one torch.optim.Adam step whose state holds the given moments, as step t."""
    if t < 1:
        raise ValueError(f"t={t} is the 1-based number of the step being taken; use t >= 1.")
    param = torch.nn.Parameter(torch.tensor([w], dtype=torch.float64))
    optimizer = torch.optim.Adam([param], lr=lr, betas=(beta1, beta2), eps=eps, foreach=False)
    # Adam increments the stored step before using it, so step t starts from t - 1.
    optimizer.state[param] = {
        "step": torch.tensor(float(t - 1)),
        "exp_avg": torch.tensor([m_prev], dtype=torch.float64),
        "exp_avg_sq": torch.tensor([v_prev], dtype=torch.float64),
    }
    param.grad = torch.tensor([g], dtype=torch.float64)
    optimizer.step()
    state = optimizer.state[param]
    return {"m": state["exp_avg"].item(), "v": state["exp_avg_sq"].item(), "delta": param.item() - w}


# --- Exercise 2: reading the learning curves ------------------------------------------------------


def diagnose_fit(history: History, name: str = "the model", tolerance: float = 0.01, rise: float = 0.03) -> str:
    """Return a sentence, with numbers, saying whether a run's curves show over- or under-fitting."""
    train_loss, val_loss = np.asarray(history.train_loss), np.asarray(history.val_loss)
    if len(val_loss) == 0 or not np.isfinite(val_loss).any():
        raise ValueError(f"{name}: the History has no validation loss; pass val_loader to fit().")
    best = int(np.nanargmin(val_loss))
    # Epoch-to-epoch noise moves the validation loss by a percent or so; only a clear rise counts.
    risen = float(val_loss[-1] - val_loss[best]) > rise * val_loss[best]
    gap = float(history.train_acc[-1] - history.val_acc[-1])
    # Relative improvement of the training loss in the last epoch: still learning if it is clearly > 0.
    still_learning = len(train_loss) > 1 and (train_loss[-2] - train_loss[-1]) / train_loss[-2] > tolerance
    facts = (f"{name}: final training loss {train_loss[-1]:.3f}, validation loss {val_loss[-1]:.3f} "
             f"(lowest {val_loss[best]:.3f} after epoch {best + 1} of {len(val_loss)}); "
             f"training minus validation accuracy {100 * gap:.1f} points")
    if risen:
        verdict = ("over-fitting: the validation loss has risen since its minimum while the training loss "
                   "kept falling, so the later epochs fit the training set's noise; stop earlier "
                   "(early stopping) or regularise")
    elif still_learning:
        verdict = ("under-fitting (not converged): the training loss was still falling clearly in the last epoch "
                   "and the validation loss has not clearly turned up, so more epochs (or a larger learning rate) "
                   "would still help")
    elif gap > 0.05:
        verdict = "converged with a large generalisation gap: more data or regularisation would help most"
    else:
        verdict = "a good fit: the training loss has levelled off and the validation loss has not turned up"
    return f"{facts} → {verdict}."

"""Every figure the sheets draw. Each function returns a matplotlib Figure; none calls plt.show().

Figures are built without pyplot (``matplotlib.figure.Figure``), so a notebook shows each one
exactly once: as the cell's result, or with ``display(fig)`` when one cell draws several. They are
plain matplotlib, so they land in the exported PDF like any other output.
"""
from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any, Callable, Sequence

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, NullFormatter

from .history import History, higher_is_better, trial_history
from . import style
from .style import fit_figsize

style.apply_style()  # importing the figures applies the kit's figure style to every figure in the kernel

if TYPE_CHECKING:
    import optuna
    import torch

SPLITS = {"train": "training", "val": "validation", "test": "test"}
SPLIT_COLORS = {"train": "tab:blue", "val": "tab:orange", "test": "tab:green"}
METRIC_NAMES = {"loss": "loss", "acc": "accuracy", "lr": "learning rate", "time": "time per epoch (s)",
                "peak_mem": "peak memory (MiB)", "step_loss": "training loss"}
PANEL = (5.0, 3.6)  # inches per subplot: readable on a PDF page, two side by side


# --- Small shared helpers ---------------------------------------------------------------------
def _figure(nrows: int = 1, ncols: int = 1, panel: tuple[float, float] = PANEL, **kwargs) -> tuple[Figure, np.ndarray]:
    """A constrained-layout figure with a 2-D array of axes."""
    fig = Figure(figsize=fit_figsize(panel[0] * ncols, panel[1] * nrows), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False, **kwargs)


def _finish(ax, title: str | None = None, xlabel: str | None = None, ylabel: str | None = None,
            legend: bool = True, legend_title: str | None = None, **legend_kwargs) -> None:
    """Title, axis labels, a light grid and (when there is something to show) a legend."""
    if title:
        ax.set_title(title)
    if xlabel:
        ax.set_xlabel(xlabel)
        if xlabel in ("epoch", "optimisation step"):  # no "epoch 2.5" ticks
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if legend:
        style.legend(ax, fontsize="small", title=legend_title, **legend_kwargs)


def _colors(n: int) -> list:
    """n distinguishable qualitative colours (the kit palette; see helpers.style)."""
    return style.colors(n)


def _metric_name(key: str) -> str:
    """'val_loss' -> 'validation loss'."""
    split, _, metric = key.partition("_")
    if split in SPLITS and metric:
        return f"{SPLITS[split]} {METRIC_NAMES.get(metric, metric)}"
    return METRIC_NAMES.get(key, key.replace("_", " "))


def _numpy(values: Any) -> np.ndarray:
    """A numpy array from a tensor, list or array (moved to the CPU, detached)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _finite(values: Sequence[float]) -> np.ndarray:
    """Floats with ±inf turned into NaN, so a diverged run leaves a gap instead of wrecking the axis."""
    arr = np.asarray(values, dtype=float)
    return np.where(np.isfinite(arr), arr, np.nan)


def _moving_average(values: np.ndarray, window: int | None) -> np.ndarray:
    """Trailing moving average over ``window`` points (the first points average what exists)."""
    if not window or window <= 1:
        return values
    return pd.Series(values).rolling(window, min_periods=1).mean().to_numpy()


def _nan_mean_std(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over runs of different lengths (padded with NaN)."""
    length = max(len(r) for r in rows)
    stacked = np.full((len(rows), length), np.nan)
    for i, r in enumerate(rows):
        stacked[i, :len(r)] = r
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns after every run diverged
        return np.nanmean(stacked, axis=0), np.nanstd(stacked, axis=0)


def _label_of(keys: Sequence[str], values: Sequence) -> str:
    """'lr=0.01, width=10'."""
    return ", ".join(f"{k}={v}" for k, v in zip(keys, values))


# --- Training curves ---------------------------------------------------------------------------
def plot_history(history: History, metrics: str | Sequence[str] = ("loss", "acc"), title: str | None = None) -> Figure:
    """Training, validation and test curves of one run, one panel per metric."""
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    known = set(history.series_names())
    present = [m for m in metrics
               if any(np.isfinite(_finite(history.series(f"{s}_{m}"))).any() for s in SPLITS if f"{s}_{m}" in known)]
    if not present:
        raise ValueError(f"The History has no finite values for metrics {metrics}; it has "
                         f"{', '.join(history.series_names())} (name a metric without its split: 'loss', 'acc').")
    fig, axes = _figure(1, len(present), panel=(min(PANEL[0], style.MAX_WIDTH_IN / len(present)), 3.0))
    for ax, metric in zip(axes[0], present):
        for split, name in SPLITS.items():
            values = _finite(history.series(f"{split}_{metric}")) if f"{split}_{metric}" in known else []
            if np.isfinite(values).any():
                ax.plot(history.epoch_numbers(), values, marker="o" if len(values) <= 20 else None, ms=3,
                        color=SPLIT_COLORS[split], label=name)
        _finish(ax, METRIC_NAMES.get(metric, metric), "epoch", METRIC_NAMES.get(metric, metric))
    fig.suptitle((title or "Training curves") + (" (diverged)" if history.diverged else ""))
    return fig


def _run_groups(runs: dict[str, History] | pd.DataFrame,
                hue: str | Sequence[str] | None) -> list[tuple[str, list[History]]]:
    """(label, histories) pairs: a dict's keys, or a DataFrame grouped by ``hue`` (repeats pooled)."""
    if isinstance(runs, dict):
        return [(str(label), [h]) for label, h in runs.items()]
    if not isinstance(runs, pd.DataFrame) or "history" not in runs:
        raise ValueError("runs must be a dict {label: History} or a DataFrame with a 'history' column "
                         "(what run_grid and sweep_frame return).")
    frame = runs[runs["history"].notna()]
    keys = [hue] if isinstance(hue, str) else list(hue or frame.attrs.get("params") or runs.attrs.get("params") or [])
    missing = [k for k in keys if k not in frame]
    if missing:
        raise ValueError(f"hue columns {missing} are not in the DataFrame; "
                         f"columns: {', '.join(map(str, frame.columns))}.")
    if not keys:
        return [(str(index), [h]) for index, h in frame["history"].items()]
    return [(_label_of(keys, values if isinstance(values, tuple) else (values,)), list(group["history"]))
            for values, group in frame.groupby(keys, sort=True, dropna=False)]


def _series(history: History, x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    """x and y values of one run: per epoch, or against optimisation steps.

    With ``x="step"``, ``y="step_loss"`` gives the loss of every step, and a per-epoch metric is placed at
    the step that ended its epoch (so runs with different batch sizes share one axis).
    """
    if x not in ("epoch", "step"):
        raise ValueError(f"x must be 'epoch' or 'step', got {x!r}.")
    if x == "step" and y == "step_loss":
        return np.arange(1, len(history.step_loss) + 1), _finite(history.step_loss)
    if y not in history.series_names():
        raise ValueError(f"Unknown per-epoch metric y={y!r}; choose one of {', '.join(history.series_names())}"
                         + (" or 'step_loss'." if x == "step" else "."))
    values = _finite(history.series(y))
    epochs = history.epoch_numbers().astype(float)
    if x == "epoch":
        return epochs, values
    steps_per_epoch = len(history.step_loss) / (epochs[-1] if len(epochs) else 1)  # epochs trained, from the record
    return steps_per_epoch * epochs, values


def plot_runs(runs: dict[str, History] | pd.DataFrame, y: str | None = None, x: str = "epoch",
              hue: str | Sequence[str] | None = None, title: str | None = None, logy: bool = False,
              smooth: int | None = None, logx: bool = False) -> Figure:
    """Several runs on one axes: ``y`` (default ``val_loss``) per epoch, or against optimisation steps.

    With ``x="step"`` the default ``y`` is the loss of every step; a per-epoch ``y`` is drawn at the
    step that ended each epoch. Runs sharing a ``hue`` value (repeats) are drawn as mean ± std.
    ``smooth`` is a moving-average window, useful for noisy step losses.
    """
    y = y or ("step_loss" if x == "step" else "val_loss")
    groups = _run_groups(runs, hue)
    if not groups:
        raise ValueError("No runs with a History to plot.")
    fig, axes = _figure()
    ax = axes[0, 0]
    for (label, histories), color in zip(groups, _colors(len(groups))):
        xs, _ = max((_series(h, x, y) for h in histories), key=lambda s: len(s[0]))
        ys = [_moving_average(_series(h, x, y)[1], smooth) for h in histories]
        mean, std = _nan_mean_std(ys)
        if any(h.diverged for h in histories):
            label += " (diverged)" if len(histories) == 1 else f" ({sum(h.diverged for h in histories)} diverged)"
        ax.plot(xs[:len(mean)], mean, color=color, label=label, lw=1.5, marker="o" if len(mean) <= 20 else None,
                ms=3)
        if len(histories) > 1:
            ax.fill_between(xs[:len(mean)], mean - std, mean + std, color=color, alpha=0.2, lw=0)
    if logy:
        ax.set_yscale("log")
    name = _metric_name(y)
    xlabel = "optimisation step" if x == "step" else "epoch"
    legend_title = ", ".join([hue] if isinstance(hue, str) else hue) if hue else None
    _finish(ax, title or f"{name[0].upper()}{name[1:]} per {xlabel}", xlabel,
            name + (f" (moving average of {smooth})" if smooth and smooth > 1 else ""), legend_title=legend_title)
    if logx:  # after _finish, whose integer step locator would otherwise replace the log one
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # labelled minor ticks crowd a short log axis
    return fig


def plot_grad_norms(histories: History | dict[str, History], layers: Sequence[str] | None = None,
                    title: str | None = None, ncols: int = 2) -> Figure:
    """Per-layer gradient norms over epochs (log scale): one panel per history, ``ncols`` to a row, shared y axis.

    A panel whose gradients are all exactly zero says so (a log axis cannot draw zeros).
    """
    histories = {"": histories} if isinstance(histories, History) else dict(histories)
    if not any(h.grad_norms for h in histories.values()):
        raise ValueError("No gradient norms recorded: history.grad_norms is empty. Train with a callback that writes "
                         "it after backward() (sheet 3, 6.2.4).")
    ncols = max(1, min(ncols, len(histories)))
    nrows = math.ceil(len(histories) / ncols)
    # 3.2 in per panel: two panels side by side fit the text width (style.MAX_WIDTH_IN).
    fig, axes = _figure(nrows, ncols, panel=(3.2, 2.4), sharey=True, sharex=True)
    for ax in axes.flat[len(histories):]:
        ax.axis("off")
    for ax, (name, history) in zip(axes.flat, histories.items()):
        names = [layer for layer in (layers or history.grad_norms) if layer in history.grad_norms]
        # Layers are ordered input to output, so a sequential colormap shows depth.
        colors = mpl.colormaps["viridis"](np.linspace(0, 0.9, max(len(names), 1)))
        drawn = False
        for layer, color in zip(names, colors):
            values = _finite(history.grad_norms[layer])
            values[values <= 0] = np.nan  # log scale
            drawn |= bool(np.isfinite(values).any())
            if len(values) != len(history.epoch):
                raise ValueError(f"{name or 'The History'} has {len(values)} gradient norms for {layer} but "
                                 f"{len(history.epoch)} epochs; record one value per epoch.")
            ax.plot(history.epoch_numbers(), values, color=color, marker="o", ms=2, label=layer)
        if not drawn:
            ax.text(0.5, 0.5, "every gradient is exactly 0", transform=ax.transAxes, ha="center", va="center",
                    fontsize=8, color="darkred")
        ax.set_yscale("log")
        first_column = ax in axes[:, 0]
        _finish(ax, name or None, "epoch" if ax in axes[-1] else None,
                "mean squared grad. norm" if first_column else None, legend=False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize="small", title="weights of")
    fig.suptitle(title or "Gradient norm per layer")
    return fig


# --- Classifiers -------------------------------------------------------------------------------
def _predict_points(model, points: np.ndarray, feature_fn=None, chunk: int = 65_536) -> np.ndarray:
    """Class predictions of a torch model for 2-D points (in eval mode, without gradients)."""
    import torch

    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    was_training = model.training
    model.eval()
    preds = []
    try:
        with torch.no_grad():
            for start in range(0, len(points), chunk):
                batch = torch.as_tensor(points[start:start + chunk], dtype=torch.float32)
                if feature_fn is not None:  # e.g. sin features: the model sees transformed points
                    batch = feature_fn(batch)
                logits = model(batch.to(device)).float().cpu()
                binary = logits.ndim == 1 or logits.shape[1] == 1
                preds.append((logits.view(-1) > 0).long() if binary else logits.argmax(1))
    finally:
        model.train(was_training)
    return torch.cat(preds).numpy()


def _label_regions(ax, xx: np.ndarray, yy: np.ndarray, pred: np.ndarray, names: list[str], top: int) -> None:
    """Write the class name inside each of the ``top`` largest predicted regions (at the cell nearest its centre)."""
    classes, area = np.unique(pred, return_counts=True)
    for cls in classes[np.argsort(area)[::-1][:top]]:
        rows, cols = np.nonzero(pred == cls)
        px, py = xx[rows, cols], yy[rows, cols]
        i = np.argmin((px - px.mean()) ** 2 + (py - py.mean()) ** 2)
        ax.text(px[i], py[i], names[cls], ha="center", va="center", fontsize=8,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "alpha": 0.7, "lw": 0})


def plot_decision_boundary(model: torch.nn.Module, X: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor,
                           class_names: Sequence[str] | None = None, title: str | None = None,
                           xlabel: str = "x1", ylabel: str = "x2", resolution: int = 300,
                           feature_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
                           label_top: int = 18) -> Figure:
    """Predicted class regions of a 2-D classifier with the data on top.

    Up to 12 classes get a legend; with more, the ``label_top`` largest regions are named on the map.
    """
    X, y = _numpy(X).astype(float), _numpy(y).astype(int).ravel()
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"X must have shape (N, 2) (two input features); got {X.shape}.")
    pad = 0.05 * (X.max(0) - X.min(0)) + 1e-9
    (x0, y0), (x1, y1) = X.min(0) - pad, X.max(0) + pad
    xx, yy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    pred = _predict_points(model, np.column_stack([xx.ravel(), yy.ravel()]), feature_fn).reshape(xx.shape)
    n = len(class_names) if class_names is not None else int(max(y.max(), pred.max())) + 1
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    cmap = ListedColormap(_colors(n))
    fig, axes = _figure(panel=(style.MAX_WIDTH_IN, 5.0) if n > 12 else (5.5, 4.5))
    ax = axes[0, 0]
    colours = {"cmap": cmap, "vmin": -0.5, "vmax": n - 0.5}
    ax.imshow(pred, origin="lower", extent=(x0, x1, y0, y1), aspect="auto", alpha=0.35,
              interpolation="nearest", **colours)
    ax.contour(xx, yy, pred, levels=np.arange(n - 1) + 0.5, colors="k", linewidths=0.4)
    ax.scatter(X[:, 0], X[:, 1], c=y, s=8 if len(X) > 1000 else 18, edgecolors="k", linewidths=0.3, **colours)
    accuracy = (_predict_points(model, X, feature_fn) == y).mean()
    if n <= 12:
        handles = [Patch(color=c, label=name) for c, name in zip(_colors(n), names)]
        ax.legend(handles=handles, fontsize="small", title="class", loc="best")
    else:  # a 33-entry legend is unreadable; name the largest regions instead
        _label_regions(ax, xx, yy, pred, names, label_top)
    _finish(ax, title or f"Decision boundary (accuracy on these points {accuracy:.1%})", xlabel, ylabel,
            legend=False)
    return fig


def plot_confusion_matrix(targets: np.ndarray | torch.Tensor, preds: np.ndarray | torch.Tensor,
                          class_names: Sequence[str], title: str | None = None, normalize: bool = False
                          ) -> Figure:
    """Counts (or, with ``normalize``, row fractions) of true class versus predicted class."""
    targets, preds = _numpy(targets).astype(int).ravel(), _numpy(preds).astype(int).ravel()
    n = len(class_names)
    counts = np.zeros((n, n), dtype=int)
    np.add.at(counts, (targets, preds), 1)
    values = counts / np.maximum(counts.sum(1, keepdims=True), 1) if normalize else counts
    size = max(4.5, 0.45 * n + 2.5)
    fig, axes = _figure(panel=(size + 1, size))
    ax = axes[0, 0]
    image = ax.imshow(values, cmap="Blues")
    fig.colorbar(image, ax=ax, label="fraction of true class" if normalize else "count")
    if n <= 15:
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, f"{v:.2f}" if normalize else f"{v:d}", ha="center", va="center", fontsize=8,
                    color="white" if v > 0.5 * values.max() else "black")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    _finish(ax, title or f"Confusion matrix (accuracy {accuracy:.1%})", "predicted class", "true class", legend=False)
    ax.grid(False)
    return fig


# --- Images ------------------------------------------------------------------------------------
def _display_images(images, mean=None, std=None) -> np.ndarray:
    """(N,H,W) or (N,H,W,3) floats in [0, 1] from normalised (N,C,H,W) / (N,H,W,C) / (N,H,W) images.

    With ``mean``/``std`` the normalisation is undone; otherwise each image is rescaled to its own
    min..max, which shows any normalisation properly.
    """
    arr = _numpy(images).astype(float)
    if arr.ndim == 4 and arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(0, 2, 3, 1)  # channels first (torch) -> channels last (matplotlib)
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise ValueError("images must be (N,C,H,W) or (N,H,W,C) with 1 or 3 channels, or (N,H,W); "
                         f"got shape {_numpy(images).shape}.")
    if mean is not None and std is not None:
        arr = arr * np.asarray(std, dtype=float) + np.asarray(mean, dtype=float)
    else:
        low = arr.min(axis=(1, 2, 3), keepdims=True)
        high = arr.max(axis=(1, 2, 3), keepdims=True)
        arr = (arr - low) / np.where(high > low, high - low, 1.0)
    arr = np.clip(arr, 0.0, 1.0)
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def _image_panel(images: np.ndarray, captions: list[str], ncols: int, title: str,
                 caption_colors: list[str] | None = None) -> Figure:
    """A grid of images with a caption above each."""
    nrows = max(1, math.ceil(len(images) / ncols))
    fig, axes = _figure(nrows, ncols, panel=(1.7, 1.9))
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < len(images):
            ax.imshow(images[k], cmap="gray" if images[k].ndim == 2 else None, vmin=0, vmax=1)
            ax.set_title(captions[k], fontsize=8, color=(caption_colors or ["black"] * len(images))[k])
    fig.suptitle(title)
    return fig


def _name(label: int, class_names: Sequence[str] | None) -> str:
    return class_names[label] if class_names is not None else str(label)


def plot_image_grid(images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor,
                    class_names: Sequence[str] | None, nrows: int = 2, ncols: int = 5,
                    title: str | None = None, one_per_class: bool = False,
                    mean: float | Sequence[float] | None = None, std: float | Sequence[float] | None = None
                    ) -> Figure:
    """A grid of images captioned with their class; ``one_per_class`` picks the first example of each class."""
    labels = _numpy(labels).astype(int).ravel()
    if one_per_class:
        index = [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)][:nrows * ncols]
    else:
        index = list(range(min(len(labels), nrows * ncols)))
    shown = _display_images(_numpy(images)[index], mean, std)
    captions = [_name(labels[i], class_names) for i in index]
    return _image_panel(shown, captions, ncols, title or ("One example per class" if one_per_class else "Examples"))


def plot_misclassified(images: np.ndarray | torch.Tensor, true: np.ndarray | torch.Tensor,
                       pred: np.ndarray | torch.Tensor, class_names: Sequence[str] | None, n: int = 5,
                       title: str | None = None,
                       mean: float | Sequence[float] | None = None, std: float | Sequence[float] | None = None
                       ) -> Figure:
    """The first ``n`` misclassified images, captioned with true and predicted class."""
    true, pred = _numpy(true).astype(int).ravel(), _numpy(pred).astype(int).ravel()
    wrong = np.flatnonzero(true != pred)
    title = title or f"Misclassified samples ({len(wrong)} of {len(true)} wrong)"
    if len(wrong) == 0:
        fig, axes = _figure(panel=(4, 1.5))
        axes[0, 0].axis("off")
        axes[0, 0].text(0.5, 0.5, "No misclassified samples", ha="center", va="center")
        fig.suptitle(title)
        return fig
    index = wrong[:n]
    captions = [f"true: {_name(true[i], class_names)}\npred: {_name(pred[i], class_names)}" for i in index]
    return _image_panel(_display_images(_numpy(images)[index], mean, std), captions, min(len(index), 5), title,
                        caption_colors=["darkred"] * len(index))


# --- Tables ------------------------------------------------------------------------------------
def plot_heatmap(mean: pd.DataFrame, std: pd.DataFrame | None = None, title: str | None = None,
                 xlabel: str | None = None, ylabel: str | None = None, fmt: str = ".3f",
                 cmap: str = "viridis", width: float | None = None) -> Figure:
    """An annotated heatmap of a table (e.g. mean ± std over repetitions); non-finite cells grey.

    ``width`` (inches) overrides the width that grows with the number of columns, e.g. to fit a page.
    """
    values = mean.to_numpy(dtype=float)
    nrows, ncols = values.shape
    fig, axes = _figure(panel=(width or max(4.5, 1.1 * ncols + 2), max(3.0, 0.55 * nrows + 1.5)))
    ax = axes[0, 0]
    colormap = mpl.colormaps[cmap].with_extremes(bad="lightgrey")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=colormap, aspect="auto")
    fig.colorbar(image, ax=ax)
    norm = image.norm
    for (i, j), v in np.ndenumerate(values):
        text = f"{v:{fmt}}" if np.isfinite(v) else "n/a"
        if std is not None and np.isfinite(v):
            text += f"\n± {std.to_numpy(dtype=float)[i, j]:{fmt}}"
        # Dark text on light cells and vice versa.
        light = not np.isfinite(v) or np.mean(colormap(norm(v))[:3]) > 0.5
        ax.text(j, i, text, ha="center", va="center", fontsize=8,
                color="black" if light else "white")
    ax.set_xticks(range(ncols), [str(c) for c in mean.columns])
    ax.set_yticks(range(nrows), [str(r) for r in mean.index])
    _finish(ax, title, xlabel or mean.columns.name, ylabel or mean.index.name, legend=False)
    ax.grid(False)
    return fig


def _groups(df: pd.DataFrame, hue: str | None) -> list[tuple[str | None, pd.DataFrame]]:
    """(hue value, rows) in order of first appearance; one group when there is no hue."""
    if hue is None:
        return [(None, df)]
    return [(value, group) for value, group in df.groupby(hue, sort=False)]


def _mean_std(df: pd.DataFrame, x: str, y: str, order: Sequence | None = None) -> pd.DataFrame:
    """Mean and std of ``y`` per value of ``x`` (std 0 for single rows), in ``order`` if given."""
    stats = df.groupby(x, sort=order is None)[y].agg(["mean", "std"]).fillna({"std": 0.0})
    return stats.reindex(order) if order is not None else stats


def _check_columns(df: pd.DataFrame, *columns: str | None) -> None:
    missing = [c for c in columns if c is not None and c not in df]
    if missing:
        raise ValueError(f"Columns {missing} are not in the DataFrame; columns: {', '.join(map(str, df.columns))}.")


def plot_bars(df: pd.DataFrame, x: str, y: str, hue: str | None = None, title: str | None = None,
              ylabel: str | None = None) -> Figure:
    """Grouped bar chart of a table (mean with std error bars where rows repeat)."""
    _check_columns(df, x, y, hue)
    categories = list(dict.fromkeys(df[x]))
    groups = _groups(df, hue)
    width = 0.8 / len(groups)
    fig, axes = _figure(panel=(max(5.0, 0.6 * len(categories) * len(groups) + 2), PANEL[1]))
    ax = axes[0, 0]
    for k, ((value, rows), color) in enumerate(zip(groups, _colors(len(groups)))):
        stats = _mean_std(rows, x, y, categories)
        positions = np.arange(len(categories)) + (k - (len(groups) - 1) / 2) * width
        bars = ax.bar(positions, stats["mean"], width, yerr=stats["std"] if (stats["std"] > 0).any() else None,
                      color=color, label=None if hue is None else str(value), capsize=3)
        ax.bar_label(bars, fmt="%.3g", fontsize=8)
    ax.set_xticks(range(len(categories)), [str(c) for c in categories])
    _finish(ax, title or f"{y} per {x}", x, ylabel or y, legend_title=hue)
    return fig


def plot_lines(df: pd.DataFrame, x: str, y: str, hue: str | None = None, title: str | None = None,
               xlabel: str | None = None, ylabel: str | None = None, logx: bool = False,
               logy: bool = False) -> Figure:
    """One line per ``hue`` value of ``y`` against ``x`` (mean ± std band where rows repeat)."""
    _check_columns(df, x, y, hue)
    groups = _groups(df, hue)
    fig, axes = _figure()
    ax = axes[0, 0]
    for (value, rows), color in zip(groups, _colors(len(groups))):
        stats = _mean_std(rows, x, y)
        ax.plot(stats.index, stats["mean"], marker="o", ms=4, color=color,
                label=None if hue is None else str(value))
        if (stats["std"] > 0).any():
            ax.fill_between(stats.index, stats["mean"] - stats["std"], stats["mean"] + stats["std"],
                            color=color, alpha=0.2, lw=0)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ticks = sorted(df[x].dropna().unique())
    if len(ticks) <= 12 and pd.api.types.is_numeric_dtype(df[x]):
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])  # the measured values, e.g. batch sizes 32..512
        ax.minorticks_off()
    _finish(ax, title or f"{y} versus {x}", xlabel or x, ylabel or y, legend_title=hue)
    return fig


# --- Sweeps (optuna studies) -------------------------------------------------------------------
def _trial_scores(study, metric: str) -> list[tuple[Any, float]]:
    """(trial, score) of completed trials: the trial's value if ``metric`` is what the sweep optimised,
    else that metric's final value (inf for diverged runs)."""
    import optuna

    scored = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if metric == study.user_attrs.get("metric", metric):
            score = trial.value
        else:
            history = trial_history(trial)
            score = math.inf if history is None or history.diverged else history.final(metric)
        scored.append((trial, score))
    if not scored:
        raise ValueError("The study has no completed trials yet; run run_sweep first.")
    return scored


def _score_colors(fig, ax, scores: list[float], label: str):
    """Map finite scores to viridis (with a colorbar); non-finite ones get grey."""
    finite = [s for s in scores if s is not None and np.isfinite(s)]
    norm = Normalize(min(finite), max(finite)) if finite else Normalize(0, 1)
    mappable = mpl.cm.ScalarMappable(norm=norm, cmap="viridis")
    fig.colorbar(mappable, ax=ax, label=label)
    return lambda s: mappable.to_rgba(s) if s is not None and np.isfinite(s) else (0.6, 0.6, 0.6, 1.0)


def _direction(metric: str) -> str:
    """Which way is better for a per-epoch metric: up for accuracies, down for losses."""
    return "maximize" if higher_is_better(metric) else "minimize"


def plot_trial_curves(study: "optuna.Study", metric: str | Sequence[str] = "val_loss", logy: bool = False,
                      width: float = style.MAX_WIDTH_IN) -> Figure:
    """Every trial's per-epoch curve, one panel per metric, coloured by its final value; the best drawn thick.

    "Best" follows each metric's own direction (highest accuracy, lowest loss), not the study's.
    """
    metrics = [metric] if isinstance(metric, str) else list(metric)
    fig, axes = _figure(len(metrics), 1, panel=(width, 2.6 if len(metrics) > 1 else 4.0))
    for ax, name in zip(axes[:, 0], metrics):
        scored = [(t, s) for t, s in _trial_scores(study, name) if "history" in t.user_attrs]
        color_of = _score_colors(fig, ax, [s for _, s in scored], _metric_name(name))
        finite = [(t, s) for t, s in scored if np.isfinite(s)]
        pick = max if _direction(name) == "maximize" else min
        best = pick(finite, key=lambda ts: ts[1])[0] if finite else None
        for trial, score in scored:
            history = trial_history(trial)
            ax.plot(history.epoch_numbers(), _finite(history.series(name)), color=color_of(score), alpha=0.8,
                    lw=2.5 if trial is best else 1.0, ls="-" if np.isfinite(score) else "--",
                    label=f"best (trial {trial.number})" if trial is best else None,
                    zorder=3 if trial is best else 2)
        if logy and not name.endswith("acc"):
            ax.set_yscale("log")
        _finish(ax, f"All {len(scored)} trials: {_metric_name(name)}", "epoch", _metric_name(name))
    return fig


def _axis_positions(values: list, distribution) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """Positions in [0, 1] of one hyperparameter's values, and (position, label) ticks for its axis."""
    from optuna.distributions import CategoricalDistribution

    if isinstance(distribution, CategoricalDistribution):
        choices = list(distribution.choices)
        scale = max(len(choices) - 1, 1)
        ticks = [(i / scale if len(choices) > 1 else 0.5, str(c)) for i, c in enumerate(choices)]
        return np.array([dict(zip(map(str, choices), (p for p, _ in ticks)))[str(v)] for v in values]), ticks
    log = getattr(distribution, "log", False)
    raw = np.log10(np.asarray(values, dtype=float)) if log else np.asarray(values, dtype=float)
    low, high = raw.min(), raw.max()
    span = high - low if high > low else 1.0
    positions = (raw - low) / span if high > low else np.full(len(raw), 0.5)
    tick_raw = np.linspace(low, high, 3) if high > low else np.array([low])
    ticks = [((r - low) / span if high > low else 0.5, f"{10 ** r if log else r:.3g}") for r in tick_raw]
    return positions, ticks


def plot_parallel_coordinates(study: "optuna.Study", metric: str = "val_loss") -> Figure:
    """Parallel coordinates: one vertical axis per hyperparameter plus the score, each trial a coloured line."""
    scored = _trial_scores(study, metric)
    names = sorted({name for trial, _ in scored for name in trial.params})
    scored = [(t, s) for t, s in scored if all(n in t.params for n in names)]
    scores = np.array([s for _, s in scored], dtype=float)
    columns, axis_ticks = [], []
    for name in names:
        positions, ticks = _axis_positions([t.params[name] for t, _ in scored], scored[0][0].distributions[name])
        columns.append(positions)
        axis_ticks.append(ticks)
    finite = np.isfinite(scores)
    # Diverged trials (inf) sit just above the score axis instead of squashing the finite ones.
    score_pos, score_ticks = _axis_positions(scores[finite].tolist() or [0.0], None)
    full = np.full(len(scores), 1.1)
    full[finite] = score_pos[:finite.sum()]
    score_ticks = score_ticks if finite.any() else []
    columns.append(full)
    axis_ticks.append(score_ticks + ([(1.1, "diverged")] if not finite.all() else []))
    fig, axes = _figure(panel=(style.MAX_WIDTH_IN, 4.2))  # the text width
    ax = axes[0, 0]
    color_of = _score_colors(fig, ax, scores.tolist(), _metric_name(metric))
    data = np.column_stack(columns)
    order = np.argsort(-scores if _direction(metric) == "minimize" else scores)
    for i in order:  # best drawn last, on top
        ax.plot(range(len(columns)), data[i], color=color_of(scores[i]), alpha=0.8, lw=1.2,
                ls="-" if finite[i] else "--")
    for k, ticks in enumerate(axis_ticks):
        ax.axvline(k, color="black", lw=0.8)
        for position, text in ticks:
            ax.text(k + 0.03, position, text, fontsize=7, va="center",
                    bbox={"fc": "white", "alpha": 0.6, "lw": 0, "pad": 0.5})
    ax.set_xticks(range(len(columns)), names + [_metric_name(metric)])
    ax.set_yticks([])
    ax.set_xlim(-0.1, len(columns) - 0.6)
    ax.set_ylim(-0.05, 1.15)
    _finish(ax, f"Parallel coordinates of {len(scored)} trials", legend=False)
    ax.grid(False)
    return fig


def _spearman(x: pd.Series, y: pd.Series) -> float:
    """Spearman rank correlation (Pearson correlation of the ranks); NaN when either side is constant."""
    rx, ry = x.rank(), y.rank()
    if rx.nunique() < 2 or ry.nunique() < 2:
        return math.nan
    return float(rx.corr(ry))


def param_effects(study: "optuna.Study", metric: str = "val_loss") -> pd.DataFrame:
    """Per hyperparameter: fANOVA importance for the study's objective, and the Spearman correlation
    of its value with ``metric`` (its direction: > 0 means larger values go with a larger metric)."""
    import optuna

    finite = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
              if t.value is not None and np.isfinite(t.value)]
    if len(finite) < 2:
        raise ValueError("Importances need at least 2 completed trials with finite values; "
                         f"the study has {len(finite)}.")
    # Diverged trials (value inf) would break the regression behind fANOVA: rate the finite ones only.
    clean = optuna.create_study(direction=study.direction)
    clean.add_trials(finite)
    importances = optuna.importance.get_param_importances(
        clean, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    score_of = {t.number: s for t, s in _trial_scores(study, metric)}
    scores = pd.Series([score_of[t.number] for t in finite], dtype=float)
    scores = scores.where(np.isfinite(scores))  # a diverged run has no rank
    rows = []
    for name, importance in importances.items():
        values = pd.Series([t.params[name] for t in finite])
        if not pd.api.types.is_numeric_dtype(values):  # strings: no order, so no direction
            values = pd.Series(np.nan, index=values.index)
        rows.append({"hyperparameter": name, "importance": importance,
                     f"spearman with {metric}": _spearman(values, scores)})
    return pd.DataFrame(rows).set_index("hyperparameter")


def plot_param_importances(study: "optuna.Study", metric: str = "val_loss", width: float = style.MAX_WIDTH_IN) -> Figure:
    """Two panels: fANOVA importance of each hyperparameter, and the direction of its effect on ``metric``
    (Spearman correlation; blue bars: larger values lower the metric, red: they raise it)."""
    effects = param_effects(study, metric).iloc[::-1]
    names, values = list(effects.index), effects["importance"].to_numpy()
    rho = effects[f"spearman with {metric}"].to_numpy()
    fig, axes = _figure(1, 2, panel=(width / 2, max(2.4, 0.45 * len(names) + 1.2)), sharey=True)
    ax = axes[0, 0]
    bars = ax.barh(names, values, color=_colors(1)[0])
    ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xlim(0, max(values) * 1.25)  # room for the labels
    _finish(ax, "Importance", "importance (fANOVA)", "hyperparameter", legend=False)
    ax = axes[0, 1]
    bars = ax.barh(names, np.nan_to_num(rho), color=["tab:blue" if r < 0 else "tab:red" for r in np.nan_to_num(rho)])
    ax.bar_label(bars, labels=["n/a" if not np.isfinite(r) else f"{r:+.2f}" for r in rho], fontsize=8)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlim(-1.3, 1.3)
    _finish(ax, "Direction", f"Spearman ρ with {_metric_name(metric)}", legend=False)
    fig.suptitle(f"Hyperparameters of {len(study.trials)} trials: how much, and which way")
    return fig

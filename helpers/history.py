"""A run's History: per-epoch metrics plus per-run extras, its summary, its JSON round trip.

The ground floor of the kit: it imports nothing from the kit, so drawing a plot or reading a cache
never loads the training machinery.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["History", "EPOCH_FIELDS", "SPLITS", "higher_is_better", "summarize", "json_safe", "trial_history"]

EPOCH_FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc",
                "lr", "time", "peak_mem")
NAN = float("nan")
SPLITS = ("train", "val", "test")


def higher_is_better(key: str) -> bool:
    """Whether a larger value of a per-epoch metric is better: losses, times and memory go down, the rest
    (accuracy, F1, ...) up."""
    return not key.endswith(("loss", "time", "mem"))


@dataclass
class History:
    """What a fit recorded: per-epoch metrics (NaN where a split is missing), per-step loss, grad norms, extras."""

    epoch: list[int] = field(default_factory=list)          # the epoch each row belongs to, counted from 0
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)          # learning rate at the start of the epoch
    time: list[float] = field(default_factory=list)        # wall seconds for the epoch (training + evaluation)
    peak_mem: list[float] = field(default_factory=list)    # MiB, see peak_mem_kind
    step_loss: list[float] = field(default_factory=list)   # training loss of every optimisation step
    grad_norms: dict[str, list[float]] = field(default_factory=dict)  # layer -> per-epoch mean squared grad norm
    metrics: dict[str, list[float]] = field(default_factory=dict)     # per-epoch metrics beyond the fields above,
    #                                                                  e.g. "val_f1" (see add_metric)
    diverged: bool = False
    peak_mem_kind: str = ""
    config: dict = field(default_factory=dict)             # the settings of the fit (epochs, batch size, ...)
    extras: dict = field(default_factory=dict)             # per-run results beyond the epochs (e.g. test_probs)

    def __len__(self) -> int:
        return len(self.epoch)

    def epoch_numbers(self) -> np.ndarray:
        """The recorded epochs counted from 1, as the sheets' text counts them ("epoch 5 of 5").

        Every figure and table takes its epoch axis from here: from ``epoch``, never from positions, so a
        History that logged every 10th epoch of 1000 reads 1, 11, ..., 991, 1000.
        """
        epochs = np.asarray(self.epoch, dtype=float)
        if not np.isfinite(epochs).all():
            raise ValueError("This History has rows without an epoch number; record them with "
                             "append_epoch(epoch=<index from 0>, ...).")
        return epochs.astype(int) + 1

    def add_metric(self, name: str) -> None:
        """Keep a per-epoch metric beyond the fields (``name`` e.g. "f1"): series train_f1, val_f1 and test_f1."""
        for key in (f"{split}_{name}" for split in SPLITS):
            if key not in EPOCH_FIELDS:
                self.metrics.setdefault(key, [NAN] * len(self.epoch))

    def append_epoch(self, **metrics: float) -> None:
        """Append one epoch's metrics; fields not given get NaN."""
        unknown = set(metrics) - set(EPOCH_FIELDS) - set(self.metrics)
        if unknown:
            raise ValueError(f"Unknown History fields {sorted(unknown)}; allowed: {', '.join(self.series_names())} "
                             "(add_metric(name) keeps another metric).")
        for name in EPOCH_FIELDS:
            getattr(self, name).append(metrics.get(name, NAN))
        for name, values in self.metrics.items():
            values.append(metrics.get(name, NAN))

    def series_names(self) -> list[str]:
        """Names of every per-epoch series: the fields and the added metrics."""
        return [*EPOCH_FIELDS, *self.metrics]

    def series(self, key: str) -> list[float]:
        """One per-epoch series by name ("val_loss", "train_acc", an added "val_f1", ...)."""
        if key in EPOCH_FIELDS:
            return getattr(self, key)
        if key in self.metrics:
            return self.metrics[key]
        raise ValueError(f"Unknown per-epoch metric {key!r}; choose one of {', '.join(self.series_names())}.")

    def final(self, key: str) -> float:
        """Last finite value of a per-epoch metric (NaN if there is none)."""
        return next((v for v in reversed(self.series(key)) if math.isfinite(v)), NAN)

    def best(self, key: str) -> float:
        """Best finite value of a per-epoch metric: the lowest loss, the highest accuracy (``higher_is_better``)."""
        values = [v for v in self.series(key) if math.isfinite(v)]
        if not values:
            return NAN
        return max(values) if higher_is_better(key) else min(values)

    def to_frame(self) -> "pd.DataFrame":
        """Per-epoch metrics (and grad norms as ``grad_norm/<layer>`` columns) as a pandas DataFrame."""
        import pandas as pd

        data = {name: self.series(name) for name in self.series_names()}
        data.update({f"grad_norm/{layer}": values for layer, values in self.grad_norms.items()})
        return pd.DataFrame(data)

    def to_dict(self) -> dict:
        """A JSON-safe dict: NaN and ±inf become None (JSON has no NaN)."""
        return json_safe(asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> History:
        """Rebuild a History from ``to_dict`` output (None in number lists becomes NaN)."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        for name in (*EPOCH_FIELDS, "step_loss"):
            kwargs[name] = [NAN if v is None else v for v in kwargs.get(name, [])]
        for name in ("grad_norms", "metrics"):
            kwargs[name] = {k: [NAN if v is None else v for v in vs] for k, vs in kwargs.get(name, {}).items()}
        return cls(**kwargs)

    def to_json(self, path: str | Path) -> Path:
        """Write the History as JSON (atomically) and return the path."""
        from .store import write_json  # the store is a sibling on the ground floor and imports no kit module

        return write_json(path, self.to_dict())

    @classmethod
    def from_json(cls, path: str | Path) -> History:
        """Read a History written by ``to_json``."""
        return cls.from_dict(json.loads(Path(path).read_text()))


def json_safe(value: Any) -> Any:
    """Make a value JSON-safe, recursively: NaN/±inf become None, numpy scalars and arrays become python."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def summarize(history: History) -> dict:
    """Summary numbers of one History: final/best metrics (added metrics too), epochs, diverged, time, peak memory."""
    summary = {f"final_{m}": history.final(m)
               for m in ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", *history.metrics)}
    summary.update(best_val_loss=history.best("val_loss"), best_val_acc=history.best("val_acc"),
                   epochs=len(history.epoch), diverged=bool(history.diverged),
                   train_time_s=float(np.nansum(history.time)) if history.time else math.nan,
                   peak_mem=float(np.nanmax(history.peak_mem)) if np.isfinite(history.peak_mem).any() else math.nan)
    return summary


def trial_history(trial: Any) -> History | None:
    """The History an optuna trial stored in ``trial.user_attrs["history"]`` (None if it has none)."""
    data = trial.user_attrs.get("history")
    return None if data is None else History.from_dict(data)

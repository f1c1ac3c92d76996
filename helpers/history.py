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

__all__ = ["History", "EPOCH_FIELDS", "summarize", "json_safe", "trial_history"]

EPOCH_FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc",
                "lr", "time", "peak_mem")
NAN = float("nan")


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

    def append_epoch(self, **metrics: float) -> None:
        """Append one epoch's metrics; fields not given get NaN."""
        unknown = set(metrics) - set(EPOCH_FIELDS)
        if unknown:
            raise ValueError(f"Unknown History fields {sorted(unknown)}; allowed: {', '.join(EPOCH_FIELDS)}.")
        for name in EPOCH_FIELDS:
            getattr(self, name).append(metrics.get(name, NAN))

    def final(self, key: str) -> float:
        """Last finite value of a per-epoch metric (NaN if there is none)."""
        return next((v for v in reversed(self._series(key)) if math.isfinite(v)), NAN)

    def best(self, key: str) -> float:
        """Best finite value of a per-epoch metric: the maximum for accuracies, else the minimum."""
        values = [v for v in self._series(key) if math.isfinite(v)]
        if not values:
            return NAN
        return max(values) if key.endswith("acc") else min(values)

    def _series(self, key: str) -> list[float]:
        if key not in EPOCH_FIELDS:
            raise ValueError(f"Unknown per-epoch metric {key!r}; choose one of {', '.join(EPOCH_FIELDS)}.")
        return getattr(self, key)

    def to_frame(self) -> "pd.DataFrame":
        """Per-epoch metrics (and grad norms as ``grad_norm/<layer>`` columns) as a pandas DataFrame."""
        import pandas as pd

        data = {name: getattr(self, name) for name in EPOCH_FIELDS}
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
        kwargs["grad_norms"] = {k: [NAN if v is None else v for v in vs] for k, vs in kwargs.get("grad_norms", {}).items()}
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
    """Summary numbers of one History: final/best metrics, epochs, diverged, training time, peak memory."""
    summary = {f"final_{m}": history.final(m)
               for m in ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")}
    summary.update(best_val_loss=history.best("val_loss"), best_val_acc=history.best("val_acc"),
                   epochs=len(history.epoch), diverged=bool(history.diverged),
                   train_time_s=float(np.nansum(history.time)) if history.time else math.nan,
                   peak_mem=float(np.nanmax(history.peak_mem)) if np.isfinite(history.peak_mem).any() else math.nan)
    return summary


def trial_history(trial: Any) -> History | None:
    """The History an optuna trial stored in ``trial.user_attrs["history"]`` (None if it has none)."""
    data = trial.user_attrs.get("history")
    return None if data is None else History.from_dict(data)

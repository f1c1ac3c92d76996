"""Callbacks for the Trainer: small objects told about the fit's events (early stopping, checkpoints)."""
from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from . import store

if TYPE_CHECKING:  # type hints only: the Trainer calls callbacks; neither module imports the other at run time
    from .training import Trainer


class Callback:
    """Base class: override the events you need; set ``trainer.stop = True`` to end the fit."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Called once before the first epoch."""

    def on_epoch_start(self, trainer: Trainer) -> None:
        """Called at the start of each epoch, before its first step."""

    def on_epoch_end(self, trainer: Trainer) -> None:
        """Called after each epoch, once ``trainer.history`` holds that epoch's metrics."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """Called once after the last epoch (also after early stopping or divergence)."""


def _resolve_mode(monitor: str, mode: str) -> str:
    """'min' for losses, 'max' for accuracies when mode is 'auto'."""
    if mode == "auto":
        return "max" if monitor.endswith("acc") else "min"
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max'; got {mode!r}.")
    return mode


class _Monitor(Callback):
    """Shared logic: follow one History metric and notice when it improves."""

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0):
        self.monitor, self.mode, self.min_delta = monitor, _resolve_mode(monitor, mode), min_delta
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = -1

    def on_fit_start(self, trainer: Trainer) -> None:
        if not hasattr(trainer.history, self.monitor):
            raise ValueError(f"Cannot monitor {self.monitor!r}: not a History field (e.g. val_loss, val_acc).")
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = -1

    def improved(self, trainer: Trainer) -> bool:
        """Record and return whether the monitored metric beat the best so far."""
        value = getattr(trainer.history, self.monitor)[-1]
        if not math.isfinite(value):  # a missing split or a diverged epoch never counts as progress
            return False
        better = value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta
        if better:
            self.best, self.best_epoch = value, trainer.epoch
        return better


class EarlyStopping(_Monitor):
    """Stop after ``patience`` epochs without improvement of ``monitor``; optionally restore the best weights."""

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0, mode: str = "auto",
                 restore_best: bool = True):
        super().__init__(monitor, mode, min_delta)
        if patience < 0:
            raise ValueError(f"patience must be >= 0; got {patience}.")
        self.patience, self.restore_best = patience, restore_best
        self.best_state: dict | None = None
        self.stopped_epoch: int | None = None
        self.wait = 0  # epochs since the last improvement

    def on_fit_start(self, trainer: Trainer) -> None:
        super().on_fit_start(trainer)
        self.best_state, self.stopped_epoch, self.wait = None, None, 0

    def on_epoch_end(self, trainer: Trainer) -> None:
        if self.improved(trainer):
            self.wait = 0
            if self.restore_best:  # a copy in memory: cheap next to an epoch, and no files to clean up
                self.best_state = copy.deepcopy(trainer.model.state_dict())
            return
        self.wait += 1
        if self.wait >= self.patience:
            trainer.stop, self.stopped_epoch = True, trainer.epoch

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.restore_best and self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)


class Checkpoint(_Monitor):
    """Save model and optimizer state with torch.save: every epoch, or only when ``monitor`` improves."""

    def __init__(self, path: str | Path, monitor: str = "val_loss", mode: str = "auto", save_best_only: bool = True):
        super().__init__(monitor, mode)
        self.path, self.save_best_only = Path(path), save_best_only

    def on_epoch_end(self, trainer: Trainer) -> None:
        if self.improved(trainer) or not self.save_best_only:
            value = getattr(trainer.history, self.monitor)[-1]
            # Plain tensors, numbers and strings only, so torch.load(weights_only=True) can read it back safely;
            # written atomically, so a kill during the save leaves the last good checkpoint in place.
            store.save_torch(self.path, {"model": trainer.model.state_dict(), "optimizer": trainer.optimizer.state_dict(),
                        "epoch": trainer.epoch, "monitor": self.monitor, "value": float(value)})


class CheckpointError(ValueError):
    """A file given as a checkpoint is not one that Checkpoint wrote."""


def load_checkpoint(model: nn.Module, path: str | Path, optimizer: torch.optim.Optimizer | None = None) -> dict:
    """Load a Checkpoint file into ``model`` (and ``optimizer``); return the whole checkpoint dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}; Checkpoint(path) writes one after an improving epoch.")
    try:
        state = store.load_torch(path)  # weights_only: never unpickles arbitrary objects
    except Exception as err:  # empty, text, truncated, or pickled objects other than tensors and plain data
        raise CheckpointError(f"{path} is not a kit checkpoint: it cannot be read as one ({type(err).__name__}: "
                              f"{str(err).strip().splitlines()[0] if str(err).strip() else 'empty file'}). "
                              "Checkpoint(path) writes them; delete this file or pass the right path.") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path} is not a kit checkpoint: it has no 'model' weights (found "
                              f"{sorted(state) if isinstance(state, dict) else type(state).__name__}). "
                              "Checkpoint(path) writes them; for a bare state dict use model.load_state_dict.")
    model.load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    return state

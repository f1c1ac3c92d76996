"""The Trainer's events and the callbacks told about them.

``Trainer.fit`` is a loop (epochs, batches: forward, loss, backward, step) that calls ``trainer.emit(event)``
at each of ``EVENTS``. Everything else a fit does is a callback: a small object whose methods are named
after the events it needs. The Trainer calls them in list order: its standard callbacks first (memory,
the History's recorder, the learning-rate schedule, mixed precision's loss scaling, the progress bar),
then those passed to it, so a callback of yours sees each epoch already recorded in ``trainer.history``.

What a callback reads and may change on the trainer: ``model``, ``optimizer``, ``loss_fn``, ``metrics``,
``device``, ``history``, ``epoch`` and ``epochs``; within a batch ``xb``, ``yb``, ``pred``, ``loss`` and
``loss_grad`` (the tensor backward() runs on), and ``step`` (the optimizer step the loop takes);
within an epoch ``row`` (what ``history.append_epoch`` will get); ``stop = True`` ends the fit after
this epoch.
"""
from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn
from tqdm.auto import tqdm

from . import store
from .config import number_setting
from .device import MemoryMeter, grad_scaler, run_memory_kind, synchronize
from .history import higher_is_better

if TYPE_CHECKING:  # type hints only: the Trainer calls callbacks; this module never imports it at run time
    from .training import Trainer

__all__ = ["EVENTS", "Callback", "Recorder", "MemoryMonitor", "LRSchedule", "MixedPrecision", "ProgressBar",
           "GradientClipping", "EarlyStopping", "Checkpoint", "CheckpointError", "load_checkpoint"]

# In the order a fit reaches them. Batch events come once per training batch; evaluation has none.
EVENTS = ("before_fit", "before_epoch", "before_batch", "after_loss", "after_backward", "before_step",
          "after_batch", "after_train", "after_epoch", "after_fit")


class Callback:
    """Base class: define the events you need as methods taking the trainer (see ``EVENTS``)."""

    def before_fit(self, trainer: Trainer) -> None:
        """Once, before the first epoch."""

    def before_epoch(self, trainer: Trainer) -> None:
        """At the start of each epoch (``trainer.row`` holds its epoch number and learning rate)."""

    def before_batch(self, trainer: Trainer) -> None:
        """Before each training batch's forward pass (``trainer.xb``, ``trainer.yb`` are on the device)."""

    def after_loss(self, trainer: Trainer) -> None:
        """After the forward pass and the loss (``trainer.pred``, ``trainer.loss``); may replace ``loss_grad``."""

    def after_backward(self, trainer: Trainer) -> None:
        """After backward(): the gradients are there (unscaled under mixed precision): read them."""

    def before_step(self, trainer: Trainer) -> None:
        """Just before the optimizer step: change the gradients (clip them)."""

    def after_batch(self, trainer: Trainer) -> None:
        """After the optimizer step."""

    def after_train(self, trainer: Trainer) -> None:
        """After the epoch's last training batch, before evaluation (``trainer.row`` has the training metrics)."""

    def after_epoch(self, trainer: Trainer) -> None:
        """After evaluation; once the standard callbacks ran, ``trainer.history`` holds the epoch."""

    def after_fit(self, trainer: Trainer) -> None:
        """Once at the end, also after early stopping, divergence or an error (to release what it holds)."""


# --- The standard callbacks: the Trainer adds these itself -------------------------------------------
class Recorder(Callback):
    """Writes the History: every step's loss, each epoch's training loss and metrics, learning rate and time.

    Losses and predictions stay on the device during the epoch and are read back once at its end: turning
    them into Python numbers every step would make the CPU wait for the GPU every step.
    """

    def before_fit(self, trainer: Trainer) -> None:
        for name in trainer.metrics:
            trainer.history.add_metric(name)

    def before_epoch(self, trainer: Trainer) -> None:
        self.start = time.perf_counter()
        self.losses, self.sizes, self.preds, self.targets = [], [], [], []
        trainer.row = {"epoch": trainer.epoch, "lr": trainer.optimizer.param_groups[0]["lr"]}

    def after_batch(self, trainer: Trainer) -> None:
        self.losses.append(trainer.loss.detach())
        self.sizes.append(len(trainer.yb))
        if trainer.metrics:  # the metrics see the whole epoch's predictions at its end
            self.preds.append(trainer.pred.detach())
            self.targets.append(trainer.yb)

    def after_train(self, trainer: Trainer) -> None:
        if not self.losses:
            raise ValueError("The training loader yielded no batches although len() > 0.")
        losses = torch.stack(self.losses).float().reshape(-1)
        scores = epoch_scores(self.preds, self.targets, trainer.metrics) if trainer.metrics else losses[:0]
        values = torch.cat([losses, scores.to(losses.device)]).tolist()  # the epoch's one sync
        steps = values[:len(self.losses)]
        trainer.history.step_loss.extend(steps)
        trainer.row["train_loss"] = sum(loss * size for loss, size in zip(steps, self.sizes)) / sum(self.sizes)
        trainer.row.update({f"train_{name}": v for name, v in zip(trainer.metrics, values[len(self.losses):])})
        trainer.history.diverged = not math.isfinite(trainer.row["train_loss"])

    def after_epoch(self, trainer: Trainer) -> None:
        synchronize(trainer.device)  # so the epoch's time includes its queued GPU work
        trainer.row["time"] = time.perf_counter() - self.start
        trainer.history.append_epoch(**trainer.row)


def epoch_scores(preds: list[torch.Tensor], targets: list[torch.Tensor], metrics: dict) -> torch.Tensor:
    """Each metric on the epoch's predictions, as one float tensor on their device (no sync)."""
    pred, target = torch.cat(preds), torch.cat(targets)
    return torch.stack([torch.as_tensor(fn(pred, target), dtype=torch.float32, device=pred.device).reshape(())
                        for fn in metrics.values()])


class MemoryMonitor(Callback):
    """The run's peak memory (``helpers.device``): each epoch's as ``peak_mem``, the whole run's as ``trainer.memory``."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval  # a sample every 50 ms costs ~0.1 % of a step
        self.meter: MemoryMeter | None = None

    def before_fit(self, trainer: Trainer) -> None:
        trainer.history.peak_mem_kind = run_memory_kind(trainer.device)
        self.meter = MemoryMeter(trainer.device, self.interval).start()

    def after_epoch(self, trainer: Trainer) -> None:
        trainer.row["peak_mem"] = self.meter.read().run_mb  # the peak since the run began (never falls)

    def after_fit(self, trainer: Trainer) -> None:
        if self.meter is not None:
            trainer.memory, self.meter = self.meter.stop(), None  # the whole run's PeakMemory, callbacks included


class LRSchedule(Callback):
    """Steps the trainer's learning-rate scheduler: after every batch (one-cycle) or after every epoch."""

    def after_batch(self, trainer: Trainer) -> None:
        if trainer.scheduler_per_step:
            trainer.scheduler.step()

    def after_epoch(self, trainer: Trainer) -> None:
        if not trainer.scheduler_per_step:
            trainer.scheduler.step()


class MixedPrecision(Callback):
    """float16 mixed precision's loss scaling (``helpers.device.grad_scaler``): the loss is scaled before
    backward() so small gradients do not underflow, the gradients unscaled before anyone reads them, and the
    optimizer stepped through the scaler, which skips a step whose gradients overflowed.

    The Trainer adds it where ``amp=True`` computes in float16 (CUDA, MPS); bfloat16 needs no scaling.
    """

    def before_fit(self, trainer: Trainer) -> None:
        self.scaler = grad_scaler(trainer.device, True)
        trainer.step = self.step(trainer.optimizer)

    def step(self, optimizer: torch.optim.Optimizer):
        """The optimizer step through the scaler."""
        def scaled_step() -> None:
            self.scaler.step(optimizer)
            self.scaler.update()
        return scaled_step

    def after_loss(self, trainer: Trainer) -> None:
        trainer.loss_grad = self.scaler.scale(trainer.loss)

    def after_backward(self, trainer: Trainer) -> None:
        self.scaler.unscale_(trainer.optimizer)  # clipping and gradient norms see the true gradients

    def after_fit(self, trainer: Trainer) -> None:
        trainer.step = trainer.optimizer.step


class ProgressBar(Callback):
    """A tqdm bar over the epochs, with the last epoch's loss and validation scores beside it."""

    def __init__(self, desc: str | None = None):
        self.desc, self.bar = desc, None

    def before_fit(self, trainer: Trainer) -> None:
        self.bar = tqdm(total=trainer.epochs, desc=self.desc, unit="epoch", leave=True)

    def after_epoch(self, trainer: Trainer) -> None:
        h = trainer.history
        shown = {"loss": h.train_loss[-1], "val_loss": h.val_loss[-1], "val_acc": h.val_acc[-1]}
        self.bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items() if not math.isnan(v)}, refresh=False)
        self.bar.update()

    def after_fit(self, trainer: Trainer) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# --- Callbacks to pass: fit(..., callbacks=[...]) -----------------------------------------------------
class GradientClipping(Callback):
    """Clip the gradients' total L2 norm to ``max_norm`` before every optimizer step."""

    def __init__(self, max_norm: float):
        self.max_norm = number_setting("GradientClipping max_norm (a max gradient norm)", max_norm, above=0)

    def before_step(self, trainer: Trainer) -> None:
        nn.utils.clip_grad_norm_(trainer.model.parameters(), self.max_norm)


def _resolve_mode(monitor: str, mode: str) -> str:
    """'min' for losses, 'max' for accuracies (``higher_is_better``) when mode is 'auto'."""
    if mode == "auto":
        return "max" if higher_is_better(monitor) else "min"
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max'; got {mode!r}.")
    return mode


class _Monitor(Callback):
    """Shared logic: follow one History metric and notice when it improves."""

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0):
        self.monitor, self.mode, self.min_delta = monitor, _resolve_mode(monitor, mode), min_delta
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = -1

    def before_fit(self, trainer: Trainer) -> None:
        if self.monitor not in trainer.history.series_names():
            raise ValueError(f"Cannot monitor {self.monitor!r}: not a History series (e.g. val_loss, val_acc, or "
                             f"val_<name> of a metric passed as metrics={{name: fn}}).")
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = -1

    def improved(self, trainer: Trainer) -> bool:
        """Record and return whether the monitored metric beat the best so far."""
        value = trainer.history.series(self.monitor)[-1]
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

    def before_fit(self, trainer: Trainer) -> None:
        super().before_fit(trainer)
        self.best_state, self.stopped_epoch, self.wait = None, None, 0

    def after_epoch(self, trainer: Trainer) -> None:
        if self.improved(trainer):
            self.wait = 0
            if self.restore_best:  # a copy in memory: cheap next to an epoch, and no files to clean up
                self.best_state = copy.deepcopy(trainer.model.state_dict())
            return
        self.wait += 1
        if self.wait >= self.patience:
            trainer.stop, self.stopped_epoch = True, trainer.epoch

    def after_fit(self, trainer: Trainer) -> None:
        if self.restore_best and self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)


class Checkpoint(_Monitor):
    """Save model and optimizer state with torch.save: every epoch, or only when ``monitor`` improves."""

    def __init__(self, path: str | Path, monitor: str = "val_loss", mode: str = "auto", save_best_only: bool = True):
        super().__init__(monitor, mode)
        self.path, self.save_best_only = Path(path), save_best_only

    def after_epoch(self, trainer: Trainer) -> None:
        if self.improved(trainer) or not self.save_best_only:
            value = trainer.history.series(self.monitor)[-1]
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

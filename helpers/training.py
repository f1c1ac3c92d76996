"""Turn batches into a trained model and a History: fit()/Trainer, evaluate(), predict().

The loop itself is ``Trainer.fit`` + ``Trainer.train_epoch`` + ``Trainer.train_step``: read those three
top to bottom. Everything else here builds the pieces they use (optimizer, scheduler, loss) or stores results.
"""
from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from .config import number_setting
from .device import MemoryMeter, autocast, device_of, get_device, grad_scaler, run_memory_kind, synchronize
from .history import NAN, History

if TYPE_CHECKING:  # type hints only: callbacks sit beside the Trainer, they are passed in
    from .callbacks import Callback

__all__ = ["History", "Trainer", "fit", "evaluate", "predict", "make_optimizer", "make_scheduler", "make_loss",
           "OPTIMIZERS", "SCHEDULERS", "LOSSES"]

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULERS = ("step", "exponential", "cosine", "onecycle")
LOSSES = ("cross_entropy", "bce", "mse")
# A BatchLoader or torch DataLoader: anything iterable of (xb, yb) with len().
Loader = Iterable[tuple[torch.Tensor, torch.Tensor]]


# --- Building blocks: optimizer, scheduler, loss ---------------------------------------------
def make_optimizer(name: str | torch.optim.Optimizer, params: Iterable[nn.Parameter], lr: float,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Build an optimizer by name ('sgd', 'momentum', 'adam', 'adamw', 'rmsprop', 'adagrad'); pass instances through."""
    if isinstance(name, torch.optim.Optimizer):
        return name
    lr = number_setting("Learning rate lr", lr, above=0)
    weight_decay = number_setting("weight_decay", weight_decay, minimum=0)
    params = [p for p in params if p.requires_grad]  # frozen layers (a linear probe) are left out
    if not params:
        raise ValueError("The model has no trainable parameters (all requires_grad=False); nothing to optimise.")
    builders = {
        "sgd": lambda: torch.optim.SGD(params, lr=lr, weight_decay=weight_decay),
        "momentum": lambda: torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay),
        "adam": lambda: torch.optim.Adam(params, lr=lr, weight_decay=weight_decay),
        "adamw": lambda: torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay),
        "rmsprop": lambda: torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay),
        "adagrad": lambda: torch.optim.Adagrad(params, lr=lr, weight_decay=weight_decay),
    }
    if name not in builders:
        raise ValueError(f"Unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)} "
                         "or pass a torch.optim.Optimizer instance.")
    return builders[name]()


def make_scheduler(name: str | torch.optim.lr_scheduler.LRScheduler | None, optimizer: torch.optim.Optimizer,
                   epochs: int, steps_per_epoch: int, kwargs: dict | None = None
                   ) -> tuple[torch.optim.lr_scheduler.LRScheduler | None, bool]:
    """Build an LR scheduler by name; return (scheduler or None, True if it steps per batch rather than per epoch)."""
    if name is None or isinstance(name, torch.optim.lr_scheduler.LRScheduler):
        return name, False
    sched = torch.optim.lr_scheduler
    epochs = max(epochs, 1)
    defaults = {  # sensible for a short course run; scheduler_kwargs overrides any of them
        "step": (sched.StepLR, {"step_size": max(1, epochs // 3), "gamma": 0.1}),
        "exponential": (sched.ExponentialLR, {"gamma": 0.9}),
        "cosine": (sched.CosineAnnealingLR, {"T_max": epochs}),
        "onecycle": (sched.OneCycleLR, {"max_lr": optimizer.param_groups[0]["lr"],
                                        "total_steps": epochs * steps_per_epoch}),
    }
    if name not in defaults:
        raise ValueError(f"Unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)} or None.")
    cls, options = defaults[name]
    try:
        return cls(optimizer, **{**options, **(kwargs or {})}), name == "onecycle"
    except (TypeError, ValueError) as err:  # a misspelled key or a string where a number belongs
        raise ValueError(f"scheduler_kwargs={kwargs!r} do not fit scheduler {name!r} ({cls.__name__}: {err}); "
                         f"its settings are {sorted(options)} and those of torch.optim.lr_scheduler."
                         f"{cls.__name__}.") from err


def make_loss(loss: str | nn.Module) -> tuple[nn.Module, str]:
    """Build the loss by name; return (loss module, task) with task 'multiclass', 'binary' or 'regression'."""
    if isinstance(loss, nn.Module):
        if isinstance(loss, (nn.CrossEntropyLoss, nn.NLLLoss)):
            return loss, "multiclass"
        return loss, "binary" if isinstance(loss, nn.BCEWithLogitsLoss) else "regression"
    losses = {"cross_entropy": (nn.CrossEntropyLoss, "multiclass"), "bce": (nn.BCEWithLogitsLoss, "binary"),
              "mse": (nn.MSELoss, "regression")}
    if loss not in losses:
        raise ValueError(f"Unknown loss {loss!r}; choose one of {', '.join(LOSSES)} or pass an nn.Module.")
    cls, task = losses[loss]
    return cls(), task


def _targets_for(task: str, logits: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """Targets shaped for the loss: BCE and regression take one target per output ((N,) or (N,1) both work)."""
    if task == "binary":
        return yb.to(logits.dtype).view_as(logits)
    if task == "regression" and yb.shape != logits.shape:
        # MSE between (N, 1) outputs and (N,) targets would broadcast to an N×N loss and quietly learn the mean.
        if yb.numel() != logits.numel():
            raise ValueError(f"Regression outputs have shape {tuple(logits.shape)} but the targets "
                             f"{tuple(yb.shape)}: give one target per output (e.g. y of shape (N,) or (N, 1) "
                             "for a model with one output).")
        return yb.view_as(logits)
    return yb


def _predicted_labels(task: str, logits: torch.Tensor) -> torch.Tensor:
    """Class predicted for each sample: argmax of the logits, or logit > 0 for a binary (BCE) model."""
    return logits.argmax(1) if task == "multiclass" else logits.reshape(-1) > 0


def _true_labels(task: str, targets: torch.Tensor) -> torch.Tensor:
    """Class of each sample: the targets themselves, argmax of soft targets, or target > 0.5 for binary."""
    if task == "binary":
        return targets.reshape(-1) > 0.5
    return targets.argmax(1) if targets.ndim == 2 else targets


def _tracked_layers(model: nn.Module) -> dict[str, nn.Parameter]:
    """Weights whose gradient norms we follow: model.linears as layer0, layer1, … else every Linear/Conv."""
    if hasattr(model, "linears"):
        return {f"layer{i}": layer.weight for i, layer in enumerate(model.linears)}
    kinds = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    return {name: m.weight for name, m in model.named_modules() if isinstance(m, kinds)}


def _name(setting: Any) -> Any:
    """A JSON-friendly label for a setting: strings and None as they are, objects by class name."""
    return setting if setting is None or isinstance(setting, str) else type(setting).__name__


def _check_loader(loader: Any, name: str) -> None:
    """A loader must have batches (len > 0) and, if it says so, a batch size >= 1."""
    if not hasattr(loader, "__len__") or not hasattr(loader, "__iter__"):
        raise ValueError(f"{name} must be an iterable of (xb, yb) with len() (a BatchLoader or DataLoader); "
                         f"got {type(loader).__name__}.")
    batch_size = getattr(loader, "batch_size", None)
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"{name} has batch_size={batch_size}; it must be >= 1.")
    if len(loader) == 0:
        raise ValueError(f"{name} yields no batches (len 0): is the data set empty, or drop_last=True with "
                         "fewer samples than one batch?")


# --- The trainer ---------------------------------------------------------------------------
class Trainer:
    """Trains one model; holds the optimizer, loss, callbacks and the History being written."""

    def __init__(self, model: nn.Module, *, optimizer: str | torch.optim.Optimizer = "adam", lr: float = 1e-3,
                 loss: str | nn.Module = "cross_entropy", scheduler: str | None = None,
                 scheduler_kwargs: dict | None = None, weight_decay: float = 0.0,
                 device: str | torch.device | None = None, amp: bool = False, clip_grad: float | None = None,
                 callbacks: Sequence[Callback] = (), track_grad_norms: bool = False, quiet: bool = False,
                 desc: str | None = None):
        if clip_grad is not None:
            clip_grad = number_setting("clip_grad (a max gradient norm)", clip_grad, above=0)
        if scheduler is not None and not isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler) \
                and scheduler not in SCHEDULERS:
            raise ValueError(f"Unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)} or None.")
        self.device = get_device(device)
        self.model = model.to(self.device)
        self.optimizer = make_optimizer(optimizer, model.parameters(), lr, weight_decay)
        self.loss_fn, self.task = make_loss(loss)
        self.scheduler_name, self.scheduler_kwargs = scheduler, scheduler_kwargs
        self.scheduler, self.per_step = None, False
        self.amp, self.clip_grad, self.quiet, self.desc = amp, clip_grad, quiet, desc
        self.scaler = grad_scaler(self.device, amp)  # loss scaling where the AMP dtype needs it (float16)
        self.callbacks = list(callbacks)
        self.layers = _tracked_layers(model) if track_grad_norms else {}
        self.meter = MemoryMeter(self.device, interval=0.05)  # a sample every 50 ms costs ~0.1% of a step
        self.history = History(peak_mem_kind=run_memory_kind(self.device))
        self.history.config = {"optimizer": _name(optimizer), "lr": self.optimizer.param_groups[0]["lr"],
                               "loss": _name(loss), "scheduler": _name(scheduler), "weight_decay": weight_decay,
                               "amp": amp, "clip_grad": clip_grad, "device": str(self.device),
                               "model": type(model).__name__}
        self.epoch, self.stop = -1, False

    def fit(self, train_loader: Loader, epochs: int, val_loader: Loader | None = None,
            test_loader: Loader | None = None) -> History:
        """Train for ``epochs`` epochs (fewer if a callback stops or the loss diverges); return the History."""
        epochs = self._check_fit(train_loader, epochs, val_loader, test_loader)
        self.scheduler, self.per_step = make_scheduler(self.scheduler_name, self.optimizer, epochs,
                                                       len(train_loader), self.scheduler_kwargs)
        self.stop = False
        self.meter.start()  # the run's peak memory, measured from here (see helpers.device)
        self._emit("on_fit_start")
        bar = tqdm(range(epochs), desc=self.desc, unit="epoch", disable=self.quiet, leave=True)
        try:
            for epoch in bar:
                self.epoch = epoch  # callbacks read it
                self._emit("on_epoch_start")
                start, lr = time.perf_counter(), self.optimizer.param_groups[0]["lr"]
                train_loss, train_acc = self.train_epoch(train_loader)
                self.history.diverged = not math.isfinite(train_loss)
                val_loss, val_acc = self._evaluate(val_loader)
                test_loss, test_acc = self._evaluate(test_loader)
                if self.scheduler is not None and not self.per_step:
                    self.scheduler.step()
                synchronize(self.device)  # so the epoch's time includes its queued GPU work
                self.history.append_epoch(epoch=epoch, train_loss=train_loss, train_acc=train_acc,
                                          val_loss=val_loss, val_acc=val_acc, test_loss=test_loss,
                                          test_acc=test_acc, lr=lr, time=time.perf_counter() - start,
                                          peak_mem=self.meter.read().run_mb)
                bar.set_postfix(self._postfix(), refresh=False)
                self._emit("on_epoch_end")
                if self.stop or self.history.diverged:
                    break
        finally:
            bar.close()
            self.memory = self.meter.stop()  # the whole run's peak (a PeakMemory), callbacks included
        self._emit("on_fit_end")
        return self.history

    def train_epoch(self, loader: Loader) -> tuple[float, float]:
        """One pass over ``loader``; return the epoch's mean loss and accuracy (weighted by batch size)."""
        self.model.train()
        losses, sizes, predicted, targets = [], [], [], []
        norms = torch.zeros(len(self.layers), device=self.device)
        for xb, yb in loader:
            xb, yb = xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)
            loss, logits = self.train_step(xb, yb, norms)
            # Keep results on the device: converting to Python numbers here would wait for the GPU every step.
            losses.append(loss.detach())
            sizes.append(len(yb))
            if self.task != "regression":  # one small op per step; compared with the targets once per epoch
                predicted.append(_predicted_labels(self.task, logits.detach()))
                targets.append(yb)
        if not losses:
            raise ValueError("The training loader yielded no batches although len() > 0.")
        step_losses = torch.stack(losses).float().tolist()  # the epoch's one sync
        self.history.step_loss.extend(step_losses)
        for name, value in zip(self.layers, (norms / len(losses)).tolist()):
            self.history.grad_norms.setdefault(name, []).append(value)
        n = self.epoch_samples = sum(sizes)  # callbacks read it (the GPU lab's images per epoch)
        if self.task == "regression":
            accuracy = NAN
        else:
            accuracy = (torch.cat(predicted) == _true_labels(self.task, torch.cat(targets))).sum().item() / n
        return sum(l * s for l, s in zip(step_losses, sizes)) / n, accuracy

    def train_step(self, xb: torch.Tensor, yb: torch.Tensor, norms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward, backward, update on one batch; return (loss, logits)."""
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.amp):
            logits = self.model(xb)
            loss = self.loss_fn(logits, _targets_for(self.task, logits, yb))
        self.scaler.scale(loss).backward()
        if self.clip_grad is not None or self.layers:
            self.scaler.unscale_(self.optimizer)  # clip and measure the true gradients, not the scaled ones
        if self.clip_grad is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad)
        if self.layers:
            norms += torch.stack([_squared_norm(w) for w in self.layers.values()])
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.per_step:
            self.scheduler.step()
        return loss, logits

    def _evaluate(self, loader) -> tuple[float, float]:
        if loader is None or self.history.diverged:  # a diverged model's scores are meaningless
            return NAN, NAN
        return evaluate(self.model, loader, self.loss_fn, self.device, amp=self.amp)

    def _emit(self, event: str) -> None:
        for callback in self.callbacks:
            getattr(callback, event)(self)

    def _postfix(self) -> dict[str, str]:
        h = self.history
        shown = {"loss": h.train_loss[-1], "val_loss": h.val_loss[-1], "val_acc": h.val_acc[-1]}
        return {k: f"{v:.4g}" for k, v in shown.items() if not math.isnan(v)}

    def _check_fit(self, train_loader, epochs: int, val_loader, test_loader) -> int:
        epochs = number_setting("epochs", epochs, integer=True, minimum=0)
        _check_loader(train_loader, "train_loader")
        for loader, name in ((val_loader, "val_loader"), (test_loader, "test_loader")):
            if loader is not None:
                _check_loader(loader, name)
        self.history.config.update(epochs=epochs, batch_size=getattr(train_loader, "batch_size", None))
        return epochs


def _squared_norm(weight: nn.Parameter) -> torch.Tensor:
    """Squared L2 norm of a weight's gradient (0 when it got none this step)."""
    if weight.grad is None:
        return torch.zeros((), device=weight.device)
    return weight.grad.detach().float().pow(2).sum()


def fit(model: nn.Module, train_loader: Loader, epochs: int, *, optimizer: str | torch.optim.Optimizer = "adam",
        lr: float = 1e-3, loss: str | nn.Module = "cross_entropy", val_loader: Loader | None = None,
        test_loader: Loader | None = None,
        scheduler: str | None = None, scheduler_kwargs: dict | None = None, weight_decay: float = 0.0,
        device: str | torch.device | None = None, amp: bool = False, clip_grad: float | None = None,
        callbacks: Sequence[Callback] = (), track_grad_norms: bool = False, quiet: bool = False,
        desc: str | None = None) -> History:
    """Train ``model`` on ``train_loader`` for ``epochs`` epochs and return its History."""
    trainer = Trainer(model, optimizer=optimizer, lr=lr, loss=loss, scheduler=scheduler,
                      scheduler_kwargs=scheduler_kwargs, weight_decay=weight_decay, device=device, amp=amp,
                      clip_grad=clip_grad, callbacks=callbacks, track_grad_norms=track_grad_norms, quiet=quiet,
                      desc=desc)
    return trainer.fit(train_loader, epochs, val_loader=val_loader, test_loader=test_loader)


# --- Evaluation and prediction ----------------------------------------------------------------
@torch.no_grad()
def evaluate(model: nn.Module, loader: Loader, loss: str | nn.Module = "cross_entropy",
             device: str | torch.device | None = None, amp: bool = False) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` over ``loader`` (eval mode, no gradients); accuracy NaN for regression."""
    _check_loader(loader, "loader")
    device = device_of(model, device)
    loss_fn, task = make_loss(loss)
    was_training = model.training
    model.eval()  # dropout off, BatchNorm uses its running statistics
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    n = 0
    for xb, yb in loader:
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        with autocast(device, amp):
            logits = model(xb)
            total_loss += loss_fn(logits, _targets_for(task, logits, yb)).float() * len(yb)
        if task != "regression":
            correct += (_predicted_labels(task, logits) == _true_labels(task, yb)).sum()
        n += len(yb)
    model.train(was_training)
    if n == 0:
        raise ValueError("The evaluation loader yielded no batches.")
    return total_loss.item() / n, (correct.item() / n if task != "regression" else NAN)


@torch.no_grad()
def predict(model: nn.Module, loader: Loader, device: str | torch.device | None = None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(preds, probs, targets) on the CPU; one logit means binary (sigmoid, logit > 0), else softmax/argmax."""
    _check_loader(loader, "loader")
    device = device_of(model, device)
    was_training = model.training
    model.eval()
    logits, targets = [], []
    for xb, yb in loader:
        logits.append(model(xb.to(device, non_blocking=True)).float())
        targets.append(yb)
    model.train(was_training)
    logits, targets = torch.cat(logits).cpu(), torch.cat(targets).cpu()
    if logits.ndim == 1 or logits.shape[1] == 1:  # binary: one logit per sample, targets (N,) or (N,1) → (N,)
        logits = logits.view(-1)
        return (logits > 0).long(), torch.sigmoid(logits), targets.view(-1)
    probs = torch.softmax(logits, dim=1)
    return probs.argmax(1), probs, targets

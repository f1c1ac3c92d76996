"""Turn batches into a trained model and a History: the Trainer and fit(), evaluate(), predict().

``Trainer.fit`` is the training loop, to read top to bottom: epochs, then batches (forward, loss, backward,
step), then evaluation. At each step of it the Trainer emits an event (``helpers.callbacks.EVENTS``), and
everything beyond the loop is a callback told about those events: recording the History, measuring memory,
the learning-rate schedule, mixed precision's loss scaling, the progress bar; gradient clipping, early
stopping, checkpoints and the GPU lab's timer when asked for (sheet 3's exercise 6.2.4 writes one that records
gradient norms). Metrics are functions passed in (``metrics={"acc": accuracy}``, ``helpers.metrics``). The rest
of this module builds the pieces the loop uses (optimizer, scheduler, loss) and scores a model (``evaluate``,
``predict``).
"""
from __future__ import annotations

import inspect
from typing import Any, Iterable, Sequence

import torch
from torch import nn

from .callbacks import EVENTS, Callback, LRSchedule, MemoryMonitor, MixedPrecision, ProgressBar, Recorder, epoch_scores
from .config import number_setting
from .device import autocast, device_of, get_device, uses_grad_scaler
from .history import NAN, History
from .metrics import Metric, accuracy

__all__ = ["History", "Trainer", "fit", "evaluate", "score", "predict", "make_optimizer", "make_scheduler",
           "loss_and_task", "TaskLoss", "OPTIMIZERS", "SCHEDULERS", "LOSSES"]

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
    # On the CPU torch updates one parameter tensor at a time in Python unless told to batch them ("foreach"):
    # the same arithmetic, bit for bit, and about a quarter less time in step() for a network of 20+ small
    # tensors (sheet 3's MLPs, sheet 1's deep grid). CUDA batches by default; MPS keeps torch's choice.
    batched = {"foreach": True} if all(p.device.type == "cpu" for p in params) else {}
    builders = {
        "sgd": lambda: torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, **batched),
        "momentum": lambda: torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay, **batched),
        "adam": lambda: torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, **batched),
        "adamw": lambda: torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, **batched),
        "rmsprop": lambda: torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay, **batched),
        "adagrad": lambda: torch.optim.Adagrad(params, lr=lr, weight_decay=weight_decay, **batched),
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


def loss_and_task(loss: str | nn.Module) -> tuple[nn.Module, str]:
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


class TaskLoss:
    """A loss that shapes its targets for its task first (``loss_and_task``'s module and task).

    A plain callable, not an nn.Module: it holds no weights, and a second Module call every step costs time.
    """

    def __init__(self, criterion: nn.Module, task: str):
        self.criterion, self.task = criterion, task

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The criterion on ``pred`` and ``target`` shaped to match (float (N, 1) targets for BCE, say)."""
        return self.criterion(pred, _targets_for(self.task, pred, target))


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
    """Trains one model: the loop in ``fit``, plus callbacks told about its events (``helpers.callbacks``).

    ``metrics`` maps names to metric functions (``helpers.metrics``); by default accuracy for a classification
    loss and none for regression. ``amp=True`` runs the forward pass in mixed precision (``helpers.device``).
    ``callbacks`` run after the Trainer's own, in the order given. After ``fit``: ``history`` (the History)
    and ``memory`` (the run's PeakMemory).
    """

    def __init__(self, model: nn.Module, *, optimizer: str | torch.optim.Optimizer = "adam", lr: float = 1e-3,
                 loss: str | nn.Module = "cross_entropy", metrics: dict[str, Metric] | None = None,
                 scheduler: str | torch.optim.lr_scheduler.LRScheduler | None = None,
                 scheduler_kwargs: dict | None = None, weight_decay: float = 0.0,
                 device: str | torch.device | None = None, amp: bool = False, callbacks: Sequence[Callback] = (),
                 quiet: bool = False, desc: str | None = None):
        if scheduler is not None and not isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler) \
                and scheduler not in SCHEDULERS:
            raise ValueError(f"Unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)} or None.")
        self.device = get_device(device)
        self.model = model.to(self.device)
        self.optimizer = make_optimizer(optimizer, model.parameters(), lr, weight_decay)
        self.loss_fn = TaskLoss(*loss_and_task(loss))
        self.metrics = dict(metrics) if metrics is not None else default_metrics(self.loss_fn.task)
        self.amp = amp
        self.scheduler_name, self.scheduler_kwargs = scheduler, scheduler_kwargs
        self.callbacks = [MemoryMonitor(), Recorder(), *([LRSchedule()] if scheduler is not None else []),
                          *([MixedPrecision()] if amp and uses_grad_scaler(self.device) else []),
                          *([] if quiet else [ProgressBar(desc)]), *callbacks]
        self.history = History(config={
            "optimizer": _name(optimizer), "lr": self.optimizer.param_groups[0]["lr"], "loss": _name(loss),
            "metrics": list(self.metrics), "scheduler": _name(scheduler), "weight_decay": weight_decay, "amp": amp,
            "device": str(self.device), "model": type(model).__name__,
            "callbacks": [type(c).__name__ for c in callbacks]})
        self.epoch, self.stop, self.memory = -1, False, None

    def fit(self, train_loader: Loader, epochs: int, val_loader: Loader | None = None,
            test_loader: Loader | None = None) -> History:
        """Train for ``epochs`` epochs (fewer if a callback stops or the loss diverges); return the History."""
        self._begin(train_loader, epochs, val_loader, test_loader)
        precision = autocast(self.device, self.amp)          # mixed precision when amp=True (re-entered every batch)
        try:
            self.emit("before_fit")
            for epoch in range(self.epochs):
                self.epoch = epoch
                self.emit("before_epoch")
                self.model.train()
                for xb, yb in train_loader:
                    self.xb, self.yb = xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)
                    self.emit("before_batch")
                    self.optimizer.zero_grad(set_to_none=True)
                    with precision:
                        self.pred = self.model(self.xb)
                        self.loss = self.loss_grad = self.loss_fn(self.pred, self.yb)
                    self.emit("after_loss")                 # mixed precision scales loss_grad
                    self.loss_grad.backward()
                    self.emit("after_backward")             # the gradients: unscale them, measure them
                    self.emit("before_step")                # change them: clip
                    self.step()
                    self.emit("after_batch")                # record the loss; a one-cycle schedule steps
                self.emit("after_train")                    # the epoch's training loss and metrics
                self.evaluate("val", val_loader)
                self.evaluate("test", test_loader)
                self.emit("after_epoch")                    # record the epoch; then early stopping, checkpoints
                if self.stop or self.history.diverged:
                    break
        finally:
            self.emit("after_fit")
        return self.history

    def evaluate(self, split: str, loader: Loader | None) -> None:
        """The model's loss and metrics on ``loader`` into this epoch's row, as ``<split>_loss``, ``<split>_<metric>``."""
        if loader is not None and not self.history.diverged:  # a diverged model's scores are meaningless
            scores = score(self.model, loader, self.loss_fn, self.metrics, self.device, amp=self.amp)
            self.row.update({f"{split}_{name}": value for name, value in scores.items()})

    def emit(self, event: str) -> None:
        """Call every callback that handles ``event``, in order."""
        for handler in self._handlers[event]:
            handler(self)

    def _begin(self, train_loader: Loader, epochs: int, val_loader: Loader | None,
               test_loader: Loader | None) -> None:
        """Check the fit's arguments; build the scheduler and the event table for this fit."""
        self.epochs = number_setting("epochs", epochs, integer=True, minimum=0)
        _check_loader(train_loader, "train_loader")
        for loader, name in ((val_loader, "val_loader"), (test_loader, "test_loader")):
            if loader is not None:
                _check_loader(loader, name)
        self.history.config.update(epochs=self.epochs, batch_size=getattr(train_loader, "batch_size", None))
        self.scheduler, self.scheduler_per_step = make_scheduler(self.scheduler_name, self.optimizer, self.epochs,
                                                                 len(train_loader), self.scheduler_kwargs)
        # What the loop calls to update the weights, taken after the scheduler wrapped optimizer.step
        # (MixedPrecision replaces it with a step through its GradScaler).
        self.step, self.stop = self.optimizer.step, False
        # Only the callbacks that define an event are called for it: ten events a batch cost nothing otherwise.
        self._handlers = {event: [getattr(cb, event) for cb in self.callbacks
                                  if getattr(type(cb), event) is not getattr(Callback, event)]
                          for event in EVENTS}


def default_metrics(task: str) -> dict[str, Metric]:
    """The metrics a fit records unless told otherwise: accuracy for classification, none for regression."""
    return {} if task == "regression" else {"acc": accuracy}


def fit(model: nn.Module, train_loader: Loader, epochs: int, *, val_loader: Loader | None = None,
        test_loader: Loader | None = None, **settings: Any) -> History:
    """Train ``model`` on ``train_loader`` for ``epochs`` epochs and return its History.

    ``settings`` are the Trainer's keyword arguments (optimizer, lr, loss, metrics, scheduler,
    scheduler_kwargs, weight_decay, device, amp, callbacks, quiet, desc): this is
    ``Trainer(model, **settings).fit(train_loader, epochs, val_loader, test_loader)``.
    """
    _check_settings(settings)
    return Trainer(model, **settings).fit(train_loader, epochs, val_loader=val_loader, test_loader=test_loader)


# Settings that became callbacks: a clear message instead of "unexpected keyword argument".
_NOW_CALLBACKS = {"clip_grad": "callbacks=[GradientClipping(max_norm)]",
                  "track_grad_norms": "callbacks=[a callback whose after_backward reads the gradients, e.g. sheet 3's "
                                      "for 6.2.4]"}


def _check_settings(settings: dict) -> None:
    """Name an unknown setting of fit() and the ones it accepts."""
    known = [name for name in inspect.signature(Trainer).parameters if name != "model"]
    unknown = [name for name in settings if name not in known]
    if unknown:
        hints = "".join(f" {name} is now a callback: {_NOW_CALLBACKS[name]} (helpers.callbacks)."
                        for name in unknown if name in _NOW_CALLBACKS)
        raise TypeError(f"fit() got unknown setting(s) {unknown}; it takes {', '.join(known)}.{hints}")


# --- Evaluation and prediction ----------------------------------------------------------------
def evaluate(model: nn.Module, loader: Loader, loss: str | nn.Module = "cross_entropy",
             device: str | torch.device | None = None, amp: bool = False) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` over ``loader`` (eval mode, no gradients); accuracy NaN for regression."""
    loss_fn = TaskLoss(*loss_and_task(loss))
    scores = score(model, loader, loss_fn, default_metrics(loss_fn.task), device_of(model, device), amp=amp)
    return scores["loss"], scores.get("acc", NAN)


@torch.no_grad()
def score(model: nn.Module, loader: Loader, loss_fn: TaskLoss, metrics: dict[str, Metric],
          device: torch.device, amp: bool = False) -> dict[str, float]:
    """``{"loss": mean loss, <metric>: value, ...}`` of ``model`` over ``loader``, in eval mode, with one sync."""
    _check_loader(loader, "loader")
    was_training = model.training
    model.eval()  # dropout off, BatchNorm uses its running statistics
    losses, sizes, preds, targets = [], [], [], []
    for xb, yb in loader:
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        with autocast(device, amp):
            pred = model(xb)
            losses.append(loss_fn(pred, yb).float() * len(yb))
        sizes.append(len(yb))
        if metrics:
            preds.append(pred)
            targets.append(yb)
    model.train(was_training)
    if not losses:
        raise ValueError("The evaluation loader yielded no batches.")
    total = torch.stack(losses).sum().reshape(1)
    values = torch.cat([total, epoch_scores(preds, targets, metrics).to(total.device) if metrics else total[:0]])
    loss, *scores = values.tolist()  # the one sync
    return {"loss": loss / sum(sizes), **dict(zip(metrics, scores))}


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

"""Turn batches into a trained model and a History: fit()/Trainer, evaluate(), predict().

The loop itself is ``Trainer.fit`` + ``Trainer.train_epoch`` + ``Trainer.train_step``: read those three
top to bottom. Everything else here builds the pieces they use (optimizer, scheduler, loss) or stores results.
"""
from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from . import config
from .callbacks import Callback, Checkpoint, EarlyStopping, load_checkpoint

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["History", "Trainer", "fit", "evaluate", "predict", "make_optimizer", "make_scheduler", "make_loss",
           "Callback", "EarlyStopping", "Checkpoint", "load_checkpoint", "OPTIMIZERS", "SCHEDULERS", "LOSSES"]

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw", "rmsprop", "adagrad")
SCHEDULERS = ("step", "exponential", "cosine", "onecycle")
LOSSES = ("cross_entropy", "bce", "mse")
EPOCH_FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc",
                "lr", "time", "peak_mem")
NAN = float("nan")

# A BatchLoader or torch DataLoader: anything iterable of (xb, yb) with len().
Loader = Iterable[tuple[torch.Tensor, torch.Tensor]]


# --- History -----------------------------------------------------------------------------
@dataclass
class History:
    """What a fit recorded: per-epoch metrics (NaN where a split is missing), per-step loss, grad norms."""

    epoch: list[int] = field(default_factory=list)
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
    config: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.epoch)

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
        return _json_safe(asdict(self))

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
        """Write the History as JSON and return the path."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict()))
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> History:
        """Read a History written by ``to_json``."""
        return cls.from_dict(json.loads(Path(path).read_text()))


def _json_safe(obj: Any) -> Any:
    """Replace non-finite floats by None, recursively; leave everything else alone."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


# --- Building blocks: optimizer, scheduler, loss ---------------------------------------------
def make_optimizer(name: str | torch.optim.Optimizer, params: Iterable[nn.Parameter], lr: float,
                   weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """Build an optimizer by name ('sgd', 'momentum', 'adam', 'adamw', 'rmsprop', 'adagrad'); pass instances through."""
    if isinstance(name, torch.optim.Optimizer):
        return name
    if not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"Learning rate lr must be a number > 0; got {lr!r}.")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0; got {weight_decay!r}.")
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
    return cls(optimizer, **{**options, **(kwargs or {})}), name == "onecycle"


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
    """BCE wants float targets shaped like the logits ((N,) or (N,1) both work); others take yb as is."""
    return yb.to(logits.dtype).view_as(logits) if task == "binary" else yb


def _predicted_labels(task: str, logits: torch.Tensor) -> torch.Tensor:
    """Class predicted for each sample: argmax of the logits, or logit > 0 for a binary (BCE) model."""
    return logits.argmax(1) if task == "multiclass" else logits.reshape(-1) > 0


def _true_labels(task: str, targets: torch.Tensor) -> torch.Tensor:
    """Class of each sample: the targets themselves, argmax of soft targets, or target > 0.5 for binary."""
    if task == "binary":
        return targets.reshape(-1) > 0.5
    return targets.argmax(1) if targets.ndim == 2 else targets


def _autocast(device: torch.device, enabled: bool):
    """Mixed precision context: fp16 on CUDA (with a GradScaler), bf16 elsewhere; a no-op when disabled."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.float16 if device.type == "cuda" else torch.bfloat16)


def _peak_memory_kind(device: torch.device) -> str:
    return "cuda max_memory_allocated" if device.type == "cuda" else "process peak RSS"


def _reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_memory_mib(device: torch.device) -> float:
    """Peak memory in MiB: CUDA allocator peak since the epoch began, else the process's peak RSS so far."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource  # not on Windows

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux
    except ImportError:
        import psutil

        return psutil.Process().memory_info().peak_wset / 2**20  # Windows' peak working set


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
        if clip_grad is not None and not clip_grad > 0:
            raise ValueError(f"clip_grad must be None or a max gradient norm > 0; got {clip_grad!r}.")
        if scheduler is not None and not isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler) \
                and scheduler not in SCHEDULERS:
            raise ValueError(f"Unknown scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)} or None.")
        self.device = config.get_device(device)
        self.model = model.to(self.device)
        self.optimizer = make_optimizer(optimizer, model.parameters(), lr, weight_decay)
        self.loss_fn, self.task = make_loss(loss)
        self.scheduler_name, self.scheduler_kwargs = scheduler, scheduler_kwargs
        self.scheduler, self.per_step = None, False
        self.amp, self.clip_grad, self.quiet, self.desc = amp, clip_grad, quiet, desc
        # Loss scaling keeps fp16 gradients from underflowing; bf16 (CPU) has fp32's range and needs none.
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp and self.device.type == "cuda")
        self.callbacks = list(callbacks)
        self.layers = _tracked_layers(model) if track_grad_norms else {}
        self.history = History(peak_mem_kind=_peak_memory_kind(self.device))
        self.history.config = {"optimizer": _name(optimizer), "lr": self.optimizer.param_groups[0]["lr"],
                               "loss": _name(loss), "scheduler": _name(scheduler), "weight_decay": weight_decay,
                               "amp": amp, "clip_grad": clip_grad, "device": str(self.device),
                               "model": type(model).__name__}
        self.epoch, self.stop = -1, False

    def fit(self, train_loader: Loader, epochs: int, val_loader: Loader | None = None,
            test_loader: Loader | None = None) -> History:
        """Train for ``epochs`` epochs (fewer if a callback stops or the loss diverges); return the History."""
        self._check_fit(train_loader, epochs, val_loader, test_loader)
        self.scheduler, self.per_step = make_scheduler(self.scheduler_name, self.optimizer, epochs,
                                                       len(train_loader), self.scheduler_kwargs)
        self.stop = False
        self._emit("on_fit_start")
        bar = tqdm(range(epochs), desc=self.desc, unit="epoch", disable=self.quiet, leave=True)
        for epoch in bar:
            self.epoch = epoch  # callbacks read it
            start, lr = time.perf_counter(), self.optimizer.param_groups[0]["lr"]
            _reset_peak_memory(self.device)
            train_loss, train_acc = self.train_epoch(train_loader)
            self.history.diverged = not math.isfinite(train_loss)
            val_loss, val_acc = self._evaluate(val_loader)
            test_loss, test_acc = self._evaluate(test_loader)
            if self.scheduler is not None and not self.per_step:
                self.scheduler.step()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)  # so the epoch's time includes its queued GPU work
            self.history.append_epoch(epoch=epoch, train_loss=train_loss, train_acc=train_acc,
                                      val_loss=val_loss, val_acc=val_acc, test_loss=test_loss, test_acc=test_acc,
                                      lr=lr, time=time.perf_counter() - start, peak_mem=_peak_memory_mib(self.device))
            bar.set_postfix(self._postfix(), refresh=False)
            self._emit("on_epoch_end")
            if self.stop or self.history.diverged:
                break
        bar.close()
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
        n = sum(sizes)
        if self.task == "regression":
            accuracy = NAN
        else:
            accuracy = (torch.cat(predicted) == _true_labels(self.task, torch.cat(targets))).sum().item() / n
        return sum(l * s for l, s in zip(step_losses, sizes)) / n, accuracy

    def train_step(self, xb: torch.Tensor, yb: torch.Tensor, norms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward, backward, update on one batch; return (loss, logits)."""
        self.optimizer.zero_grad(set_to_none=True)
        with _autocast(self.device, self.amp):
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

    def _check_fit(self, train_loader, epochs: int, val_loader, test_loader) -> None:
        if not isinstance(epochs, int) or epochs < 0:
            raise ValueError(f"epochs must be an integer >= 0; got {epochs!r}.")
        _check_loader(train_loader, "train_loader")
        for loader, name in ((val_loader, "val_loader"), (test_loader, "test_loader")):
            if loader is not None:
                _check_loader(loader, name)
        self.history.config.update(epochs=epochs, batch_size=getattr(train_loader, "batch_size", None))


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
def _model_device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    """The device asked for, else where the model's parameters live."""
    if device is not None:
        return torch.device(device)
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


@torch.no_grad()
def evaluate(model: nn.Module, loader: Loader, loss: str | nn.Module = "cross_entropy",
             device: str | torch.device | None = None, amp: bool = False) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` over ``loader`` (eval mode, no gradients); accuracy NaN for regression."""
    _check_loader(loader, "loader")
    device = _model_device(model, device)
    loss_fn, task = make_loss(loss)
    was_training = model.training
    model.eval()  # dropout off, BatchNorm uses its running statistics
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    n = 0
    for xb, yb in loader:
        xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        with _autocast(device, amp):
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
    device = _model_device(model, device)
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

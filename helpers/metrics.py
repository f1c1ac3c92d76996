"""Metrics: functions of an epoch's predictions and targets that return one number (a 0-d tensor or a float).

``fit(..., metrics={"acc": accuracy})`` records a metric under its name for every split: ``train_acc``,
``val_acc`` and ``test_acc`` in the History. Any function of the same shape can be passed under a name of
its own (``metrics={"acc": accuracy, "f1": f1}``); the History then keeps ``train_f1``, ``val_f1`` and
``test_f1`` too, and ``plot_history(history, metrics=("loss", "f1"))`` draws it. The Trainer calls a
metric once per epoch and split, on all of that epoch's predictions (still on the device).
"""
from __future__ import annotations

from typing import Callable

import torch

__all__ = ["Metric", "accuracy", "predicted_labels", "true_labels"]

# (predictions, targets) -> a number; predictions are the model's raw outputs (logits).
Metric = Callable[[torch.Tensor, torch.Tensor], "torch.Tensor | float"]


def _binary(pred: torch.Tensor) -> bool:
    """One output per sample (shape (N,) or (N, 1)) is a binary model's logit."""
    return pred.ndim == 1 or pred.shape[1] == 1


def predicted_labels(pred: torch.Tensor) -> torch.Tensor:
    """The class each prediction names: argmax of the logits, or logit > 0 for a binary (one-output) model."""
    return pred.reshape(-1) > 0 if _binary(pred) else pred.argmax(1)


def true_labels(target: torch.Tensor, pred: torch.Tensor) -> torch.Tensor:
    """The class of each target: the labels themselves, argmax of soft (one-hot) targets, or > 0.5 for binary."""
    if _binary(pred):
        return target.reshape(-1) > 0.5
    return target.argmax(1) if target.ndim == 2 else target


def accuracy(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Share of samples whose predicted class is their target's (a 0-d tensor on the predictions' device)."""
    return (predicted_labels(pred) == true_labels(target, pred)).float().mean()

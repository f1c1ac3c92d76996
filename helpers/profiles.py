"""One table: each experiment's settings per run profile (smoke, quick, full).

``full`` holds the course sheets' real settings; ``quick`` keeps the same trends in
minutes on a 2-core laptop; ``smoke`` runs in seconds for the tests.
Each sheet owns its own section; keys are ``"<sheet>.<experiment>"``.
"""
from __future__ import annotations

import copy

from .config import get_profile

SETTINGS: dict[str, dict[str, dict]] = {}

# --- Sheet 1: backprop and autodiff -------------------------------------------------
SETTINGS.update({
    "autodiff.deep_wide": {
        "smoke": {"depths": [0, 1, 2], "widths": [1, 5], "repeats": 2, "epochs": 2, "n_samples": 300},
        "quick": {"depths": [0, 1, 2, 3, 5, 10], "widths": [1, 2, 3, 5, 10, 20], "repeats": 3, "epochs": 10, "n_samples": 1000},
        "full": {"depths": [0, 1, 2, 3, 5, 10, 20], "widths": [1, 2, 3, 5, 10, 20], "repeats": 6, "epochs": 25, "n_samples": 1000},
    },
    "autodiff.sweep": {
        "smoke": {"n_trials": 3, "epochs": 2, "n_samples": 300},
        "quick": {"n_trials": 12, "epochs": 15, "n_samples": 1000},
        "full": {"n_trials": 30, "epochs": 50, "n_samples": 1000},
    },
})

# --- Sheet 2: optimisation on FashionMNIST ------------------------------------------
SETTINGS.update({
    "optim.grid": {
        "smoke": {"lrs": [0.01, 0.1], "batch_sizes": [64], "epochs": 1, "train_limit": 500},
        "quick": {"lrs": [0.01, 0.05, 0.2], "batch_sizes": [32, 128, 512], "epochs": 3, "train_limit": 20000},
        "full": {"lrs": [0.01, 0.05, 0.1, 0.2], "batch_sizes": [32, 64, 128, 256], "epochs": 20, "train_limit": None},
    },
})

# --- Sheet 3: MLP and CNN studies ---------------------------------------------------
SETTINGS.update({
    "mlp.defaults": {
        "smoke": {"epochs": 2, "batch_size": 256, "train_limit": None},
        "quick": {"epochs": 10, "batch_size": 256, "train_limit": None},
        "full": {"epochs": 50, "batch_size": 256, "train_limit": None},
    },
})

# --- Sheet 4: GPU performance lab ---------------------------------------------------
SETTINGS.update({
    "perf.cpu_vs_gpu": {
        "smoke": {"epochs": 1, "batch_size": 64, "train_limit": 256},
        "quick": {"epochs": 2, "batch_size": 64, "train_limit": 5000},
        "full": {"epochs": 5, "batch_size": 64, "train_limit": None},
    },
})


def settings(experiment: str, profile: str | None = None) -> dict:
    """Return a copy of one experiment's settings for the given (or current) profile."""
    if experiment not in SETTINGS:
        known = ", ".join(sorted(SETTINGS))
        raise ValueError(f"Unknown experiment {experiment!r}; known experiments: {known}.")
    return copy.deepcopy(SETTINGS[experiment][get_profile(profile)])

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
    # 2l: the Var networks on the course's 1-D data (course_regression_1d: 300 points, noise 0.1, split
    # 35/35/30). Epochs of each example (the under-fit is the course's: 20 epochs); the validation loss
    # is logged every eval_every epochs. Full trains as long as the course did (over-fit 10,000 epochs,
    # good fit 5,000; about 0.1 s per epoch here, so about 25 min); quick stops once the gap between
    # training and validation loss has opened (1,000 and 1,500 epochs).
    "autodiff.var_fit": {
        "smoke": {"n": 300, "noise": 0.1, "epochs": {"under": 20, "over": 10, "good": 10}, "eval_every": 1},
        "quick": {"n": 300, "noise": 0.1, "epochs": {"under": 20, "over": 1000, "good": 1500}, "eval_every": 10},
        "full": {"n": 300, "noise": 0.1, "epochs": {"under": 20, "over": 10_000, "good": 5_000}, "eval_every": 10},
    },
    # 3.2-3.4: the course's grid (full), with the reference team's Adam, lr 0.01, tanh, batch 32, 25 epochs.
    # quick keeps every depth (20 included) and width with 2 repetitions instead of 6.
    "autodiff.deep_wide": {
        "smoke": {"depths": [0, 2, 20], "widths": [1, 5], "repeats": 2, "epochs": 2, "n_samples": 300, "noise": 0.1,
                  "batch_size": 32, "lr": 0.01, "activation": "tanh"},
        "quick": {"depths": [0, 1, 2, 3, 5, 10, 20], "widths": [1, 2, 3, 5, 10, 20], "repeats": 2, "epochs": 25,
                  "n_samples": 1000, "noise": 0.1, "batch_size": 32, "lr": 0.01, "activation": "tanh"},
        "full": {"depths": [0, 1, 2, 3, 5, 10, 20], "widths": [1, 2, 3, 5, 10, 20], "repeats": 6, "epochs": 25,
                 "n_samples": 1000, "noise": 0.1, "batch_size": 32, "lr": 0.01, "activation": "tanh"},
    },
    # 4.1-4.3: the course's sweep (30 trials x 50 epochs, TPE on the validation loss); quick halves the epochs.
    "autodiff.sweep": {
        "smoke": {"n_trials": 4, "epochs": 2, "n_samples": 300, "noise": 0.1},
        "quick": {"n_trials": 30, "epochs": 25, "n_samples": 1000, "noise": 0.1},
        "full": {"n_trials": 30, "epochs": 50, "n_samples": 1000, "noise": 0.1},
    },
})

# --- Sheet 2: optimisation on FashionMNIST ------------------------------------------
SETTINGS.update({
    # Exercise 1.1: logistic regression on two 2-D blobs; one stable learning rate per method.
    "optim.convex": {
        "smoke": {"n": 400, "epochs": 20, "tolerance": 0.005, "minibatch": 32,
                  "lr_bgd": 2.0, "lr_sgd": 0.02, "lr_minibatch": 0.5},
        "quick": {"n": 1000, "epochs": 20, "tolerance": 0.005, "minibatch": 32,
                  "lr_bgd": 2.0, "lr_sgd": 0.02, "lr_minibatch": 0.5},
        "full": {"n": 1000, "epochs": 20, "tolerance": 0.005, "minibatch": 32,
                 "lr_bgd": 2.0, "lr_sgd": 0.02, "lr_minibatch": 0.5},
    },
    # Exercise 2.3: the hand-written loop against fit() (torchvision DataLoader, per-sample transforms).
    "optim.loop": {
        "smoke": {"train_limit": None, "batch_size": 64, "lr": 0.05, "epochs": 1},
        "quick": {"train_limit": 5000, "batch_size": 64, "lr": 0.05, "epochs": 1},
        "full": {"train_limit": None, "batch_size": 64, "lr": 0.05, "epochs": 1},
    },
    # Exercise 2.4: SGD grid (learning rate x batch size) on the validation set, then Adam at its default.
    "optim.grid": {
        "smoke": {"lrs": [0.05, 0.2], "batch_sizes": [32, 128], "epochs": 2, "train_limit": None,
                  "depth": 2, "width": 64},
        "quick": {"lrs": [0.01, 0.05, 0.2], "batch_sizes": [32, 128, 512], "epochs": 5, "train_limit": 20000,
                  "depth": 2, "width": 256},
        "full": {"lrs": [0.01, 0.05, 0.1, 0.2], "batch_sizes": [32, 64, 128, 256], "epochs": 20,
                 "train_limit": None, "depth": 2, "width": 256},
    },
    # Adam at its default learning rate, at the batch size the SGD grid chose (2.4a). target_acc: the
    # validation accuracy whose first epoch measures speed. adam_batch_sizes: the clearly labelled extra,
    # Adam at the grid's other batch sizes (empty: skipped).
    "optim.adam": {
        "smoke": {"lr": 1e-3, "target_acc": 0.5, "adam_batch_sizes": [32, 128]},
        "quick": {"lr": 1e-3, "target_acc": 0.82, "adam_batch_sizes": [32, 128, 512]},
        "full": {"lr": 1e-3, "target_acc": 0.87, "adam_batch_sizes": [32, 64, 128, 256]},
    },
})

# --- Sheet 3: MLP and CNN studies ---------------------------------------------------
# Europe countries (6.1-6.2). `full` is the course's settings: 6 hidden layers of 16, ReLU, Adam lr 1e-3,
# 50 epochs, batch 256 (validation/test batches 1024); 6.2 trains with batch norm at batch 128. `quick` keeps
# all 106,897 training points and cuts epochs; it subsamples (`train_limit(s)`) only where steps are costly:
# batch size 1 and the 100-layer network. `smoke` runs on the small generated stand-in in seconds.
_SHAPES = [[1, 16], [2, 16], [6, 16], [10, 16], [6, 8], [6, 32], [6, 64]]  # (depth, width), the course's seven
_GRAD_LAYERS = [0, 10, 30, 60, 90, 95, 99]
_ALPHAS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
SETTINGS.update({
    "mlp.defaults": {
        "smoke": {"depth": 6, "width": 16, "lr": 1e-3, "epochs": 2, "batch_size": 256, "eval_batch_size": 1024},
        "quick": {"depth": 6, "width": 16, "lr": 1e-3, "epochs": 10, "batch_size": 256, "eval_batch_size": 1024},
        "full": {"depth": 6, "width": 16, "lr": 1e-3, "epochs": 50, "batch_size": 256, "eval_batch_size": 1024},
    },
    # 6.1.2 Q1: the course's four learning rates plus 0.2 and 5e-4, which the reference added to diagnose.
    "mlp.lr": {
        "smoke": {"lrs": [1.0, 0.01, 1e-3, 1e-5], "epochs": 2},
        "quick": {"lrs": [1.0, 0.2, 0.01, 1e-3, 5e-4, 1e-5], "epochs": 8},
        "full": {"lrs": [1.0, 0.2, 0.01, 1e-3, 5e-4, 1e-5], "epochs": 50},
    },
    # 6.1.2 Q2 and Q3 (batch norm is compared in Q2's setting).
    "mlp.epochs": {
        "smoke": {"epochs": 3, "report_at": [1, 2, 3]},
        "quick": {"epochs": 20, "report_at": [1, 5, 10, 20]},
        "full": {"epochs": 100, "report_at": [1, 5, 10, 20, 50, 100]},
    },
    # 6.1.2 Q4: one epoch count per batch size, in the same order.
    "mlp.batch_size": {
        "smoke": {"batch_sizes": [1, 16, 128, 1024], "epochs": [1, 1, 1, 1], "train_limits": [300, 1000, None, None]},
        "quick": {"batch_sizes": [1, 16, 128, 1024], "epochs": [1, 2, 10, 10],
                  "train_limits": [10_000, None, None, None]},
        "full": {"batch_sizes": [1, 16, 128, 1024], "epochs": [1, 10, 50, 50], "train_limits": [None, None, None, None]},
    },
    # 6.2.1-6.2.3: the course's seven shapes with its settings for this part.
    "mlp.shapes": {
        "smoke": {"shapes": _SHAPES, "epochs": 1, "batch_size": 128, "lr": 1e-3, "batch_norm": True},
        "quick": {"shapes": _SHAPES, "epochs": 5, "batch_size": 128, "lr": 1e-3, "batch_norm": True},
        "full": {"shapes": _SHAPES, "epochs": 50, "batch_size": 128, "lr": 1e-3, "batch_norm": True},
    },
    # 6.2.4: 100 hidden layers of 4 units at the skeleton's defaults (batch 256, lr 1e-3, no batch norm).
    "mlp.grad_norms": {
        "smoke": {"depth": 100, "width": 4, "epochs": 1, "train_limit": 512, "layers": _GRAD_LAYERS},
        "quick": {"depth": 100, "width": 4, "epochs": 3, "train_limit": 20_000, "layers": _GRAD_LAYERS},
        "full": {"depth": 100, "width": 4, "epochs": 10, "train_limit": None, "layers": _GRAD_LAYERS},
    },
    # Bonus: sin(αx) features, trained like 6.2's depth-6 width-16 network.
    "mlp.implicit": {
        "smoke": {"alphas": _ALPHAS, "epochs": 1},
        "quick": {"alphas": _ALPHAS, "epochs": 5},
        "full": {"alphas": _ALPHAS, "epochs": 50},
    },
    # 7 (CNN transfer): `image_size` is the side ResNet18 sees (28×28 images are upscaled on the fly);
    # `train_limit`/`eval_limit` subsample the splits; `threads` caps torch's CPU threads for part 7 (None: torch's
    # default): small images in batches of 32 gain little from a second thread when other programs share the cores.
    "cnn.transfer": {
        "smoke": {"image_size": 16, "train_limit": 64, "eval_limit": 64, "lrs": [1e-2, 1e-4], "epochs": 1,
                  "batch_size": 32, "threads": 1},
        "quick": {"image_size": 32, "train_limit": 960, "eval_limit": 400, "lrs": [1e-1, 1e-2, 1e-3, 1e-4, 1e-5],
                  "epochs": 1, "batch_size": 32, "threads": 1},
        "full": {"image_size": 224, "train_limit": None, "eval_limit": None, "lrs": [1e-1, 1e-2, 1e-3, 1e-4, 1e-5],
                 "epochs": 1, "batch_size": 32, "threads": None},
    },
    # The kit's own backbone (used when ImageNet weights cannot be loaded): ResNet18 trained on the
    # eight FashionMNIST classes that are not in the binary task, at the task's image size.
    "cnn.backbone": {
        "smoke": {"train_limit": 128, "val_limit": 64, "epochs": 1, "lr": 1e-3, "batch_size": 64},
        "quick": {"train_limit": 2560, "val_limit": 500, "epochs": 1, "lr": 1e-3, "batch_size": 64},
        "full": {"train_limit": None, "val_limit": None, "epochs": 2, "lr": 1e-3, "batch_size": 64},
    },
})

# --- Sheet 4: GPU performance lab ---------------------------------------------------
# Every part: `epochs` timed epochs after `warmup_steps` untimed steps, on the first `train_limit`
# training images (None = all 50,000, as in the course), through a torch DataLoader with `num_workers`
# workers, Adam lr 1e-3. `full` runs the course's settings: all 50,000 images per epoch, its models, batch
# sizes, worker counts and epochs (Part 1: 5, Parts 2 and 3: 3; the course does not state those of Parts 4
# and 5, so 3). What `full` adds to the course, each named: the untimed `warmup_steps` (the course timed
# from the first step), SmallNet and LargeNet beside MediumNet in Part 1 (LargeNet on `large_train_limit`
# images, on both devices), Part 5's CPU run (bfloat16 on `cpu_train_limit` images in batches of
# `cpu_batch_size`), the input-pipeline part (`gpu.pipeline`) and Q5's copies (`gpu.transfer`).
# `quick` keeps each part's comparison (the same images for every setting of a part) in minutes on a
# 2-core CPU, and also on a GPU machine (the GPU check, benchmarks/gpu_check.sh); `smoke` runs in seconds.
# Part 5 on the CPU times at least 20 steps in `quick` and `full` (cpu_train_limit / cpu_batch_size × epochs):
# one step says nothing about bfloat16 against float32.
SETTINGS.update({
    "gpu.cpu_vs_gpu": {
        "smoke": {"models": ["SmallNet", "MediumNet", "LargeNet"], "epochs": 1, "batch_size": 64, "train_limit": 128,
                  "large_train_limit": 64, "warmup_steps": 1, "num_workers": 0},
        "quick": {"models": ["SmallNet", "MediumNet", "LargeNet"], "epochs": 2, "batch_size": 64, "train_limit": 1600,
                  "large_train_limit": 320, "warmup_steps": 2, "num_workers": 2},
        "full": {"models": ["SmallNet", "MediumNet", "LargeNet"], "epochs": 5, "batch_size": 64, "train_limit": None,
                 "large_train_limit": 10_000, "warmup_steps": 10, "num_workers": 2},
    },
    "gpu.batch_size": {
        "smoke": {"model": "MediumNet", "batch_sizes": [16, 64, 256, 1024], "epochs": 1, "train_limit": 128, "warmup_steps": 1, "num_workers": 0},
        "quick": {"model": "MediumNet", "batch_sizes": [16, 64, 256, 1024], "epochs": 2, "train_limit": 2048, "warmup_steps": 2, "num_workers": 2},
        "full": {"model": "MediumNet", "batch_sizes": [16, 64, 256, 1024], "epochs": 3, "train_limit": None, "warmup_steps": 5, "num_workers": 2},
    },
    "gpu.model_size": {
        "smoke": {"models": ["SmallNet", "MediumNet", "LargeNet"], "batch_size": 128, "epochs": 1, "train_limit": 128, "warmup_steps": 1, "num_workers": 0},
        "quick": {"models": ["SmallNet", "MediumNet", "LargeNet"], "batch_size": 128, "epochs": 2, "train_limit": 384, "warmup_steps": 1, "num_workers": 2},
        "full": {"models": ["SmallNet", "MediumNet", "LargeNet"], "batch_size": 128, "epochs": 3, "train_limit": None, "warmup_steps": 5, "num_workers": 2},
    },
    "gpu.workers": {
        "smoke": {"model": "MediumNet", "num_workers": [0, 2, 4], "batch_size": 256, "epochs": 1, "train_limit": 256, "warmup_steps": 1},
        "quick": {"model": "MediumNet", "num_workers": [0, 2, 4, 8], "batch_size": 256, "epochs": 2, "train_limit": 2048, "warmup_steps": 2},
        "full": {"model": "MediumNet", "num_workers": [0, 2, 4, 8], "batch_size": 256, "epochs": 3, "train_limit": None, "warmup_steps": 3},
    },
    "gpu.amp": {
        "smoke": {"model": "LargeNet", "batch_size": 16, "epochs": 1, "train_limit": 64, "cpu_train_limit": 32,
                  "cpu_batch_size": 16, "warmup_steps": 1, "num_workers": 0},
        "quick": {"model": "LargeNet", "batch_size": 128, "epochs": 3, "train_limit": 5000, "cpu_train_limit": 256,
                  "cpu_batch_size": 32, "warmup_steps": 2, "num_workers": 2},
        "full": {"model": "LargeNet", "batch_size": 128, "epochs": 3, "train_limit": None, "cpu_train_limit": 640,
                 "cpu_batch_size": 32, "warmup_steps": 5, "num_workers": 2},
    },
    "gpu.pipeline": {
        "smoke": {"model": "MediumNet", "batch_size": 64, "epochs": 1, "train_limit": 128, "warmup_steps": 1, "num_workers": 0},
        "quick": {"model": "MediumNet", "batch_size": 64, "epochs": 2, "train_limit": 1600, "warmup_steps": 2, "num_workers": 2},
        "full": {"model": "MediumNet", "batch_size": 64, "epochs": 5, "train_limit": None, "warmup_steps": 10, "num_workers": 2},
    },
    "gpu.transfer": {
        "smoke": {"batch_size": 64, "train_limit": 128, "repeats": 2},
        "quick": {"batch_size": 64, "train_limit": 10_000, "repeats": 3},
        "full": {"batch_size": 64, "train_limit": None, "repeats": 5},
    },
})


def settings(experiment: str, profile: str | None = None) -> dict:
    """Return a copy of one experiment's settings for the given (or current) profile."""
    if experiment not in SETTINGS:
        known = ", ".join(sorted(SETTINGS))
        raise ValueError(f"Unknown experiment {experiment!r}; known experiments: {known}.")
    return copy.deepcopy(SETTINGS[experiment][get_profile(profile)])


def _shown(value) -> str:
    """A setting as a reader wants it: 10,000 and 0.001, "all" for None."""
    if value is None:
        return "all"
    if isinstance(value, list):
        return "/".join(_shown(v) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def scale_note(experiment: str, profile: str | None = None) -> str:
    """One line naming the settings in which this profile departs from the course's (the ``full`` profile)."""
    name = get_profile(profile)
    mine, course = settings(experiment, name), settings(experiment, "full")
    changed = [f"{key} {_shown(mine[key])} (course: {_shown(course[key])})"
               for key in course if mine.get(key) != course[key]]
    return f"[{name} profile] " + ("; ".join(changed) if changed else "the course's settings")

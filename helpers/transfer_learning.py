"""Transfer learning on a binary image task: the data, a pretrained backbone, the baselines and their ranking.

The course's real-versus-fake faces set is used when it lies in a data root (ImageFolder layout
``<root>/real-vs-fake/{train,val,test}/{fake,real}/*.jpg``); otherwise a real stand-in binary task
is built from FashionMNIST (T-shirt/top versus Shirt). Without ImageNet weights the "pretrained"
backbone is a ResNet18 the kit trains itself on the *other* eight FashionMNIST classes, so the linear
probe and the fine-tune still start from features learned on different data.

The kit runs the baselines that need no model surgery (XGBoost, ResNet18 from scratch, scikit-learn's
probe on frozen features); the linear probe and the fine-tune are the student's surgery on
``pretrained_model(backbone)`` (sheet 3, part 7), trained here by ``train_resnet``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from . import config, store
from .data import FASHION_CLASSES, Split, load_fashion_mnist
from .device import get_device
from .models import PretrainedUnavailable, imagenet_weights_path, pretrained_resnet18, scratch_resnet18, with_input
from .history import History
from .training import Loader, fit, predict

STANDIN_CLASSES: tuple[str, str] = ("T-shirt/top", "Shirt")
FACES_DIRS: tuple[str, ...] = ("real-vs-fake", "real_vs_fake", "faces")
FACES_CLASSES: list[str] = ["fake", "real"]  # ImageFolder sorts class folders: fake = 0, real = 1
TORCH_BASELINES: tuple[str, ...] = ("scratch", "linear_probe", "finetune")
BASELINES: tuple[str, ...] = ("xgboost", *TORCH_BASELINES, "logreg")
KIT_BASELINES: tuple[str, ...] = ("xgboost", "scratch", "logreg")  # no surgery: run_baseline runs them
SURGERY_BASELINES: tuple[str, ...] = ("linear_probe", "finetune")  # the student's surgery, then train_resnet
XGBOOST_RESIZE, XGBOOST_CROP = 224, 64  # the course's XGBoost input: Resize(224), CenterCrop(64), then the pixels
LOGREG_MAX_ITER = 2000  # lbfgs iterations of the scikit-learn probe (its default, 100, stops before convergence)


# --- the binary task ---------------------------------------------------------------------
@dataclass
class BinaryTask:
    """A binary image task: three splits of images in [0, 1] with float labels 0./1., and what it is."""

    name: str
    classes: list[str]          # classes[0] has label 0, classes[1] label 1
    train: Split | Dataset
    val: Split | Dataset
    test: Split | Dataset
    note: str                   # one sentence for the notebook: what was used, how it differs from the course

    def split(self, name: str) -> Split | Dataset:
        """The split called ``name`` (train, val or test)."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"Unknown split {name!r}; choose train, val or test.")
        return getattr(self, name)

    def loader(self, split: str, batch_size: int, shuffle: bool = False, seed: int = 0) -> Loader:
        """Batches of (images, labels) of one split."""
        data = self.split(split)
        if isinstance(data, Split):
            return data.loader(batch_size, shuffle=shuffle, seed=seed)
        return DataLoader(data, batch_size=batch_size, shuffle=shuffle,
                          generator=config.torch_generator(seed))

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Flattened pixels (N, C·H·W) and integer labels (N,) of one split, for the non-neural baselines."""
        data = self.split(split)
        if isinstance(data, Split):
            return data.X.flatten(1).numpy(), data.y.long().numpy()
        xs, ys = zip(*(batch for batch in self.loader(split, 256)))
        return torch.cat(xs).flatten(1).numpy(), torch.cat(ys).long().numpy()

    def labels(self, split: str) -> np.ndarray:
        """Integer labels (N,) of one split."""
        data = self.split(split)
        if isinstance(data, Split):
            return data.y.long().numpy()
        return torch.cat([yb for _, yb in self.loader(split, 256)]).long().numpy()

    def images(self, split: str, index: np.ndarray) -> torch.Tensor:
        """The images at ``index`` in one split, as a tensor (n, C, H, W) in [0, 1]."""
        data = self.split(split)
        if isinstance(data, Split):
            return data.X[torch.as_tensor(index, dtype=torch.long)]
        return torch.stack([data[int(i)][0] for i in index])

    def sizes(self) -> dict[str, int]:
        """Number of samples per split."""
        return {name: len(self.split(name)) for name in ("train", "val", "test")}


def _as_float_label(label: int) -> torch.Tensor:
    """ImageFolder gives int labels; BCEWithLogitsLoss wants float targets (and float32, not python's float64)."""
    return torch.tensor(float(label), dtype=torch.float32)


def find_faces(roots: list[Path] | None = None) -> Path | None:
    """The folder of the real-versus-fake faces set in the data roots, or None when it is not there."""
    for root in roots if roots is not None else config.data_search_roots():
        for name in FACES_DIRS:
            folder = Path(root) / name
            if all((folder / split / cls).is_dir() for split in ("train", "val", "test") for cls in FACES_CLASSES):
                return folder
    return None


def _limit(data: Split | Dataset, n: int | None, seed: int) -> Split | Dataset:
    """A seeded random subset of n samples (all of them when n is None or too large)."""
    if n is None or n >= len(data):
        return data
    if isinstance(data, Split):
        return data.subset(n, seed=seed)
    index = torch.randperm(len(data), generator=config.torch_generator(seed))[:n]
    return Subset(data, index.tolist())


def faces_task(folder: Path, image_size: int, train_limit: int | None = None, eval_limit: int | None = None,
               seed: int = 0) -> BinaryTask:
    """The real-versus-fake faces set from an ImageFolder layout, images resized to ``image_size``."""
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.Resize((image_size, image_size)), transforms.ToTensor()])
    parts = {split: datasets.ImageFolder(str(Path(folder) / split), transform=tf, target_transform=_as_float_label)
             for split in ("train", "val", "test")}
    if parts["train"].classes != FACES_CLASSES:
        raise ValueError(f"{folder}/train should hold exactly the class folders {FACES_CLASSES}, "
                         f"found {parts['train'].classes}.")
    return BinaryTask(
        name="real-vs-fake faces", classes=list(FACES_CLASSES),
        train=_limit(parts["train"], train_limit, seed), val=_limit(parts["val"], eval_limit, seed),
        test=_limit(parts["test"], eval_limit, seed),
        note=f"The course's real-versus-fake faces from {folder}, resized to {image_size}×{image_size}.")


def _two_classes(split: Split, ids: tuple[int, int]) -> Split:
    """Keep the samples of two classes, relabelled 0./1. (float, for BCEWithLogitsLoss)."""
    keep = (split.y == ids[0]) | (split.y == ids[1])
    return Split(split.X[keep], (split.y[keep] == ids[1]).float())


def fashion_binary_task(root: str | Path | None = None, classes: tuple[str, str] = STANDIN_CLASSES,
                        train_limit: int | None = None, eval_limit: int | None = None, seed: int = 0) -> BinaryTask:
    """The stand-in task: two FashionMNIST classes as 0./1., images (N, 1, 28, 28) in [0, 1]."""
    unknown = [c for c in classes if c not in FASHION_CLASSES]
    if len(classes) != 2 or unknown or classes[0] == classes[1]:
        raise ValueError(f"classes must be two different FashionMNIST classes; got {classes!r}. "
                         f"Choose from {FASHION_CLASSES}.")
    ids = (FASHION_CLASSES.index(classes[0]), FASHION_CLASSES.index(classes[1]))
    # Raw [0, 1] pixels: the model's first layer (ResNetInput) normalises with the backbone's statistics.
    full = load_fashion_mnist(root, normalize=False)
    parts = {name: _two_classes(getattr(full, name), ids) for name in ("train", "val", "test")}
    task = BinaryTask(
        name=f"FashionMNIST {classes[1]} vs {classes[0]}", classes=list(classes),
        train=_limit(parts["train"], train_limit, seed), val=_limit(parts["val"], eval_limit, seed),
        test=_limit(parts["test"], eval_limit, seed), note="")
    n = task.sizes()
    task.note = (f"Stand-in for the course's real-versus-fake faces (not publicly available): FashionMNIST "
                 f"'{classes[1]}' (label 1) versus '{classes[0]}' (label 0), grey 28×28 images replicated to 3 "
                 f"channels; {n['train']:,} / {n['val']:,} / {n['test']:,} train / val / test images"
                 + (f" (subsampled from {len(parts['train']):,} training images)" if n['train'] < len(parts['train'])
                    else "") + ".")
    return task


def load_binary_task(root: str | Path | None = None, image_size: int = 224, train_limit: int | None = None,
                     eval_limit: int | None = None, seed: int = 0) -> BinaryTask:
    """The faces set when it is in a data root, else the FashionMNIST stand-in."""
    if root is not None:
        folder = find_faces([Path(root)])
    else:
        # The smoke profile runs on generated stand-ins only, like the rest of the data layer.
        folder = None if config.get_profile() == "smoke" else find_faces()
    if folder is not None:
        return faces_task(folder, image_size, train_limit, eval_limit, seed)
    return fashion_binary_task(root, train_limit=train_limit, eval_limit=eval_limit, seed=seed)


# --- models --------------------------------------------------------------------------------
@dataclass
class Backbone:
    """Where the pretrained ResNet18 weights come from: ImageNet (torchvision) or the kit's own pretraining."""

    source: str                                    # "imagenet" or "kit"
    state_dict: dict[str, torch.Tensor] | None     # a whole torchvision ResNet18's (head included); None for ImageNet
    description: str
    val_acc: float | None = None                   # accuracy on its own pretraining task (kit only)


def pretrained_model(backbone: Backbone) -> nn.Module:
    """A fresh torchvision ResNet18 with the backbone's pretrained weights and its pretraining head ``fc``."""
    if backbone is None:
        raise ValueError("a pretrained model needs a Backbone; get one with pretrained_backbone().")
    return pretrained_resnet18(backbone.state_dict)


def _pretraining_splits(root, exclude: tuple[str, ...], train_limit: int | None, val_limit: int | None, seed: int):
    """FashionMNIST without the ``exclude`` classes, labels renumbered 0..k-1."""
    full = load_fashion_mnist(root, normalize=False)
    keep_ids = [i for i, c in enumerate(FASHION_CLASSES) if c not in exclude]
    remap = torch.full((len(FASHION_CLASSES),), -1, dtype=torch.long)
    remap[keep_ids] = torch.arange(len(keep_ids))

    def part(split: Split) -> Split:
        mask = remap[split.y] >= 0
        return Split(split.X[mask], remap[split.y[mask]])

    return (_limit(part(full.train), train_limit, seed), _limit(part(full.val), val_limit, seed),
            [FASHION_CLASSES[i] for i in keep_ids])


def kit_backbone(image_size: int, *, root: str | Path | None = None, exclude: tuple[str, ...] = STANDIN_CLASSES,
                 train_limit: int | None = None, val_limit: int | None = None, epochs: int = 1, lr: float = 1e-3,
                 batch_size: int = 64, seed: int = 0, force: bool = False, quiet: bool = True) -> Backbone:
    """A ResNet18 pretrained by the kit on the FashionMNIST classes not in ``exclude``, cached on disk."""
    params = config.with_seed_offset({"format": "torchvision", "image_size": image_size, "exclude": sorted(exclude), "train_limit": train_limit,
              "val_limit": val_limit, "epochs": epochs,
              "lr": lr, "batch_size": batch_size, "seed": seed, "root": str(root) if root else None,
              "profile": config.get_profile()})
    path = config.cache_dir() / "backbones" / f"resnet18-fashion-{store.content_key(params, 12)}.pt"
    if path.is_file() and not force:
        saved = store.load_torch(path)
        return Backbone("kit", saved["state_dict"], saved["description"], saved["val_acc"])

    train, val, classes = _pretraining_splits(root, exclude, train_limit, val_limit, seed)
    config.seed_everything(seed)
    model = with_input(scratch_resnet18(len(classes)), image_size)
    history = fit(model, train.loader(batch_size, shuffle=True, seed=seed), epochs, optimizer="adam", lr=lr,
                  val_loader=val.loader(512), quiet=quiet, desc="kit backbone")
    val_acc = history.final("val_acc")
    description = (f"ResNet18 pretrained by the kit on {len(classes)} other FashionMNIST classes "
                   f"({len(train):,} images at {image_size}×{image_size}, {epochs} epoch(s); "
                   f"validation accuracy {val_acc:.3f} on that {len(classes)}-class task)")
    state = {k: v.detach().cpu().clone() for k, v in model[1].state_dict().items()}
    # Atomic: a half-written file never looks like a cached backbone.
    store.save_torch(path, {"state_dict": state, "description": description, "val_acc": val_acc, "params": params})
    return Backbone("kit", state, description, val_acc)


def _imagenet_failed_marker() -> Path:
    """A file whose presence says an earlier download of the ImageNet weights failed (delete it to try again)."""
    return config.cache_dir() / "backbones" / "imagenet-download-failed"


def pretrained_backbone(image_size: int, prefer: str = "auto", **kit_kwargs) -> Backbone:
    """ImageNet weights when they can be loaded (prefer="auto" or "imagenet"), else the kit's own backbone.

    With ``prefer="auto"`` no download is tried (nor its "Downloading ..." line printed) when the weights
    are not cached and either ``KIT_OFFLINE`` is set or an earlier attempt failed.
    """
    if prefer not in ("auto", "imagenet", "kit"):
        raise ValueError(f"prefer must be 'auto', 'imagenet' or 'kit'; got {prefer!r}.")
    known_absent = not imagenet_weights_path().is_file() and (config.offline() or _imagenet_failed_marker().is_file())
    if prefer == "imagenet" or (prefer == "auto" and not known_absent):
        try:
            pretrained_resnet18()  # loads (and caches) the weights or says why it cannot
            return Backbone("imagenet", None, "torchvision's ResNet18 ImageNet weights (IMAGENET1K_V1)")
        except PretrainedUnavailable:
            if prefer == "imagenet":
                raise
            if not config.offline():
                store.write_text(_imagenet_failed_marker(), "delete this file to try the download again\n")
    return kit_backbone(image_size, **kit_kwargs)


# --- baselines -----------------------------------------------------------------------------
def _bce(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean binary cross-entropy of probabilities against 0/1 labels."""
    p = np.clip(probs, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _one_epoch_history(model_name: str, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
                       test: tuple[np.ndarray, np.ndarray], seconds: float) -> History:
    """A History with one entry, so non-neural baselines share the neural ones' table columns."""
    metrics = {}
    for split, (probs, y) in (("train", train), ("val", val), ("test", test)):
        metrics[f"{split}_loss"] = _bce(probs, y)
        metrics[f"{split}_acc"] = float(np.mean((probs > 0.5) == y))
    h = History()
    h.append_epoch(epoch=0, time=seconds, **metrics)
    h.config = {"model": model_name}
    return h


def crop_pixels(images: torch.Tensor, resize: int = XGBOOST_RESIZE, crop: int = XGBOOST_CROP) -> np.ndarray:
    """The course's XGBoost input: each image (N, C, H, W) resized (shorter side), centre-cropped, flattened."""
    from torchvision.transforms import functional as TF

    return TF.center_crop(TF.resize(images, resize, antialias=True), crop).flatten(1).numpy()


def xgboost_pixels(task: BinaryTask, split: str, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """``crop_pixels`` of every image of one split (a batch at a time: 224-px copies of all would not fit), and labels."""
    batches = [(crop_pixels(xb), yb.long().numpy()) for xb, yb in task.loader(split, batch_size)]
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


def xgboost_baseline(task: BinaryTask, seed: int = 0, **params) -> History:
    """XGBoost (default parameters unless ``params`` says otherwise) on ``xgboost_pixels``; test probs in extras."""
    from xgboost import XGBClassifier

    (xtr, ytr), (xva, yva), (xte, yte) = (xgboost_pixels(task, s) for s in ("train", "val", "test"))
    start = time.perf_counter()
    clf = XGBClassifier(random_state=config.shifted_seed(seed), **params).fit(xtr, ytr)
    seconds = time.perf_counter() - start
    probs = {s: clf.predict_proba(x)[:, 1] for s, x in (("train", xtr), ("val", xva), ("test", xte))}
    h = _one_epoch_history("xgboost", (probs["train"], ytr), (probs["val"], yva), (probs["test"], yte), seconds)
    h.extras["test_probs"] = probs["test"].round(5).tolist()
    return h


@torch.no_grad()
def extract_features(backbone: Backbone, task: BinaryTask, split: str, image_size: int, batch_size: int = 256,
                     device: str | torch.device | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The frozen backbone's 512 features of every image of one split, and the labels."""
    device = get_device(device)
    resnet = pretrained_model(backbone)
    resnet.fc = nn.Identity()  # the 512 features the pretraining head would have classified
    body = with_input(resnet, image_size).to(device).eval()
    feats, labels = [], []
    for xb, yb in task.loader(split, batch_size):
        feats.append(body(xb.to(device)).cpu())
        labels.append(yb)
    return torch.cat(feats).numpy(), torch.cat(labels).long().numpy()


def logreg_baseline(task: BinaryTask, backbone: Backbone, image_size: int, seed: int = 0,
                    device: str | torch.device | None = None) -> History:
    """scikit-learn LogisticRegression on frozen ResNet18 features; test probabilities in history.extras."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    start = time.perf_counter()
    data = {s: extract_features(backbone, task, s, image_size, device=device) for s in ("train", "val", "test")}
    # Standardised features let lbfgs converge in a few hundred iterations; the classifier itself is default.
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=LOGREG_MAX_ITER, random_state=config.shifted_seed(seed)))
    clf.fit(*data["train"])
    seconds = time.perf_counter() - start
    probs = {s: clf.predict_proba(x)[:, 1] for s, (x, _) in data.items()}
    h = _one_epoch_history("logreg", (probs["train"], data["train"][1]), (probs["val"], data["val"][1]),
                           (probs["test"], data["test"][1]), seconds)
    h.extras["test_probs"] = probs["test"].round(5).tolist()
    return h


def train_resnet(task: BinaryTask, model: nn.Module, lr: float, *, image_size: int, epochs: int = 1,
                 batch_size: int = 32, eval_batch_size: int = 256, seed: int = 0, name: str = "resnet",
                 device: str | torch.device | None = None, quiet: bool = True) -> History:
    """Train a ResNet18 with one logit (``model``, e.g. a linear probe) with BCEWithLogitsLoss and Adam.

    The model sees the task's images through ``ResNetInput(image_size)``; only its parameters with
    ``requires_grad`` train. The test probabilities go into ``history.extras``.
    """
    config.seed_everything(seed)
    model = with_input(model, image_size)
    history = fit(model, task.loader("train", batch_size, shuffle=True, seed=seed), epochs, optimizer="adam", lr=lr,
                  loss="bce", val_loader=task.loader("val", eval_batch_size),
                  test_loader=task.loader("test", eval_batch_size), device=device, quiet=quiet,
                  desc=f"{name} lr={lr:g}")
    _, probs, _ = predict(model, task.loader("test", eval_batch_size), device=device)
    history.config["model"] = name
    history.extras["test_probs"] = probs.flatten().numpy().round(5).tolist()
    return history


def run_baseline(task: BinaryTask, baseline: str, lr: float | None = None, *, backbone: Backbone | None = None,
                 image_size: int = 224, epochs: int = 1, batch_size: int = 32, seed: int = 0,
                 device: str | torch.device | None = None, quiet: bool = True) -> History:
    """One run of one of the kit's baselines (xgboost, scratch, logreg) as a History.

    The linear probe and the fine-tune start with the student's surgery on ``pretrained_model(backbone)``;
    ``train_resnet`` trains what it returns.
    """
    if baseline in SURGERY_BASELINES:
        raise ValueError(f"baseline {baseline!r} starts with model surgery (sheet 3, part 7): build it from "
                         "pretrained_model(backbone), then call train_resnet(task, model, lr, ...).")
    if baseline not in KIT_BASELINES:
        raise ValueError(f"Unknown baseline {baseline!r}; choose one of {', '.join(BASELINES)}.")
    if baseline == "xgboost":
        return xgboost_baseline(task, seed=seed)
    if baseline == "logreg":
        if backbone is None:
            raise ValueError("the logreg baseline needs a pretrained Backbone for its features.")
        return logreg_baseline(task, backbone, image_size, seed=seed, device=device)
    if lr is None:
        raise ValueError(f"baseline {baseline!r} trains with Adam and needs a learning rate lr.")
    config.seed_everything(seed)
    return train_resnet(task, scratch_resnet18(1), lr, image_size=image_size, epochs=epochs, batch_size=batch_size,
                        seed=seed, name="scratch", device=device, quiet=quiet)


# --- results -------------------------------------------------------------------------------
def ranking_table(runs: pd.DataFrame) -> pd.DataFrame:
    """All runs ranked by test accuracy as in the course (ties: lower test loss), validation metrics beside."""
    rows = []
    for _, row in runs.iterrows():
        h: History = row["history"]
        rows.append({"baseline": row["baseline"], "lr": row.get("lr", np.nan),
                     "test_acc": h.final("test_acc"), "test_loss": h.final("test_loss"),
                     "val_acc": h.final("val_acc"), "val_loss": h.final("val_loss"),
                     "time_s": float(np.nansum(h.time)), "history": h})
    table = pd.DataFrame(rows).sort_values(["test_acc", "test_loss"], ascending=[False, True], kind="stable")
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table.reset_index(drop=True)


def best_per_baseline(ranking: pd.DataFrame, k: int = 2) -> pd.DataFrame:
    """The k best runs of every baseline (by the ranking's order)."""
    return ranking.groupby("baseline", sort=False).head(k).reset_index(drop=True)


def test_probs(history: History) -> np.ndarray:
    """The test-set probabilities of label 1 that a baseline run stored in its history."""
    if "test_probs" not in history.extras:
        raise ValueError("this History carries no test probabilities; it did not come from helpers.transfer_learning.")
    return np.asarray(history.extras["test_probs"], dtype=np.float64)


def misclassified(task: BinaryTask, probs: np.ndarray, n: int = 5) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """The first n misclassified test images, their true and their predicted labels."""
    y = task.labels("test")
    pred = (np.asarray(probs) > 0.5).astype(np.int64)
    if len(pred) != len(y):
        raise ValueError(f"{len(pred)} probabilities for {len(y)} test images: were they made on this task?")
    wrong = np.flatnonzero(pred != y)[:n]
    return task.images("test", wrong), y[wrong], pred[wrong]

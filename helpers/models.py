"""The course's models: MLPs (plain, residual, sin(α·x) or standardised inputs), three CIFAR-10 CNNs, and ResNet18.

The transfer-learning surgery (freeze a pretrained ResNet18 and train a new head, or fine-tune it all) is an
exercise of sheet 3 and lives in its notebook; here are the pieces it starts from: a pretrained ResNet18 with its
pretraining head, and a fresh one for training from scratch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import config, store

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "identity": nn.Identity,
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The sheet's frequencies: α = 0.1, 0.2, ..., 1.0 (rounded so 0.30000000000000004 never shows up in a table).
DEFAULT_ALPHAS: tuple[float, ...] = tuple(round(0.1 * k, 1) for k in range(1, 11))


def _activation(name: str) -> nn.Module:
    """Return a fresh activation module by name."""
    if name not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}.")
    return ACTIVATIONS[name]()


# --- MLP -----------------------------------------------------------------------------
class HiddenBlock(nn.Module):
    """Linear → (BatchNorm) → activation → (Dropout), with an optional skip connection."""

    def __init__(self, n_in: int, n_out: int, batch_norm: bool, activation: str, dropout: float, residual: bool):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.norm = nn.BatchNorm1d(n_out) if batch_norm else nn.Identity()
        self.act = _activation(activation)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        # A skip only makes sense when input and output have the same width.
        self.residual = residual and n_in == n_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(self.act(self.norm(self.linear(x))))
        # x + f(x): the gradient reaches early layers through the identity path undamped.
        return x + h if self.residual else h


class MLP(nn.Module):
    """Fully connected network; ``depth`` hidden layers of ``width`` units (depth 0 = linear model)."""

    def __init__(self, in_features: int, out_features: int, depth: int, width: int, batch_norm: bool = False,
                 activation: str = "relu", dropout: float = 0.0, residual: bool = False):
        super().__init__()
        if depth < 0 or (depth > 0 and width < 1) or in_features < 1 or out_features < 1:
            raise ValueError(f"MLP needs depth >= 0, width >= 1, in/out features >= 1; got depth={depth}, "
                             f"width={width}, in_features={in_features}, out_features={out_features}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {dropout}.")
        _activation(activation)  # fail early on an unknown name, even for depth 0
        sizes = [in_features] + [width] * depth
        self.hidden = nn.ModuleList(
            HiddenBlock(n_in, n_out, batch_norm, activation, dropout, residual)
            for n_in, n_out in zip(sizes[:-1], sizes[1:])
        )
        self.out = nn.Linear(sizes[-1], out_features)

    @property
    def linears(self) -> list[nn.Linear]:
        """The nn.Linear layers from input to output (depth + 1 of them)."""
        return [block.linear for block in self.hidden] + [self.out]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)  # images (N, C, H, W) become vectors (N, C*H*W)
        for block in self.hidden:
            x = block(x)
        return self.out(x)


class ScaledResidualMLP(nn.Module):
    """A deep residual MLP trained without normalisation, as the literature does it (Fixup, Zhang et al. 2019).

    A stem ``Linear(in, width)``, then ``depth - 1`` blocks ``h + s·W·act(h) + s·b``: each branch ends in a linear
    layer whose weight and bias start at zero, scaled by a learnable scalar ``s`` that starts at 1. At
    initialisation every block is the identity, so the activations keep their size through any depth and the
    gradient reaches every layer through the skips; then a linear head. ``linears`` lists the stem, the blocks'
    layers and the head (depth + 1 of them), like ``MLP.linears``. Feed it standardised inputs (``Standardize``).
    """

    def __init__(self, in_features: int, out_features: int, depth: int, width: int, activation: str = "relu"):
        super().__init__()
        if depth < 1 or width < 1 or in_features < 1 or out_features < 1:
            raise ValueError(f"ScaledResidualMLP needs depth >= 1, width >= 1, in/out features >= 1; got depth={depth}, "
                             f"width={width}, in_features={in_features}, out_features={out_features}.")
        self.stem = nn.Linear(in_features, width)
        self.blocks = nn.ModuleList(ScaledResidualBlock(width, activation) for _ in range(depth - 1))
        self.out = nn.Linear(width, out_features)

    @property
    def linears(self) -> list[nn.Linear]:
        """The nn.Linear layers from input to output (depth + 1 of them)."""
        return [self.stem] + [block.linear for block in self.blocks] + [self.out]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x.flatten(1))
        for block in self.blocks:
            h = block(h)
        return self.out(h)


class ScaledResidualBlock(nn.Module):
    """``h + scale · linear(act(h))`` with the linear layer at zero and the scale at 1: the identity at first."""

    def __init__(self, width: int, activation: str = "relu"):
        super().__init__()
        self.act = _activation(activation)
        self.linear = nn.Linear(width, width)
        nn.init.zeros_(self.linear.weight)  # Fixup's rule: the branch's last layer starts at zero
        nn.init.zeros_(self.linear.bias)
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.scale * self.linear(self.act(h))


class Standardize(nn.Module):
    """A fixed first layer: (x − mean) / std per input feature, with the training set's statistics."""

    def __init__(self, mean: torch.Tensor | Sequence[float], std: torch.Tensor | Sequence[float]):
        super().__init__()
        mean, std = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
        if mean.shape != std.shape or mean.ndim != 1 or not (std > 0).all():
            raise ValueError(f"Standardize needs 1-D mean and std of the same length, std > 0; got shapes "
                             f"{tuple(mean.shape)} and {tuple(std.shape)}.")
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    @classmethod
    def fit(cls, X: torch.Tensor) -> "Standardize":
        """The layer that standardises with the mean and standard deviation of each column of X."""
        return cls(X.float().mean(0), X.float().std(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


# --- Implicit representation: each input coordinate through sin(α·x) at several frequencies --------
def _check_alphas(alphas) -> torch.Tensor:
    alphas = torch.as_tensor(alphas if isinstance(alphas, torch.Tensor) else list(alphas), dtype=torch.float32)
    if alphas.ndim != 1 or len(alphas) == 0:
        raise ValueError(f"alphas must be a non-empty list of numbers, got {alphas.tolist()!r}; "
                         "for example helpers.models.DEFAULT_ALPHAS.")
    return alphas


def sin_features(X: torch.Tensor | np.ndarray, alphas: Sequence[float] | torch.Tensor = DEFAULT_ALPHAS
                 ) -> torch.Tensor | np.ndarray:
    """Return sin(α·x) for every coordinate x and every α: (N, d) → (N, d·len(alphas)), same type as X."""
    is_numpy = isinstance(X, np.ndarray)
    x = torch.as_tensor(X, dtype=torch.float32) if is_numpy else X
    if x.ndim != 2:
        raise ValueError(f"sin_features expects a 2-D array (samples, coordinates), got shape {tuple(x.shape)}.")
    a = _check_alphas(alphas).to(device=x.device, dtype=x.dtype)
    # (N, d, 1) * (k,) → (N, d, k); flattening keeps each coordinate's k frequencies together:
    # columns [sin(α1·x1) … sin(αk·x1), sin(α1·x2) … sin(αk·x2), …].
    out = torch.sin(x.unsqueeze(-1) * a).reshape(x.shape[0], -1)
    return out.numpy() if is_numpy else out


class SinFeatures(nn.Module):
    """A fixed layer (no parameters) computing sin_features, so a model carries its own input transform."""

    def __init__(self, alphas=DEFAULT_ALPHAS):
        super().__init__()
        # A buffer, not a parameter: the frequencies are chosen, not learned, but move with .to(device).
        self.register_buffer("alphas", _check_alphas(alphas))

    @property
    def n_alphas(self) -> int:
        """Number of frequencies (output features per input coordinate)."""
        return len(self.alphas)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sin_features(x, self.alphas)

    def extra_repr(self) -> str:
        return f"alphas={[round(a, 3) for a in self.alphas.tolist()]}"


# --- CNNs for CIFAR-10 (and 28×28 grayscale) -------------------------------------------
def _side_after(input_size: int, *steps: str) -> int:
    """Side length of a square image after 'conv5' (k5, no padding), 'same' (k3 p1) and 'pool' (2×2) steps."""
    side = input_size
    for step in steps:
        side = {"conv5": side - 4, "same": side, "pool": side // 2}[step]
        if side < 1:
            raise ValueError(f"input_size={input_size} is too small for this network; use at least 16 pixels.")
    return side


class SmallNet(nn.Module):
    """conv 3→16 (k5), max-pool, fc 16·14·14→120→10 (for 32×32 inputs)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, input_size: int = 32):
        super().__init__()
        side = _side_after(input_size, "conv5", "pool")
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=5)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(16 * side * side, 120)
        self.fc2 = nn.Linear(120, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = x.flatten(1)  # keeps the batch dimension, unlike view(-1, n) which silently mixes samples
        return self.fc2(F.relu(self.fc1(x)))


class MediumNet(nn.Module):
    """conv 3→16 (k5), pool, conv 16→32 (k5), pool, fc 800→120→84→10 (for 32×32 inputs)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, input_size: int = 32):
        super().__init__()
        side = _side_after(input_size, "conv5", "pool", "conv5", "pool")
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=5)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=5)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(32 * side * side, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.flatten(1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class LargeNet(nn.Module):
    """conv 3→32→64 (k3 p1), pool, conv 64→128→128 (k3 p1), pool, fc 8192→512→128→10 (for 32×32 inputs)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10, input_size: int = 32):
        super().__init__()
        side = _side_after(input_size, "same", "same", "pool", "same", "same", "pool")
        self.conv1 = nn.Conv2d(in_channels, 32, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(64, 128, kernel_size=3, padding=1)
        self.conv4 = nn.Conv2d(128, 128, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(128 * side * side, 512)
        self.fc2 = nn.Linear(512, 128)
        self.fc3 = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv2(F.relu(self.conv1(x)))))
        x = self.pool(F.relu(self.conv4(F.relu(self.conv3(x)))))
        x = x.flatten(1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


# --- ResNet18 for transfer learning ------------------------------------------------------
class ResNetInput(nn.Module):
    """Fixed first layer: images in [0, 1] (1 or 3 channels, any size) → normalised 3×S×S ResNet input."""

    def __init__(self, image_size: int):
        super().__init__()
        if image_size < 16:
            raise ValueError(f"image_size must be at least 16 pixels for ResNet18; got {image_size}.")
        self.image_size = image_size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # grey → RGB: ImageNet filters expect three channels
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            # Upscaling on the fly keeps the data set small in memory (28×28) whatever size the network sees.
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"image_size={self.image_size}"


class PretrainedUnavailable(RuntimeError):
    """ImageNet weights were required but cannot be loaded here (offline and not cached, or download failed)."""


def imagenet_weights_path() -> Path:
    """Where torchvision keeps (or would keep) the ResNet18 ImageNet weights file."""
    from torchvision.models import ResNet18_Weights

    filename = ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def imagenet_weights_available() -> bool:
    """True when the ResNet18 ImageNet weights are cached, or may be downloaded (not offline)."""
    return imagenet_weights_path().is_file() or not config.offline()


def _imagenet_state_dict() -> dict[str, torch.Tensor]:
    """Load torchvision's ResNet18 ImageNet weights, or raise PretrainedUnavailable saying how to fix it.

    The file under TORCH_HOME may have been copied in by hand (the fix below says to), so it is trusted
    only after its sha256 starts with the hash prefix in torchvision's file name (resnet18-f37072fd.pth),
    and it is read with weights_only=True: tensors, never arbitrary pickled objects.
    """
    import hashlib
    import re

    from torchvision.models import ResNet18_Weights

    url = ResNet18_Weights.IMAGENET1K_V1.url
    path = imagenet_weights_path()
    prefix = re.search(r"-([a-f0-9]+)\.", path.name).group(1)
    fix = (f"Fix: on a machine with internet run `python -c \"import torchvision; "
           f"torchvision.models.resnet18(weights='IMAGENET1K_V1')\"` and copy the file to {path} "
           f"(set TORCH_HOME to use another cache folder), or unset KIT_OFFLINE; or train from scratch "
           f"(scratch_resnet18), or pass pretrained_resnet18 a state_dict you trained yourself.")
    if not path.is_file() and config.offline():
        raise PretrainedUnavailable(f"ResNet18 ImageNet weights are not cached at {path} and downloads are off "
                                    f"(KIT_OFFLINE=1). {fix}")
    try:
        if not path.is_file():  # torch.hub writes to a temp file, checks the hash, then moves it into place
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(path), hash_prefix=prefix, progress=False)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if not digest.startswith(prefix):
            raise ValueError(f"its sha256 starts with {digest[:len(prefix)]}, not {prefix} as its name promises "
                             "(a damaged or different file; delete it)")
        return store.load_torch(path)  # weights_only=True
    except Exception as err:  # no network, proxy, corrupt file: to the caller all mean "no weights here"
        raise PretrainedUnavailable(f"ResNet18 ImageNet weights could not be loaded ({type(err).__name__}: "
                                    f"{err}); expected at {path}. {fix}") from err


def _state_fits(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load ``state`` into ``model`` (strictly), or raise ValueError saying what does not fit."""
    hint = "pass the state_dict() of a torchvision ResNet18"
    try:
        model.load_state_dict(state)
    except RuntimeError as err:  # keys missing or unexpected, or the right keys with wrong shapes
        raise ValueError(f"state_dict does not fit ResNet18 ({hint}): {str(err)[:300]}") from err


def pretrained_resnet18(state_dict: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """torchvision's ResNet18 with pretrained weights: ImageNet's, or ``state_dict`` (a whole ResNet18's, head included).

    The pretraining head ``fc`` stays (1000 ImageNet classes, or as many as ``state_dict`` was trained on): replacing
    it, and deciding what trains, is the transfer learning (sheet 3, part 7). ImageNet weights raise
    PretrainedUnavailable, saying how to fix it, when they cannot be loaded here.
    """
    from torchvision.models import resnet18 as tv_resnet18

    if state_dict is None:
        state_dict = _imagenet_state_dict()
    if "fc.weight" not in state_dict:
        raise ValueError("state_dict does not fit ResNet18 (pass the state_dict() of a torchvision ResNet18): "
                         "it has no head fc.weight.")
    model = tv_resnet18(weights=None, num_classes=int(state_dict["fc.weight"].shape[0]))
    _state_fits(model, state_dict)
    return model


def scratch_resnet18(num_outputs: int = 1) -> nn.Module:
    """torchvision's ResNet18 with random weights and a head of ``num_outputs`` logits (1 for a binary task with BCE)."""
    from torchvision.models import resnet18 as tv_resnet18

    if num_outputs < 1:
        raise ValueError(f"num_outputs must be >= 1 (1 for binary with BCE); got {num_outputs}.")
    return tv_resnet18(weights=None, num_classes=num_outputs)


def with_input(model: nn.Module, image_size: int) -> nn.Sequential:
    """``nn.Sequential(ResNetInput(image_size), model)``: the model then takes images in [0, 1] of any size."""
    return nn.Sequential(ResNetInput(image_size), model)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (only those with requires_grad when ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)

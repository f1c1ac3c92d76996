"""Implicit representation: each input coordinate passed through sin(α·x) at several frequencies."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

# The sheet's frequencies: α = 0.1, 0.2, ..., 1.0 (rounded so 0.30000000000000004 never shows up in a table).
DEFAULT_ALPHAS: tuple[float, ...] = tuple(round(0.1 * k, 1) for k in range(1, 11))


def _check_alphas(alphas) -> torch.Tensor:
    alphas = torch.as_tensor(alphas if isinstance(alphas, torch.Tensor) else list(alphas), dtype=torch.float32)
    if alphas.ndim != 1 or len(alphas) == 0:
        raise ValueError(f"alphas must be a non-empty list of numbers, got {alphas.tolist()!r}; "
                         "for example helpers.features.DEFAULT_ALPHAS.")
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

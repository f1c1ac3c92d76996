"""Small synthetic data sets: 2-D classification toys and a 1-D regression curve."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .config import numpy_rng
from .data import Split, Splits

KINDS = ("moons", "circles", "spirals", "xor")


def _check_fractions(fractions) -> tuple[float, float, float]:
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three positive numbers (train, val, test) summing to 1, "
                         f"got {tuple(fractions)}.")
    return tuple(float(f) for f in fractions)


def _split_sizes(n: int, fractions) -> tuple[int, int, int]:
    """Split n into train/val/test counts; the test split takes the rounding remainder."""
    n_train, n_val = round(n * fractions[0]), round(n * fractions[1])
    if min(n_train, n_val, n - n_train - n_val) < 1:
        raise ValueError(f"n={n} is too small for fractions {tuple(fractions)}: every split needs a sample.")
    return n_train, n_val, n - n_train - n_val


def _standardize(parts: list[np.ndarray]) -> list[np.ndarray]:
    """Scale every part with the first (training) part's mean and std, so no test information leaks."""
    mean, std = parts[0].mean(axis=0), parts[0].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return [((p - mean) / std).astype(np.float32) for p in parts]


class Synthetic2D:
    """Seeded generator of 2-D two-class toy sets: "moons", "circles", "spirals", "xor"."""

    def __init__(self, kind: str = "moons", n: int = 1000, noise: float = 0.1, seed: int = 0):
        if kind not in KINDS:
            raise ValueError(f"Unknown synthetic data set {kind!r}; choose one of {', '.join(KINDS)}.")
        if n < 2:
            raise ValueError(f"n must be at least 2 (one sample per class), got {n}.")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}.")
        self.kind, self.n, self.noise, self.seed = kind, n, noise, seed

    def __repr__(self) -> str:
        return f"Synthetic2D(kind={self.kind!r}, n={self.n}, noise={self.noise}, seed={self.seed})"

    def generate(self) -> tuple[np.ndarray, np.ndarray]:
        """Return X (n, 2) float32 and y (n,) int64, in random order."""
        rng = numpy_rng(self.seed)
        y = rng.permutation(np.arange(self.n) % 2)
        X = getattr(self, f"_{self.kind}")(y, rng) + rng.normal(0.0, self.noise, size=(self.n, 2))
        return X.astype(np.float32), y.astype(np.int64)

    # Each shape maps labels (and random positions along the shape) to noise-free points.
    @staticmethod
    def _moons(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        t = rng.uniform(0.0, np.pi, size=len(y))
        upper = np.stack([np.cos(t), np.sin(t)], axis=1)
        lower = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1)
        return np.where(y[:, None] == 0, upper, lower)

    @staticmethod
    def _circles(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        t = rng.uniform(0.0, 2 * np.pi, size=len(y))
        radius = np.where(y == 0, 1.0, 0.5)
        return radius[:, None] * np.stack([np.cos(t), np.sin(t)], axis=1)

    @staticmethod
    def _spirals(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        # Two interleaved arms of 1.5 turns; the second is the first rotated by half a turn.
        t = np.sqrt(rng.uniform(0.0, 1.0, size=len(y))) * 3 * np.pi
        angle = t + np.pi * y
        return (t / (3 * np.pi))[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)

    @staticmethod
    def _xor(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        # Class 0 in quadrants I and III, class 1 in II and IV, points kept off the axes.
        magnitude = rng.uniform(0.1, 1.0, size=(len(y), 2))
        sign_x = rng.choice([-1.0, 1.0], size=len(y))
        sign_y = np.where(y == 0, sign_x, -sign_x)
        return magnitude * np.stack([sign_x, sign_y], axis=1)

    def splits(self, fractions: Sequence[float] = (0.6, 0.2, 0.2), standardize: bool = True) -> Splits:
        """Return train/val/test Splits (standardised with training statistics unless told otherwise)."""
        X, y = self.generate()
        sizes = _split_sizes(self.n, _check_fractions(fractions))
        bounds = np.cumsum(sizes)[:-1]
        xs, ys = np.split(X, bounds), np.split(y, bounds)
        if standardize:
            xs = _standardize(xs)
        parts = [Split(torch.from_numpy(np.ascontiguousarray(a)), torch.from_numpy(b)) for a, b in zip(xs, ys)]
        return Splits(*parts, classes=["0", "1"], name=self.kind)


def regression_curve(x: np.ndarray) -> np.ndarray:
    """The noise-free target of regression_1d: a wiggle on a slope."""
    return np.sin(2.0 * x) + 0.5 * x


def regression_1d(n: int = 100, noise: float = 0.1, seed: int = 0,
                  fractions: Sequence[float] = (0.35, 0.35, 0.30)) -> Splits:
    """Return a 1-D regression set, X (n, 1) and y (n, 1) float32, both standardised with training statistics."""
    sizes = _split_sizes(n, _check_fractions(fractions))
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}.")
    rng = numpy_rng(seed)
    x = rng.uniform(-2.0, 2.0, size=(n, 1))
    y = regression_curve(x) + rng.normal(0.0, noise, size=(n, 1))
    bounds = np.cumsum(sizes)[:-1]
    xs, ys = _standardize(np.split(x, bounds)), _standardize(np.split(y, bounds))
    parts = [Split(torch.from_numpy(a), torch.from_numpy(b)) for a, b in zip(xs, ys)]
    return Splits(*parts, classes=[], name="regression_1d")


def course_curve(x: np.ndarray) -> np.ndarray:
    """The noise-free target of course_regression_1d: a sine wave on a slope, 0.5 sin(3x) + x."""
    return 0.5 * np.sin(3.0 * x) + x


def course_regression_1d(n: int = 300, noise: float = 0.1, seed: int = 0) -> Splits:
    """The course's 1-D regression set: x evenly spaced on [-3, 3] in random order, y = 0.5 sin(3x) + x + noise.

    Split 35/35/30 in that random order (``int(0.35 n)`` and ``int(0.7 n)`` are the cut points, as in
    the course); x and y are both standardised with the training split's mean and (population) std.
    """
    if n < 10:
        raise ValueError(f"n must be at least 10 so that every split gets samples, got {n}.")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}.")
    rng = numpy_rng(seed)
    x = np.linspace(-3.0, 3.0, num=n)
    rng.shuffle(x)
    y = rng.normal(course_curve(x), noise)
    cuts = [int(0.35 * n), int(0.7 * n)]
    xs = _standardize([p.reshape(-1, 1) for p in np.split(x, cuts)])
    ys = _standardize([p.reshape(-1, 1) for p in np.split(y, cuts)])
    parts = [Split(torch.from_numpy(a), torch.from_numpy(b)) for a, b in zip(xs, ys)]
    return Splits(*parts, classes=[], name="course_regression_1d")

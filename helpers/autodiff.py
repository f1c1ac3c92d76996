"""A network of scalar autodiff nodes, as the course's sheet 1 builds it: initializers, a dense layer, conversions.

The node class is not here: it is the sheet's own ``Var`` (exercise 2b), and every function that makes
nodes takes it as an argument, so the networks of 2l run on the student's ``Var``::

    layer = DenseLayer(Var, 3, 2, "tanh", GlorotInitializer(seed=0))
    outputs = layer.forward(nparray_to_Var(x, Var)[0])

The kit ships no ``Var``, no backpropagation and none of what exercise 2l asks for (the network's
forward pass over all inputs, the squared loss, the gradient step): what ships to students holds no
answer to a graded question (tests/test_student_kit.py checks it). A ``Var`` here is anything with a
value ``v``, a ``grad``, ``+``, ``*`` and the activations it is asked for (``relu``, ``tanh``, ``sigmoid``).
"""
from __future__ import annotations

import contextlib
import gc
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

Node = Any  # an instance of the notebook's Var: v, grad, grad_fn and its operators


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a block builds or walks a graph of scalar nodes.

    A graph of nodes holds no reference cycles, so reference counting frees it; but the collector
    would rescan every live node again and again while a large graph is built (3-4x slower).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --- starting weights, as plain numbers (the layer wraps them in the notebook's Var) -------------
class Initializer:
    """Makes a layer's starting weights (an n_in x n_out array) and biases (n_out)."""

    def init_weights(self, n_in: int, n_out: int) -> np.ndarray:
        """Return the n_in x n_out starting weights."""
        raise NotImplementedError

    def init_bias(self, n_out: int) -> np.ndarray:
        """Return n_out starting biases (zeros unless the initializer says otherwise)."""
        return np.zeros(n_out)


def _rng(seed: int | None):
    # seed=None draws from numpy's global generator, so config.seed_everything makes it repeatable.
    return np.random if seed is None else np.random.default_rng(seed)


class NormalInitializer(Initializer):
    """Weights drawn from N(mean, std^2); biases zero (as in the course) or, with bias_std, N(0, bias_std^2)."""

    def __init__(self, mean: float = 0.0, std: float = 0.1, seed: int | None = None, bias_std: float = 0.0) -> None:
        if std < 0 or bias_std < 0:
            raise ValueError(f"std and bias_std must be >= 0, got std={std}, bias_std={bias_std}.")
        self.mean, self.std, self.bias_std, self.rng = mean, std, bias_std, _rng(seed)

    def init_weights(self, n_in: int, n_out: int) -> np.ndarray:
        """Return n_in x n_out normally distributed weights."""
        return self.rng.normal(self.mean, self.std, size=(n_in, n_out))

    def init_bias(self, n_out: int) -> np.ndarray:
        """Return n_out biases: zeros, or normal with std bias_std (spreads tanh units over the inputs)."""
        if self.bias_std == 0.0:
            return super().init_bias(n_out)
        return self.rng.normal(0.0, self.bias_std, size=n_out)


class ConstantInitializer(Initializer):
    """Every weight the same value, every bias the same value."""

    def __init__(self, weight: float = 1.0, bias: float = 0.0) -> None:
        self.weight, self.bias = float(weight), float(bias)

    def init_weights(self, n_in: int, n_out: int) -> np.ndarray:
        """Return n_in x n_out copies of the constant weight."""
        return np.full((n_in, n_out), self.weight)

    def init_bias(self, n_out: int) -> np.ndarray:
        """Return n_out copies of the constant bias."""
        return np.full(n_out, self.bias)


class GlorotInitializer(Initializer):
    """Glorot/Xavier: variance 2 / (n_in + n_out), normal or uniform; suits tanh and sigmoid."""

    def __init__(self, distribution: str = "normal", gain: float = 1.0, seed: int | None = None) -> None:
        if distribution not in ("normal", "uniform"):
            raise ValueError(f"distribution must be 'normal' or 'uniform', got {distribution!r}.")
        self.distribution, self.gain, self.rng = distribution, gain, _rng(seed)

    def _std(self, n_in: int, n_out: int) -> float:
        return self.gain * math.sqrt(2.0 / (n_in + n_out))

    def init_weights(self, n_in: int, n_out: int) -> np.ndarray:
        """Return n_in x n_out weights with the initializer's variance."""
        std = self._std(n_in, n_out)
        if self.distribution == "normal":
            return self.rng.normal(0.0, std, size=(n_in, n_out))
        a = math.sqrt(3.0) * std  # uniform on [-a, a] has variance a^2 / 3
        return self.rng.uniform(-a, a, size=(n_in, n_out))


class HeInitializer(GlorotInitializer):
    """He/Kaiming: variance 2 / n_in, normal or uniform; suits ReLU."""

    def _std(self, n_in: int, n_out: int) -> float:
        return self.gain * math.sqrt(2.0 / n_in)


# --- the layer ---------------------------------------------------------------------------------
def _identity(node: Node) -> Node:
    """No activation: the node itself (no new node, so the gradient passes through unchanged)."""
    return node


# Looked up on the node when the layer runs, so a Var needs only the activations its layers use.
_ACTIVATIONS: dict[str, Callable[[Node], Node]] = {
    "relu": lambda node: node.relu(), "tanh": lambda node: node.tanh(), "sigmoid": lambda node: node.sigmoid(),
    "identity": _identity, "linear": _identity,
}


class DenseLayer:
    """A fully connected layer of ``Var`` nodes: out_j = act_fn(bias_j + sum_i x_i * weights[i][j])."""

    def __init__(self, Var: type, n_in: int, n_out: int, act_fn: Callable[[Node], Node] | str = "relu",
                 initializer: Initializer | None = None) -> None:
        if not isinstance(Var, type):
            raise ValueError(f"DenseLayer's first argument is the Var class its nodes are made of (the one written "
                             f"in exercise 2b), got {type(Var).__name__} {Var!r}: DenseLayer(Var, n_in, n_out, ...).")
        if n_in < 1 or n_out < 1:
            raise ValueError(f"DenseLayer needs n_in >= 1 and n_out >= 1, got n_in={n_in}, n_out={n_out}.")
        if isinstance(act_fn, str):
            if act_fn not in _ACTIVATIONS:
                raise ValueError(f"Unknown activation {act_fn!r}; choose one of {', '.join(_ACTIVATIONS)} "
                                 "or pass a function of one node such as Var.tanh.")
            act_fn = _ACTIVATIONS[act_fn]
        initializer = initializer if initializer is not None else NormalInitializer()
        w = initializer.init_weights(n_in, n_out)  # weights first, then biases: the course's order of draws
        self.weights = [[Var(float(w[i, j])) for j in range(n_out)] for i in range(n_in)]
        self.bias = [Var(float(b)) for b in initializer.init_bias(n_out)]
        self.act_fn = act_fn

    def __repr__(self) -> str:
        act = getattr(self.act_fn, "__name__", self.act_fn)
        return f"DenseLayer(n_in={len(self.weights)}, n_out={len(self.bias)}, act_fn={act})"

    def parameters(self) -> list[Node]:
        """All weights (row by row) followed by the biases."""
        return [w for row in self.weights for w in row] + list(self.bias)

    def forward(self, single_input: Sequence[Node | float]) -> list[Node]:
        """Outputs of the layer for one input vector."""
        if len(single_input) != len(self.weights):
            raise ValueError(f"The layer expects {len(self.weights)} inputs, got {len(single_input)}.")
        out = []
        for j, b in enumerate(self.bias):
            node = b  # start from the bias instead of Var(0.0): one node fewer per output
            for x_i, w_i in zip(single_input, self.weights):
                node = node + x_i * w_i[j]
            out.append(self.act_fn(node))
        return out


def parameters(network: Sequence[DenseLayer]) -> list[Node]:
    """Every parameter of every layer, layer by layer."""
    return [p for layer in network for p in layer.parameters()]


def nparray_to_Var(x: np.ndarray, Var: type) -> list[list[Node]]:
    """A 1-D array (one feature per row) or 2-D array as nested lists of ``Var``, one list per data point."""
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        return [[Var(float(v))] for v in x]
    if x.ndim == 2:
        return [[Var(float(v)) for v in row] for row in x]
    raise ValueError(f"nparray_to_Var expects a 1-D or 2-D array, got shape {x.shape}.")


def Var_to_nparray(x: Sequence[Sequence[Node]]) -> np.ndarray:
    """Nested lists of nodes (one list per data point) as a 2-D float array of their values."""
    return np.array([[v.v for v in row] for row in x], dtype=float).reshape(len(x), -1)

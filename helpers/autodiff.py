"""Reverse-mode automatic differentiation on scalars: the course's ``Var`` and a small network built on it.

A ``Var`` holds a value ``v``, a gradient ``grad`` and ``grad_fn``: a function returning the
list of ``(parent, local_derivative)`` pairs of the operation that produced it. ``backward()``
applies the chain rule from the output back to the leaves::

    a, b = Var(3.0, name="a"), Var(5.0, name="b")
    f = a * b
    f.backward()          # a.grad == 5.0, b.grad == 3.0

Compared with the course's version (same public API): plain numbers work on either side of an
operator; ``backprop`` visits every node once, in reverse topological order, without recursion
(the course's path-by-path recursion is exponential on shared subgraphs and overflows the
stack on long chains); ``__slots__`` keeps the nodes small and fast.
"""
from __future__ import annotations

import contextlib
import gc
import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a block builds or walks a Var graph.

    A graph of Vars holds no reference cycles, so reference counting frees it; but the collector
    would rescan every live node again and again while a large graph is built (3-4x slower).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _leaf() -> list:
    """grad_fn of a leaf: it has no parents."""
    return []


def _as_float(val: object) -> float:
    """Turn a plain number (int, float, numpy or 0-d tensor scalar) into a float, or raise."""
    if isinstance(val, Var):
        raise ValueError(f"Var() needs a plain number, got the Var {val!r}; use it directly instead of wrapping it.")
    if isinstance(val, numbers.Real) or (hasattr(val, "item") and getattr(val, "ndim", 1) == 0):
        out = float(val)
        if isinstance(out, float):
            return out
    raise ValueError(f"Var() needs a real number (int or float), got {type(val).__name__} {val!r}.")


def _number(other: object) -> float | None:
    """Return ``other`` as a float when it is a plain real number, else None."""
    if isinstance(other, (float, int)) or isinstance(other, numbers.Real):
        return float(other)
    return None


def _power_derivative(x: float, p: float) -> float:
    """d(x**p)/dx, inf instead of OverflowError when a run diverges."""
    try:
        return p * x ** (p - 1)
    except OverflowError:
        return math.copysign(math.inf, p * x) if (p - 1) == int(p - 1) and int(p - 1) % 2 else math.copysign(math.inf, p)


class Var:
    """A scalar that remembers how it was computed, so gradients can flow back to its inputs."""

    # _mark, _pairs and _adj are scratch space for backprop's traversal.
    __slots__ = ("v", "grad", "grad_fn", "name", "op", "_mark", "_pairs", "_adj")

    def __init__(self, val: float, grad_fn: Callable[[], list] = _leaf, name: str | None = None,
                 op: str | None = None) -> None:
        # Results of our own operations are already floats; only check what users pass in.
        self.v = val if type(val) is float else _as_float(val)
        self.grad = 0.0
        self.grad_fn = grad_fn
        self.name = name  # optional label, used only by the graph drawing
        self.op = op      # the operation that produced this node, for the drawing
        self._mark = None

    # --- the chain rule -----------------------------------------------------------
    def backprop(self, bp: float) -> None:
        """Add ``bp`` times d(self)/d(node) to the ``grad`` of every node this Var depends on."""
        with gc_paused():
            order = _topological_order(self)  # also sets each node's _pairs and _adj = 0.0
            # Adjoints of this call are collected in _adj, apart from .grad, so gradients of
            # earlier calls are kept (they accumulate) but never pushed back a second time.
            self._adj = float(bp)
            for node in reversed(order):
                g = node._adj
                node.grad += g
                for parent, local in node._pairs:
                    parent._adj += local * g
                node._pairs = None  # drop the pairs: the graph should not double in memory

    def backward(self) -> None:
        """Backpropagate from this Var with seed 1.0 (gradients accumulate over calls)."""
        self.backprop(1.0)

    def __repr__(self) -> str:
        return "Var(v=%.4f, grad=%.4f)" % (self.v, self.grad)

    # --- arithmetic: other may be a Var or a plain number ----------------------------
    # Each grad_fn is a lambda computing the local derivatives when backprop asks for them.
    # It takes its inputs as default arguments (s=self, o=other) rather than as a closure:
    # same behaviour, but two objects fewer per node for Python's garbage collector to scan,
    # which makes building a large graph about a quarter faster.
    def __add__(self, other: Var | float) -> Var:
        if isinstance(other, Var):
            return Var(self.v + other.v, lambda s=self, o=other: [(s, 1.0), (o, 1.0)], None, "+")
        c = _number(other)
        if c is None:
            return NotImplemented
        return Var(self.v + c, lambda s=self: [(s, 1.0)], None, "+")

    __radd__ = __add__

    def __sub__(self, other: Var | float) -> Var:
        if isinstance(other, Var):
            return Var(self.v - other.v, lambda s=self, o=other: [(s, 1.0), (o, -1.0)], None, "-")
        c = _number(other)
        if c is None:
            return NotImplemented
        return Var(self.v - c, lambda s=self: [(s, 1.0)], None, "-")

    def __rsub__(self, other: float) -> Var:
        c = _number(other)
        if c is None:
            return NotImplemented
        return Var(c - self.v, lambda s=self: [(s, -1.0)], None, "-")

    def __mul__(self, other: Var | float) -> Var:
        if isinstance(other, Var):
            return Var(self.v * other.v, lambda s=self, o=other: [(s, o.v), (o, s.v)], None, "*")
        c = _number(other)
        if c is None:
            return NotImplemented
        return Var(self.v * c, lambda s=self, c=c: [(s, c)], None, "*")

    __rmul__ = __mul__

    def __truediv__(self, other: Var | float) -> Var:
        if isinstance(other, Var):
            return Var(self.v / other.v,
                       lambda s=self, o=other: [(s, 1.0 / o.v), (o, -s.v / (o.v * o.v))], None, "/")
        c = _number(other)
        if c is None:
            return NotImplemented
        return Var(self.v / c, lambda s=self, c=c: [(s, 1.0 / c)], None, "/")

    def __rtruediv__(self, other: float) -> Var:
        c = _number(other)
        if c is None:
            return NotImplemented
        return Var(c / self.v, lambda s=self, c=c: [(s, -c / (s.v * s.v))], None, "/")

    def __pow__(self, power: float) -> Var:
        p = _number(power)
        if p is None:
            raise ValueError(f"Var ** p needs a plain number p (int or float), got {type(power).__name__}; "
                             "for x ** y with y a Var write (y * x.log()).exp().")
        try:
            y = self.v ** p
        except OverflowError:  # a diverging training run: give inf, like numpy and torch
            y = math.copysign(math.inf, self.v) if p == int(p) and int(p) % 2 else math.inf
        return Var(y, lambda s=self, p=p: [(s, _power_derivative(s.v, p))], None, f"**{power:g}")

    def __neg__(self) -> Var:
        return Var(-self.v, lambda s=self: [(s, -1.0)], None, "neg")

    # --- functions ------------------------------------------------------------------
    def relu(self) -> Var:
        """max(0, x); the derivative at 0 is taken as 0."""
        return Var(self.v if self.v > 0.0 else 0.0, lambda s=self: [(s, 1.0 if s.v > 0.0 else 0.0)], None, "relu")

    def identity(self) -> Var:
        """x itself, as a new node (the 'no activation' of a layer)."""
        return Var(self.v, lambda s=self: [(s, 1.0)], None, "identity")

    def tanh(self) -> Var:
        """Hyperbolic tangent."""
        t = math.tanh(self.v)
        return Var(t, lambda s=self, t=t: [(s, 1.0 - t * t)], None, "tanh")

    def sigmoid(self) -> Var:
        """Logistic function 1 / (1 + exp(-x))."""
        # Two branches so exp never overflows for large |x|.
        if self.v >= 0.0:
            y = 1.0 / (1.0 + math.exp(-self.v))
        else:
            e = math.exp(self.v)
            y = e / (1.0 + e)
        return Var(y, lambda s=self, y=y: [(s, y * (1.0 - y))], None, "sigmoid")

    def exp(self) -> Var:
        """Exponential (inf on overflow, like numpy and torch)."""
        try:
            e = math.exp(self.v)
        except OverflowError:
            e = math.inf
        return Var(e, lambda s=self, e=e: [(s, e)], None, "exp")

    def log(self) -> Var:
        """Natural logarithm; needs a positive value."""
        if self.v <= 0.0:
            raise ValueError(f"log needs a positive value, got {self.v!r}; "
                             "check the input (for a loss, use a log-sum-exp form such as cross_entropy_loss).")
        return Var(math.log(self.v), lambda s=self: [(s, 1.0 / s.v)], None, "log")


def _topological_order(root: Var) -> list[Var]:
    """Nodes root depends on, inputs first and root last; sets each node's _pairs and _adj.

    Iterative depth-first search, so long chains do not hit the recursion limit; each
    node's grad_fn is called exactly once. A node is marked `expanded` when its parents are
    pushed and `done` once they are all in `order`; fresh marks per call, so marks left by
    an earlier call never count.
    """
    expanded, done = object(), object()
    order: list[Var] = []
    stack = [root]
    while stack:
        node = stack.pop()
        mark = node._mark
        if mark is done:
            continue  # reached again through another path
        if mark is expanded:
            node._mark = done  # its parents were pushed above it, so they are all in order now
            order.append(node)
            continue
        node._mark = expanded
        node._adj = 0.0
        node._pairs = pairs = node.grad_fn()
        stack.append(node)
        for parent, _ in pairs:
            if parent._mark is not expanded and parent._mark is not done:
                stack.append(parent)
    return order


def topological_order(root: Var) -> list[Var]:
    """Every Var that ``root`` depends on (itself included), each after all of its parents."""
    order = _topological_order(root)
    for node in order:
        node._pairs = None
    return order


def zero_grad(vars: Var | Iterable) -> None:
    """Set ``grad`` to 0.0 for a Var or every Var in a (nested) collection."""
    stack = [vars]
    while stack:
        item = stack.pop()
        if isinstance(item, Var):
            item.grad = 0.0
        elif isinstance(item, Iterable) and not isinstance(item, (str, bytes)):
            stack.extend(item)
        else:
            raise ValueError(f"zero_grad expects Vars or (nested) lists of Vars, got {type(item).__name__}.")


# --- a neural network on Var, as in the course ---------------------------------------
class Initializer:
    """Makes a layer's starting weights (n_in x n_out nested lists of Var) and biases."""

    def init_weights(self, n_in: int, n_out: int) -> list[list[Var]]:
        """Return the n_in x n_out weight matrix as nested lists of Var."""
        raise NotImplementedError

    def init_bias(self, n_out: int) -> list[Var]:
        """Return n_out biases (zeros unless the initializer says otherwise)."""
        return [Var(0.0) for _ in range(n_out)]


def _rng(seed: int | None):
    # seed=None draws from numpy's global generator, so config.seed_everything makes it repeatable.
    return np.random if seed is None else np.random.default_rng(seed)


class NormalInitializer(Initializer):
    """Weights drawn from N(mean, std^2); biases zero (as in the course) or, with bias_std, N(0, bias_std^2)."""

    def __init__(self, mean: float = 0.0, std: float = 0.1, seed: int | None = None, bias_std: float = 0.0) -> None:
        if std < 0 or bias_std < 0:
            raise ValueError(f"std and bias_std must be >= 0, got std={std}, bias_std={bias_std}.")
        self.mean, self.std, self.bias_std, self.rng = mean, std, bias_std, _rng(seed)

    def init_weights(self, n_in: int, n_out: int) -> list[list[Var]]:
        """Return n_in x n_out normally distributed weights."""
        w = self.rng.normal(self.mean, self.std, size=(n_in, n_out))
        return [[Var(float(w[i, j])) for j in range(n_out)] for i in range(n_in)]

    def init_bias(self, n_out: int) -> list[Var]:
        """Return n_out biases: zeros, or normal with std bias_std (spreads tanh units over the inputs)."""
        if self.bias_std == 0.0:
            return super().init_bias(n_out)
        return [Var(float(b)) for b in self.rng.normal(0.0, self.bias_std, size=n_out)]


class ConstantInitializer(Initializer):
    """Every weight the same value, every bias the same value."""

    def __init__(self, weight: float = 1.0, bias: float = 0.0) -> None:
        self.weight, self.bias = float(weight), float(bias)

    def init_weights(self, n_in: int, n_out: int) -> list[list[Var]]:
        """Return n_in x n_out copies of the constant weight."""
        return [[Var(self.weight) for _ in range(n_out)] for _ in range(n_in)]

    def init_bias(self, n_out: int) -> list[Var]:
        """Return n_out copies of the constant bias."""
        return [Var(self.bias) for _ in range(n_out)]


class GlorotInitializer(Initializer):
    """Glorot/Xavier: variance 2 / (n_in + n_out), normal or uniform; suits tanh and sigmoid."""

    def __init__(self, distribution: str = "normal", gain: float = 1.0, seed: int | None = None) -> None:
        if distribution not in ("normal", "uniform"):
            raise ValueError(f"distribution must be 'normal' or 'uniform', got {distribution!r}.")
        self.distribution, self.gain, self.rng = distribution, gain, _rng(seed)

    def _std(self, n_in: int, n_out: int) -> float:
        return self.gain * math.sqrt(2.0 / (n_in + n_out))

    def init_weights(self, n_in: int, n_out: int) -> list[list[Var]]:
        """Return n_in x n_out weights with the initializer's variance."""
        std = self._std(n_in, n_out)
        if self.distribution == "normal":
            w = self.rng.normal(0.0, std, size=(n_in, n_out))
        else:  # uniform on [-a, a] has variance a^2 / 3
            a = math.sqrt(3.0) * std
            w = self.rng.uniform(-a, a, size=(n_in, n_out))
        return [[Var(float(w[i, j])) for j in range(n_out)] for i in range(n_in)]


class HeInitializer(GlorotInitializer):
    """He/Kaiming: variance 2 / n_in, normal or uniform; suits ReLU."""

    def _std(self, n_in: int, n_out: int) -> float:
        return self.gain * math.sqrt(2.0 / n_in)


_ACTIVATIONS = {"relu": Var.relu, "identity": Var.identity, "linear": Var.identity, "tanh": Var.tanh,
                "sigmoid": Var.sigmoid}


class DenseLayer:
    """A fully connected layer: out_j = act_fn(sum_i x_i * weights[i][j] + bias[j])."""

    def __init__(self, n_in: int, n_out: int, act_fn: Callable[[Var], Var] | str = Var.relu,
                 initializer: Initializer | None = None) -> None:
        if n_in < 1 or n_out < 1:
            raise ValueError(f"DenseLayer needs n_in >= 1 and n_out >= 1, got n_in={n_in}, n_out={n_out}.")
        if isinstance(act_fn, str):
            if act_fn not in _ACTIVATIONS:
                raise ValueError(f"Unknown activation {act_fn!r}; choose one of {', '.join(_ACTIVATIONS)} "
                                 "or pass a function such as Var.relu.")
            act_fn = _ACTIVATIONS[act_fn]
        initializer = initializer if initializer is not None else NormalInitializer()
        self.weights = initializer.init_weights(n_in, n_out)
        self.bias = initializer.init_bias(n_out)
        self.act_fn = act_fn

    def __repr__(self) -> str:
        return f"DenseLayer(n_in={len(self.weights)}, n_out={len(self.bias)}, act_fn={getattr(self.act_fn, '__name__', self.act_fn)})"

    def parameters(self) -> list[Var]:
        """All weights (row by row) followed by the biases."""
        return [w for row in self.weights for w in row] + list(self.bias)

    def forward(self, single_input: Sequence[Var | float]) -> list[Var]:
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


def forward(inputs: Sequence[Sequence[Var | float]], network: Sequence[DenseLayer]) -> list[list[Var]]:
    """Network outputs for every input vector (a list of lists)."""
    outputs = []
    with gc_paused():
        for x in inputs:
            for layer in network:
                x = layer.forward(x)
            outputs.append(x)
    return outputs


def _check_same_shape(t: Sequence, y: Sequence, what: str) -> None:
    if len(t) != len(y):
        raise ValueError(f"{what}: {len(t)} targets but {len(y)} outputs; pass one target vector per input.")


def squared_loss(t: Sequence[Sequence[Var | float]], y: Sequence[Sequence[Var]]) -> Var:
    """Sum over data points and outputs of (t - y)^2 (a sum, as in the course, not a mean)."""
    _check_same_shape(t, y, "squared_loss")
    loss = 0.0
    with gc_paused():
        for t_n, y_n in zip(t, y):
            _check_same_shape(t_n, y_n, "squared_loss")
            for t_i, y_i in zip(t_n, y_n):
                loss = (t_i - y_i) ** 2 + loss
    return loss if isinstance(loss, Var) else Var(loss)


def cross_entropy_loss(t: Sequence[Sequence[Var | float]], h: Sequence[Sequence[Var]]) -> Var:
    """Sum over data points of -sum_k t_k log softmax(h)_k, with t one-hot (or probabilities) and h logits."""
    _check_same_shape(t, h, "cross_entropy_loss")
    loss = 0.0
    for t_n, h_n in zip(t, h):
        _check_same_shape(t_n, h_n, "cross_entropy_loss")
        # log softmax(h)_k = h_k - logsumexp(h); subtracting the largest logit (a constant)
        # keeps exp from overflowing without changing the result.
        m = max(h_k.v for h_k in h_n)
        log_sum_exp = sum((h_k - m).exp() for h_k in h_n).log() + m
        for t_k, h_k in zip(t_n, h_n):
            t_k = t_k.v if isinstance(t_k, Var) else float(t_k)
            if t_k != 0.0:
                loss = loss + t_k * (log_sum_exp - h_k)
    return loss if isinstance(loss, Var) else Var(loss)


def parameters(network: Sequence[DenseLayer]) -> list[Var]:
    """Every parameter of every layer, layer by layer."""
    return [p for layer in network for p in layer.parameters()]


def update_parameters(params: Iterable[Var], learning_rate: float = 0.01) -> None:
    """One gradient-descent step: v <- v - learning_rate * grad."""
    for p in params:
        p.v -= learning_rate * p.grad


def zero_gradients(params: Iterable[Var]) -> None:
    """Set every parameter's grad to 0.0 (call before each backward, gradients accumulate)."""
    for p in params:
        p.grad = 0.0


def nparray_to_Var(x: np.ndarray) -> list[list[Var]]:
    """A 1-D array (one feature per row) or 2-D array as nested lists of Var, one list per data point."""
    x = np.asarray(x, dtype=float)
    if x.ndim == 1:
        return [[Var(float(v))] for v in x]
    if x.ndim == 2:
        return [[Var(float(v)) for v in row] for row in x]
    raise ValueError(f"nparray_to_Var expects a 1-D or 2-D array, got shape {x.shape}.")


def Var_to_nparray(x: Sequence[Sequence[Var]]) -> np.ndarray:
    """Nested lists of Var (one list per data point) as a 2-D float array of their values."""
    return np.array([[v.v for v in row] for row in x], dtype=float).reshape(len(x), -1)

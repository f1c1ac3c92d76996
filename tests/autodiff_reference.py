"""The kit's own reference for sheet 1's graded exercises 2b and 2l: a fast ``Var`` and the network's functions.

This is test code, not kit code: it lives under tests/ so that it never ships to students (the student kit
holds no answer to a graded question; tests/test_student_kit.py checks it). The kit's tests use it to
exercise ``helpers.autodiff``'s layers and ``helpers.autodiff_plot``'s drawing, and benchmarks/autodiff.py
times it against micrograd. The master notebook's own solution is simpler; both pass the sheet's tests.

Compared with the course's version (same public API): plain numbers work on either side of an
operator; ``backprop`` visits every node once, in reverse topological order, without recursion
(the course's path-by-path recursion is exponential on shared subgraphs and overflows the
stack on long chains); ``__slots__`` keeps the nodes small and fast.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Sequence

from helpers.autodiff import DenseLayer, gc_paused

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


def update_parameters(params: Iterable[Var], learning_rate: float = 0.01) -> None:
    """One gradient-descent step: v <- v - learning_rate * grad."""
    for p in params:
        p.v -= learning_rate * p.grad


def zero_gradients(params: Iterable[Var]) -> None:
    """Set every parameter's grad to 0.0 (call before each backward, gradients accumulate)."""
    for p in params:
        p.grad = 0.0

"""The kit's network on Var (helpers.autodiff) and its drawing, on the tests' reference Var (tests/autodiff_reference.py).

The reference Var is checked too (against torch and finite differences, the course behaviours): the kit's
own tests stand on it, and benchmarks/autodiff.py times it."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from helpers.autodiff import (ConstantInitializer, DenseLayer, GlorotInitializer, HeInitializer, NormalInitializer,
                              Var_to_nparray, nparray_to_Var, parameters)
from helpers.autodiff_plot import draw_graph
from tests.autodiff_reference import (Var, cross_entropy_loss, forward, squared_loss, topological_order,
                                      update_parameters, zero_grad, zero_gradients)


def _t(x: float) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64, requires_grad=True)


# --- the course's examples and behaviours ------------------------------------------
def test_course_examples():
    a, b = Var(3.0), Var(5.0)
    f = a * b
    f.backward()
    assert (a.grad, b.grad, f.v) == (5.0, 3.0, 15.0)

    a, b, d = Var(3.0), Var(5.0), Var(9.0)
    f = a * b + a * d
    f.backward()
    assert (a.grad, b.grad, d.grad, f.v) == (14.0, 3.0, 3.0, 42.0)
    assert repr(a) == "Var(v=3.0000, grad=14.0000)"


def test_gradients_accumulate_and_backprop_minus_one_undoes():
    a, b = Var(3.0), Var(5.0)
    f = a * b + a
    f.backward()
    f.backward()
    assert (a.grad, b.grad, f.grad) == (12.0, 6.0, 2.0)
    f.backprop(-1.0)
    assert (a.grad, b.grad) == (6.0, 3.0)
    f.backprop(-1.0)
    assert (a.grad, b.grad, f.grad) == (0.0, 0.0, 0.0)


def test_plain_numbers_on_either_side():
    x = Var(2)  # an int is accepted and stored as float
    assert isinstance(x.v, float)
    ys = [2 * x, x * 2, x + 1, 1 + x, x - 1, 1 - x, x / 4, 4 / x, -x, x ** 3, sum([x, x, x])]
    values = [4.0, 4.0, 3.0, 3.0, 1.0, -1.0, 0.5, 2.0, -2.0, 8.0, 6.0]
    grads = [2.0, 2.0, 1.0, 1.0, 1.0, -1.0, 0.25, -1.0, -1.0, 12.0, 3.0]
    for y, value, grad in zip(ys, values, grads):
        zero_grad(x)
        y.backward()
        assert y.v == pytest.approx(value) and x.grad == pytest.approx(grad)
    assert Var(np.float32(1.5)).v == 1.5 and Var(np.int64(2)).v == 2.0


@pytest.mark.parametrize("bad", ["3", None, [1.0], 1 + 2j])
def test_bad_values_raise_value_error(bad):
    with pytest.raises(ValueError, match="real number"):
        Var(bad)


def test_bad_operations_raise_clear_errors():
    x = Var(2.0)
    with pytest.raises(ValueError, match="plain number"):
        x ** Var(2.0)
    with pytest.raises(ValueError, match="positive"):
        Var(-1.0).log()
    with pytest.raises(TypeError):
        x + "a"
    with pytest.raises(ValueError, match="expects 3 inputs"):
        DenseLayer(Var, 3, 2, Var.relu).forward([Var(1.0)])
    with pytest.raises(ValueError, match="Unknown activation"):
        DenseLayer(Var, 3, 2, "swish")


# --- every operation against torch (float64) ----------------------------------------
UNARY = {
    "relu": (lambda x: x.relu(), torch.relu),
    "identity": (lambda x: x.identity(), lambda x: x * 1.0),
    "tanh": (lambda x: x.tanh(), torch.tanh),
    "sigmoid": (lambda x: x.sigmoid(), torch.sigmoid),
    "exp": (lambda x: x.exp(), torch.exp),
    "log": (lambda x: x.log(), torch.log),
    "neg": (lambda x: -x, lambda x: -x),
    "pow2": (lambda x: x ** 2, lambda x: x ** 2),
    "pow-1.5": (lambda x: x ** -1.5, lambda x: x ** -1.5),
    "pow0.5": (lambda x: x ** 0.5, lambda x: x ** 0.5),
}


@pytest.mark.parametrize("op", sorted(UNARY))
@pytest.mark.parametrize("value", [0.3, 1.7, -2.2, 40.0, -40.0])
def test_unary_ops_match_torch(op, value):
    if op in ("log", "pow-1.5", "pow0.5") and value <= 0:
        value = -value
    ours, theirs = UNARY[op]
    x, tx = Var(value), _t(value)
    y, ty = ours(x), theirs(tx)
    y.backward()
    ty.backward()
    assert y.v == pytest.approx(ty.item(), rel=1e-12, abs=1e-300)
    assert x.grad == pytest.approx(tx.grad.item(), rel=1e-9, abs=1e-12)


BINARY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}


@pytest.mark.parametrize("op", sorted(BINARY))
@pytest.mark.parametrize("kind", ["var-var", "var-number", "number-var", "same-var"])
def test_binary_ops_match_torch(op, kind):
    f = BINARY[op]
    a, b, ta, tb = Var(1.3), Var(-0.7), _t(1.3), _t(-0.7)
    if kind == "var-var":
        y, ty = f(a, b), f(ta, tb)
    elif kind == "var-number":
        y, ty = f(a, -0.7), f(ta, -0.7)
    elif kind == "number-var":
        y, ty = f(1.3, b), f(1.3, tb)
    else:
        y, ty = f(a, a), f(ta, ta)
    y.backward()
    ty.backward()
    assert y.v == pytest.approx(ty.item(), rel=1e-12)
    for ours, theirs in ((a, ta), (b, tb)):
        expected = theirs.grad.item() if theirs.grad is not None else 0.0
        assert ours.grad == pytest.approx(expected, rel=1e-12)


def _random_expression(rng: random.Random, leaves: list, lib: str, n_ops: int):
    """Build the same random expression DAG (shared subexpressions included) from Vars or tensors."""
    nodes = list(leaves)
    for _ in range(n_ops):
        op = rng.choice(["add", "sub", "mul", "div", "const", "tanh", "sigmoid", "exp", "relu", "pow", "neg"])
        a, b = rng.choice(nodes), rng.choice(nodes)  # reusing nodes makes shared subgraphs
        c = rng.uniform(-2, 2)
        if op == "add":
            out = a + b
        elif op == "sub":
            out = a - b
        elif op == "mul":
            out = a * b
        elif op == "div":
            out = a / (b * b + 1.0)
        elif op == "const":
            out = c * a + 1
        elif op == "pow":
            out = (a * a + 0.5) ** 1.5
        elif op == "neg":
            out = -a
        elif lib == "var":
            out = getattr(a, op)()
        else:
            out = getattr(torch, op)(a)
        # tanh keeps values bounded so exp cannot overflow in a long expression
        nodes.append(out.tanh() if lib == "var" else torch.tanh(out))
    return sum(nodes[len(leaves):]) if lib == "var" else torch.stack(nodes[len(leaves):]).sum()


@pytest.mark.parametrize("seed", range(8))
def test_random_expressions_match_torch(seed):
    values = [random.Random(seed).uniform(-1.5, 1.5) for _ in range(4)]
    xs, txs = [Var(v) for v in values], [_t(v) for v in values]
    y = _random_expression(random.Random(seed), xs, "var", 40)
    ty = _random_expression(random.Random(seed), txs, "torch", 40)
    y.backward()
    ty.backward()
    assert y.v == pytest.approx(ty.item(), rel=1e-10)
    for x, tx in zip(xs, txs):
        assert x.grad == pytest.approx(tx.grad.item() if tx.grad is not None else 0.0, rel=1e-8, abs=1e-12)


# --- scale: long chains and shared subgraphs ----------------------------------------
def test_chain_of_100k_nodes():
    x = Var(1.0)
    y = x
    for _ in range(50_000):
        y = y * 1.00001 + 0.5  # two nodes per step
    assert len(topological_order(y)) == 100_001
    y.backward()
    assert x.grad == pytest.approx(1.00001 ** 50_000, rel=1e-9)


def test_shared_subgraph_each_grad_fn_runs_once():
    calls: dict[int, int] = {}

    def counted(node: Var) -> Var:
        inner = node.grad_fn

        def grad_fn():
            calls[id(node)] = calls.get(id(node), 0) + 1
            return inner()
        node.grad_fn = grad_fn
        return node

    x = counted(Var(1.0))
    y = x
    for _ in range(40):  # 2**40 paths from the output to x: path-by-path recursion never finishes
        y = counted(y + y)
    y.backward()
    assert x.grad == 2.0 ** 40
    assert len(calls) == 41 and set(calls.values()) == {1}


def test_zero_grad_over_nested_collections():
    vs = [Var(1.0), [Var(2.0), (Var(3.0),)]]
    f = vs[0] * vs[1][0] * vs[1][1][0]
    f.backward()
    zero_grad(vs)
    assert [vs[0].grad, vs[1][0].grad, vs[1][1][0].grad] == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="zero_grad"):
        zero_grad([Var(1.0), 3.0])


# --- the network on Var ----------------------------------------------------------------
def test_dense_layer_matches_torch_linear():
    layer = DenseLayer(Var, 3, 2, Var.tanh, NormalInitializer(std=0.5, seed=0))
    x = [0.5, -1.0, 2.0]
    out = layer.forward([Var(v) for v in x])
    sum(o * (k + 1) for k, o in enumerate(out)).backward()

    w = torch.tensor(Var_to_nparray(layer.weights), requires_grad=True)
    b = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    t_out = torch.tanh(torch.tensor(x, dtype=torch.float64) @ w + b)
    (t_out * torch.tensor([1.0, 2.0], dtype=torch.float64)).sum().backward()
    assert [o.v for o in out] == pytest.approx(t_out.tolist(), rel=1e-12)
    assert np.allclose([[p.grad for p in row] for row in layer.weights], w.grad.numpy())
    assert np.allclose([p.grad for p in layer.bias], b.grad.numpy())
    assert len(layer.parameters()) == 3 * 2 + 2


def _numeric_grad(loss_fn, p: Var, eps: float = 1e-6) -> float:
    old = p.v
    p.v = old + eps
    up = loss_fn().v
    p.v = old - eps
    down = loss_fn().v
    p.v = old
    return (up - down) / (2 * eps)


@pytest.mark.parametrize("loss_name", ["squared", "cross_entropy"])
def test_network_gradients_match_finite_differences(loss_name):
    rng = np.random.default_rng(1)
    X = nparray_to_Var(rng.normal(size=(5, 3)), Var)
    net = [DenseLayer(Var, 3, 4, Var.tanh, GlorotInitializer(seed=1)), DenseLayer(Var, 4, 2, Var.identity, HeInitializer(seed=2))]
    if loss_name == "squared":
        T = nparray_to_Var(rng.normal(size=(5, 2)), Var)
        loss_fn = lambda: squared_loss(T, forward(X, net))  # noqa: E731
    else:
        T = [[1.0, 0.0] if k % 2 else [0.0, 1.0] for k in range(5)]
        loss_fn = lambda: cross_entropy_loss(T, forward(X, net))  # noqa: E731
    params = parameters(net)
    zero_gradients(params)
    loss_fn().backward()
    for p in params:
        assert p.grad == pytest.approx(_numeric_grad(loss_fn, p), rel=1e-5, abs=1e-7)


def test_cross_entropy_is_stable_and_matches_torch():
    logits = [[1000.0, -1000.0, 3.0], [0.5, 0.2, -0.1]]
    targets = [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    h = [[Var(v) for v in row] for row in logits]
    loss = cross_entropy_loss(targets, h)
    loss.backward()
    th = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    t_loss = torch.nn.functional.cross_entropy(th, torch.tensor([2, 1]), reduction="sum")
    t_loss.backward()
    assert loss.v == pytest.approx(t_loss.item(), rel=1e-12)
    assert np.allclose([[v.grad for v in row] for row in h], th.grad.numpy())


def test_initializers():
    const = DenseLayer(Var, 2, 3, Var.relu, ConstantInitializer(weight=0.5, bias=-1.0))
    assert all(w.v == 0.5 for w in const.parameters()[:6]) and all(b.v == -1.0 for b in const.bias)
    for init, expected_std in ((NormalInitializer(std=0.1, seed=0), 0.1),
                               (GlorotInitializer(seed=0), math.sqrt(2 / 300)),
                               (GlorotInitializer("uniform", seed=0), math.sqrt(2 / 300)),
                               (HeInitializer(seed=0), math.sqrt(2 / 100))):
        w = init.init_weights(100, 200)
        assert w.shape == (100, 200)
        assert w.std() == pytest.approx(expected_std, rel=0.03)
    with pytest.raises(ValueError, match="distribution"):
        GlorotInitializer("cauchy")


def test_normal_initializer_bias_std():
    assert not NormalInitializer(seed=0).init_bias(50).any()  # the course's default
    biases = NormalInitializer(seed=0, bias_std=3.0).init_bias(4000)
    assert biases.std() == pytest.approx(3.0, rel=0.05) and abs(biases.mean()) < 0.2
    with pytest.raises(ValueError, match="bias_std"):
        NormalInitializer(bias_std=-1.0)


def test_nparray_round_trip():
    x = np.arange(6.0).reshape(3, 2)
    assert np.array_equal(Var_to_nparray(nparray_to_Var(x, Var)), x)
    assert Var_to_nparray(nparray_to_Var(np.arange(3.0), Var)).shape == (3, 1)
    with pytest.raises(ValueError, match="1-D or 2-D"):
        nparray_to_Var(np.zeros((2, 2, 2)), Var)


def test_var_network_learns_a_regression():
    rng = np.random.default_rng(0)
    x = np.linspace(-2, 2, 20)
    t = np.sin(1.5 * x) + 0.05 * rng.normal(size=20)
    X, T = nparray_to_Var(x, Var), nparray_to_Var(t, Var)
    net = [DenseLayer(Var, 1, 8, Var.tanh, GlorotInitializer(seed=0)), DenseLayer(Var, 8, 1, Var.identity, GlorotInitializer(seed=1))]
    params = parameters(net)
    losses = []
    for _ in range(100):
        zero_gradients(params)
        loss = squared_loss(T, forward(X, net))
        loss.backward()
        update_parameters(params, learning_rate=0.03)
        losses.append(loss.v)
    assert losses[-1] < losses[0] / 10


# --- drawing ----------------------------------------------------------------------------
def test_draw_graph_shows_values_and_gradients():
    a, b, d = Var(3.0, name="a"), Var(5.0, name="b"), Var(9.0, name="d")
    f = a * b + a * d
    f.name = "f"
    f.backward()
    fig = draw_graph(f, title="f = a*b + a*d")
    assert isinstance(fig, Figure)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "a\nv=3.00\ngrad=14.00" in texts and "f (+)\nv=42.00\ngrad=1.00" in texts
    assert sum(t.startswith("∂=") for t in texts) == 6
    with pytest.raises(ValueError, match="max_nodes"):
        draw_graph(sum(Var(float(i)) for i in range(40)))


def test_gc_paused_restores_the_collector_and_keeps_gradients():
    import gc

    from helpers.autodiff import gc_paused

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        a, b = Var(3.0), Var(5.0)
        (a * b + a).backward()
    assert gc.isenabled() and (a.grad, b.grad) == (6.0, 3.0)
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_plot_var_fit_draws_losses_and_the_fitted_curve():
    from helpers.autodiff_plot import plot_var_fit
    from helpers.synthetic import course_regression_1d
    from helpers.history import History

    history = History()
    for epoch, (tr, va) in enumerate([(10.0, 11.0), (5.0, 6.0)]):
        history.append_epoch(epoch=epoch, train_loss=tr, val_loss=va)
    xs = np.linspace(-1, 1, 5)
    fig = plot_var_fit(history, course_regression_1d(), xs, xs ** 2, "A fit")
    loss_ax, fit_ax = fig.axes
    assert list(loss_ax.lines[1].get_ydata()) == [11.0, 6.0] and loss_ax.get_yscale() == "log"
    assert np.allclose(fit_ax.lines[0].get_ydata(), xs ** 2) and len(fit_ax.collections) == 2
    assert fig.get_size_inches()[0] <= 6.5


def test_var_figures_fit_the_printed_text_width():
    from helpers import style
    from helpers.autodiff_plot import draw_graph

    a, b = Var(3.0, name="a"), Var(5.0, name="b")
    wide = draw_graph(a * b + a, figsize=(9.0, 3.0))
    assert wide.get_size_inches()[0] <= style.MAX_WIDTH_IN


def test_layers_are_made_of_the_var_they_are_given():
    class Other(Var):  # any node class: the notebook's own Var in sheet 1
        __slots__ = ()

    layer = DenseLayer(Other, 2, 3, "identity", ConstantInitializer(0.5, 0.25))
    assert all(type(p) is Other for p in layer.parameters())
    assert all(type(v) is Other for row in nparray_to_Var(np.ones((2, 2)), Other) for v in row)
    out = layer.forward([Var(1.0), Var(2.0)])
    assert [o.v for o in out] == [1.75] * 3 and out[0].op == "+"  # identity adds no node
    with pytest.raises(ValueError, match="Var class"):
        DenseLayer(2, 3, "relu")

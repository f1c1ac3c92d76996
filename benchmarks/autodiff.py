"""One training step of a 2 -> 16 -> 16 -> 1 MLP on 100 samples: our Var against micrograd's Value.

Run: ``.venv/bin/python -m benchmarks.autodiff [--repeats 7]``. micrograd (``pip install micrograd``)
is optional; without it the script says so and records nothing to compare with.
Both networks start from the same weights and the steps alternate, so machine load hits both alike.
Each timed step ends with ``gc.collect()``: micrograd's nodes form reference cycles (each node's
_backward closure refers to the node), so its graphs are freed only by the cyclic garbage collector;
without the collect, one engine's garbage would be collected (and paid for) during the other's step.
"""
from __future__ import annotations

import argparse
import gc
import statistics
import time

import numpy as np

from benchmarks._results import write_section
from helpers.autodiff import DenseLayer, NormalInitializer, nparray_to_Var, parameters
from tests.autodiff_reference import Var, forward, squared_loss, update_parameters, zero_gradients

SIZES = [2, 16, 16, 1]
N_SAMPLES = 100
LR = 1e-3


def make_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A small regression problem: 100 points in 2-D, one target each."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N_SAMPLES, 2))
    return X, np.sin(X[:, :1]) + 0.5 * X[:, 1:]


def var_step_fn(X: np.ndarray, y: np.ndarray):
    """Our network and a function doing one step (forward, backward, update) that returns the loss."""
    net = [DenseLayer(Var, n_in, n_out, Var.relu if k < len(SIZES) - 2 else Var.identity, NormalInitializer(std=0.5, seed=k))
           for k, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:]))]
    Xv, yv = nparray_to_Var(X, Var), y.tolist()
    params = parameters(net)

    def step() -> float:
        zero_gradients(params)
        loss = squared_loss(yv, forward(Xv, net))
        loss.backward()
        update_parameters(params, LR)
        return loss.v
    return net, step


def micrograd_step_fn(X: np.ndarray, y: np.ndarray, net: list[DenseLayer]):
    """The same network (same starting weights) in micrograd, and its one-step function."""
    from micrograd.engine import Value
    from micrograd.nn import MLP

    model = MLP(SIZES[0], SIZES[1:])
    for layer, ours in zip(model.layers, net):
        for j, neuron in enumerate(layer.neurons):
            for i, w in enumerate(neuron.w):
                w.data = ours.weights[i][j].v
            neuron.b.data = ours.bias[j].v
    Xl, yl = X.tolist(), y[:, 0].tolist()

    def step() -> float:
        model.zero_grad()
        loss = sum(((model(x) - t) ** 2 for x, t in zip(Xl, yl)), Value(0.0))
        loss.backward()
        for p in model.parameters():
            p.data -= LR * p.grad
        return loss.data
    return step


def main(repeats: int = 7) -> None:
    """Time alternating steps, print the table and record it in benchmarks/RESULTS.md."""
    X, y = make_data()
    net, var_step = var_step_fn(X, y)
    try:
        mg_step = micrograd_step_fn(X, y, net)
    except ImportError:
        mg_step = None
    if mg_step is not None:
        first_var, first_mg = var_step(), mg_step()  # also a warm-up
        if not np.isclose(first_var, first_mg, rtol=1e-9):
            raise RuntimeError(f"The two networks disagree (loss {first_var} vs {first_mg}); the comparison is unfair.")
    else:
        var_step()
    times: dict[str, list[float]] = {"Var (tests/autodiff_reference.py)": [], "micrograd Value": []}
    for _ in range(repeats):
        for label, step in (("Var (tests/autodiff_reference.py)", var_step), ("micrograd Value", mg_step)):
            if step is None:
                continue
            gc.collect()
            start = time.perf_counter()
            step()
            gc.collect()  # each engine pays for freeing its own graph
            times[label].append(time.perf_counter() - start)
    lines = [f"One training step (forward, backward, update) of an MLP {' → '.join(map(str, SIZES))} on "
             f"{N_SAMPLES} samples, squared loss; median of {repeats} alternating steps, same starting weights, "
             "each step timed including the garbage collection that frees its graph.", "",
             "| engine | median step (s) | min step (s) |", "|---|---|---|"]
    for label, ts in times.items():
        if ts:
            lines.append(f"| {label} | {statistics.median(ts):.3f} | {min(ts):.3f} |")
    if mg_step is None:
        lines += ["", "micrograd is not installed (`pip install micrograd`), so there is nothing to compare with."]
    else:
        ratio = statistics.median(times["micrograd Value"]) / statistics.median(times["Var (tests/autodiff_reference.py)"])
        verdict = "meets" if ratio >= 2 else "misses"
        lines += ["", f"Var is **{ratio:.2f}×** faster than micrograd per step ({verdict} the ≥ 2× target)."]
    text = "\n".join(lines)
    print(text)
    path = write_section("Sheet 1: Var versus micrograd", text)
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed steps per engine")
    main(parser.parse_args().repeats)

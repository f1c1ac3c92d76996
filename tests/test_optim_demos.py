"""Sheet 2's machinery: the convex problem and its timing, landscapes, schedules, tables."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers.optim_demos import (
    compare_gd_variants,
    compare_runs,
    descend_rough_landscape,
    descend_valley,
    first_epoch_reaching,
    logistic_grad,
    logistic_loss,
    logistic_optimum,
    plot_gd_traces,
    plot_landscape_descent,
    plot_run_curves,
    plot_valley_paths,
    rough_grad,
    rough_loss,
    scheduler_lrs,
    time_descent,
    two_blobs,
    valley_loss,
)
from helpers.history import History

def test_logistic_gradient_matches_autograd():
    X, y = two_blobs(50, seed=3)
    w = np.array([0.3, -0.7, 0.2])
    wt = torch.tensor(w, requires_grad=True)
    z = torch.tensor(X) @ wt[:-1] + wt[-1]
    loss = torch.nn.functional.binary_cross_entropy_with_logits(z, torch.tensor(y))
    loss.backward()
    assert logistic_loss(w, X, y) == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(logistic_grad(w, X, y), wt.grad.numpy(), rtol=1e-10)


def test_newton_optimum_has_zero_gradient():
    X, y = two_blobs(200, seed=1)
    w, loss = logistic_optimum(X, y)
    assert np.abs(logistic_grad(w, X, y)).max() < 1e-10
    assert loss < logistic_loss(w + 0.05, X, y)


def _descent(X, y, batch_size, lr, epochs, seed=0):
    rng = np.random.default_rng(seed)
    w = np.zeros(X.shape[1] + 1)
    yield w
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), batch_size):
            batch = order[start:start + batch_size]
            w = w - lr * logistic_grad(w, X[batch], y[batch])
            yield w


def test_time_descent_records_start_and_every_update():
    X, y = two_blobs(40, seed=2)
    run = time_descent(_descent(X, y, 8, 0.5, 3), X, y, 8)
    assert len(run.loss) == 1 + 3 * 5 and len(run.seconds) == len(run.loss)
    assert run.loss[0] == pytest.approx(math.log(2))  # w = 0 predicts p = 1/2
    assert run.seconds[0] == 0 and (np.diff(run.seconds) >= 0).all()
    assert run.loss[-1] < run.loss[0]


def test_all_gd_variants_reach_target_loss():
    X, y = two_blobs(200, seed=1)
    _, best = logistic_optimum(X, y)
    methods = {"BGD": (200, 2.0), "SGD": (1, 0.02), "mini-batch": (32, 0.5)}
    table, traces = compare_gd_variants(_descent, X, y, methods, epochs=20, loss_star=best, target=best + 0.005)
    assert list(table.columns) == list(methods)
    assert table.loc["updates to target"].notna().all(), table
    assert table.loc["updates per epoch"].tolist() == [1, 200, 7]
    # SGD makes many cheap updates: more updates but fewer epochs than BGD to the target.
    assert table.loc["updates to target", "SGD"] > table.loc["updates to target", "BGD"]
    assert table.loc["epochs to target", "SGD"] < table.loc["epochs to target", "BGD"]
    assert set(traces["method"]) == set(methods) and (traces["excess loss"] > -1e-12).all()


def test_noisy_gradient_with_decaying_rate_escapes_local_minima():
    steps, lr = 300, 0.05
    plain = descend_rough_landscape(3.0, [lr] * steps)
    assert rough_loss(plain[-1]) > 0.4  # noise-free small steps stop in the first local minimum
    decaying = np.linspace(lr, 0, steps)
    finals = [rough_loss(descend_rough_landscape(3.0, decaying, noise=4.0, seed=s)[-1]) for s in range(40)]
    assert np.median(finals) < 0.1
    assert rough_grad(0.7) == pytest.approx((rough_loss(0.7 + 1e-6) - rough_loss(0.7 - 1e-6)) / 2e-6, rel=1e-6)


def test_cosine_decay_ends_lower_than_fixed_rates():
    for w0 in (3.0, -2.7, 1.7):
        large = descend_rough_landscape(w0, [0.25] * 100)
        small = descend_rough_landscape(w0, [0.02] * 100)
        decaying = descend_rough_landscape(w0, scheduler_lrs("cosine", 0.25, 100, T_max=100))
        assert rough_loss(decaying[-1]) < min(rough_loss(large[-1]), rough_loss(small[-1])) - 0.1
        assert rough_loss(decaying[-1]) < 1e-3


def test_scheduler_lrs_follow_formulas():
    lr0, epochs = 0.1, 30
    step = scheduler_lrs("step", lr0, epochs, step_size=10, gamma=0.5)
    expo = scheduler_lrs("exponential", lr0, epochs, gamma=0.9)
    cosine = scheduler_lrs("cosine", lr0, epochs, T_max=epochs, eta_min=0.001)
    for t in range(epochs):
        assert step[t] == pytest.approx(lr0 * 0.5 ** (t // 10))
        assert expo[t] == pytest.approx(lr0 * 0.9 ** t)
        assert cosine[t] == pytest.approx(0.001 + 0.5 * (lr0 - 0.001) * (1 + math.cos(math.pi * t / epochs)))
    assert scheduler_lrs("constant", lr0, 3) == pytest.approx([lr0] * 3)
    with pytest.raises(ValueError, match="Unknown schedule"):
        scheduler_lrs("warmup", lr0, 3)


def test_valley_sgd_path_is_the_closed_form_and_momentum_is_faster():
    lr = 0.035
    path = descend_valley(lambda p: torch.optim.SGD(p, lr=lr), steps=50)
    t = np.arange(51)
    # Plain gradient descent on ½ s w² multiplies w by (1 - lr s) each step.
    np.testing.assert_allclose(path[:, 0], -4.0 * (1 - lr) ** t, rtol=1e-12)
    np.testing.assert_allclose(path[:, 1], 1.0 * (1 - 50 * lr) ** t, rtol=1e-9, atol=1e-300)
    sgd = valley_loss(descend_valley(lambda p: torch.optim.SGD(p, lr=lr), 300))
    momentum = valley_loss(descend_valley(lambda p: torch.optim.SGD(p, lr=0.01, momentum=0.9), 300))
    assert np.argmax(momentum < 1e-3) < np.argmax(sgd < 1e-3)


def _history(val_acc, val_loss):
    h = History()
    for e, (a, v) in enumerate(zip(val_acc, val_loss)):
        h.append_epoch(epoch=e, train_loss=v - 0.1, train_acc=a + 0.02, val_loss=v, val_acc=a, time=1.5)
    h.step_loss = [1.0, 0.8, 0.7, 0.6, 0.5, 0.4]
    return h


def test_compare_runs_counts_epochs_from_one():
    runs = {"A": _history([0.70, 0.80, 0.85], [0.9, 0.6, 0.7]), "B": _history([0.81, 0.82, 0.86], [0.6, 0.5, 0.45])}
    table = compare_runs(runs, target_acc=0.8)
    assert list(table.columns) == ["A", "B"]
    assert table.loc["first epoch with val acc ≥ 80%", "A"] == "2"
    assert table.loc["first epoch with val acc ≥ 80%", "B"] == "1"
    assert table.loc["lowest val loss (epoch)", "A"] == "0.600 (2)"
    assert table.loc["epochs whose val loss rose", "A"] == "1 of 2"
    assert table.loc["best val acc (epoch)", "B"] == "86.00 % (3)"
    assert math.isnan(first_epoch_reaching(_history([0.1, 0.2], [1.0, 0.9]), "val_acc", 0.5))


def test_figures_fit_an_a4_page():
    X, y = two_blobs(40)
    _, traces = compare_gd_variants(_descent, X, y, {"BGD": (40, 1.0), "SGD": (1, 0.05)}, 2, 0.0, 0.1)
    figures = [
        plot_gd_traces(traces, tolerance=0.1),
        plot_landscape_descent({"fixed": descend_rough_landscape(2.0, [0.1] * 5)}),
        plot_valley_paths({"SGD": descend_valley(lambda p: torch.optim.SGD(p, lr=0.03), 10)}),
        plot_run_curves({"A": _history([0.7, 0.8], [0.9, 0.6])}),
    ]
    for fig in figures:
        assert fig.get_figwidth() <= 6.5
        assert all(ax.get_xlabel() for ax in fig.axes)
    assert plot_run_curves({"A": _history([0.7, 0.8], [0.9, 0.6])}).axes[0].lines[0].get_xdata().tolist() == [1, 2]

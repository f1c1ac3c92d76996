"""Sheet 2 demos: Adam by hand vs torch, the convex GD experiment, the rough landscape, schedules."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from helpers.optim_demos import (
    adam_step_by_hand,
    adam_step_torch,
    compare_gd_variants,
    descend_rough_landscape,
    diagnose_fit,
    logistic_grad,
    logistic_loss,
    logistic_optimum,
    plot_landscape_descent,
    rough_grad,
    rough_loss,
    run_gradient_descent,
    scheduler_lrs,
    two_blobs,
)

SHEET = dict(beta1=0.9, beta2=0.99, lr=0.01, eps=1e-8)


def test_adam_by_hand_matches_sheet_numbers():
    first = adam_step_by_hand(0.5, 0.2, 2.0, **SHEET)
    assert first["m"] == pytest.approx(0.65, abs=1e-12)
    assert first["v"] == pytest.approx(0.238, abs=1e-12)
    assert first["delta"] == pytest.approx(-0.013324, abs=5e-7)
    second = adam_step_by_hand(0.5, 20.0, 2.0, **SHEET)
    assert second["v"] == pytest.approx(19.84, abs=1e-12)
    assert abs(second["delta"]) == pytest.approx(0.0014593, abs=5e-8)
    # Same gradient, 100x larger gradient history: a much smaller step.
    assert abs(second["delta"]) < abs(first["delta"]) / 9


@pytest.mark.parametrize("t", [1, 2, 5, 50])
def test_adam_by_hand_with_bias_correction_matches_torch(t):
    for v_prev in (0.2, 20.0):
        ours = adam_step_by_hand(0.5, v_prev, 2.0, t=t, **SHEET)
        theirs = adam_step_torch(0.5, v_prev, 2.0, t=t, w=1.5, **SHEET)
        for key in ("m", "v", "delta"):
            assert theirs[key] == pytest.approx(ours[key], rel=1e-12, abs=1e-15)


def test_adam_without_bias_correction_is_torch_late_in_training():
    # After many steps 1 - β^t rounds to 1, so torch's update is the uncorrected formula.
    ours = adam_step_by_hand(0.5, 0.2, 2.0, **SHEET)
    theirs = adam_step_torch(0.5, 0.2, 2.0, t=100_000, **SHEET)
    assert theirs["delta"] == pytest.approx(ours["delta"], rel=1e-12)
    # Early on the corrections matter (at t = 1 they cancel for these betas: (1-β1)/sqrt(1-β2) = 1).
    early = adam_step_torch(0.5, 0.2, 2.0, t=3, **SHEET)
    assert not math.isclose(early["delta"], ours["delta"], rel_tol=1e-3)


def test_adam_torch_rejects_step_zero():
    with pytest.raises(ValueError, match="t >= 1"):
        adam_step_torch(0.5, 0.2, 2.0, t=0)


def test_logistic_gradient_matches_autograd():
    X, y = two_blobs(50, seed=3)
    w = np.array([0.3, -0.7, 0.2])
    wt = torch.tensor(w, requires_grad=True)
    z = torch.tensor(X) @ wt[:-1] + wt[-1]
    torch.nn.functional.binary_cross_entropy_with_logits(z, torch.tensor(y)).backward()
    assert logistic_loss(w, X, y) == pytest.approx(
        torch.nn.functional.binary_cross_entropy_with_logits(z, torch.tensor(y)).item(), rel=1e-12)
    np.testing.assert_allclose(logistic_grad(w, X, y), wt.grad.numpy(), rtol=1e-10)


def test_newton_optimum_has_zero_gradient():
    X, y = two_blobs(200, seed=1)
    w, loss = logistic_optimum(X, y)
    assert np.abs(logistic_grad(w, X, y)).max() < 1e-10
    assert loss < logistic_loss(w + 0.05, X, y)


def test_all_gd_variants_reach_target_loss():
    X, y = two_blobs(200, seed=1)
    _, best = logistic_optimum(X, y)
    methods = {"BGD": (None, 2.0), "SGD": (1, 0.02), "mini-batch (32)": (32, 0.5)}
    summary, traces = compare_gd_variants(X, y, methods, epochs=20, target=best + 0.005)
    assert summary["updates_to_target"].notna().all(), summary
    by_name = summary.set_index("method")
    assert by_name.loc["BGD", "updates_per_epoch"] == 1
    assert by_name.loc["SGD", "updates_per_epoch"] == 200
    assert by_name.loc["mini-batch (32)", "updates_per_epoch"] == 7
    # SGD makes many cheap updates: more updates but fewer epochs than BGD to the target.
    assert by_name.loc["SGD", "updates_to_target"] > by_name.loc["BGD", "updates_to_target"]
    assert by_name.loc["SGD", "epochs_to_target"] < by_name.loc["BGD", "epochs_to_target"]
    assert set(traces["method"]) == set(methods)
    assert (traces.groupby("method")["seconds"].diff().dropna() >= 0).all()


def test_gradient_descent_rejects_bad_batch_size():
    X, y = two_blobs(20)
    with pytest.raises(ValueError, match="batch_size"):
        run_gradient_descent(X, y, batch_size=0, lr=0.1, epochs=1)


def test_rough_landscape_decaying_rate_ends_lower_than_fixed_rates():
    steps = 100
    assert rough_grad(0.7) == pytest.approx((rough_loss(0.7 + 1e-6) - rough_loss(0.7 - 1e-6)) / 2e-6, rel=1e-6)
    for w0 in (3.0, -2.7, 1.7):
        large = descend_rough_landscape(w0, [0.25] * steps)
        small = descend_rough_landscape(w0, [0.02] * steps)
        decaying = descend_rough_landscape(w0, scheduler_lrs("cosine", 0.25, steps, T_max=steps))
        assert rough_loss(decaying[-1]) < rough_loss(large[-1]) - 0.1
        assert rough_loss(decaying[-1]) < rough_loss(small[-1]) - 0.1
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


def _curves(train_loss, val_loss, train_acc, val_acc):
    return SimpleNamespace(train_loss=train_loss, val_loss=val_loss, train_acc=train_acc, val_acc=val_acc)


def test_diagnose_fit_tells_over_from_under_fitting():
    over = _curves([0.9, 0.5, 0.3, 0.1], [0.8, 0.5, 0.55, 0.7], [0.7, 0.8, 0.9, 0.97], [0.7, 0.8, 0.8, 0.78])
    under = _curves([1.5, 1.2, 1.0, 0.9], [1.5, 1.2, 1.0, 0.9], [0.5, 0.6, 0.65, 0.7], [0.5, 0.6, 0.65, 0.69])
    good = _curves([0.5, 0.401, 0.4, 0.4], [0.5, 0.45, 0.45, 0.449], [0.8, 0.85, 0.86, 0.86], [0.8, 0.84, 0.85, 0.85])
    assert "over-fitting" in diagnose_fit(over)
    assert "after epoch 2 of 4" in diagnose_fit(over)
    assert "under-fitting" in diagnose_fit(under)
    assert "good fit" in diagnose_fit(good)
    with pytest.raises(ValueError, match="validation loss"):
        diagnose_fit(_curves([1.0], [], [0.5], []))


def test_plot_landscape_descent_returns_figure():
    runs = {"fixed": descend_rough_landscape(2.0, [0.1] * 5)}
    fig = plot_landscape_descent(runs, title="demo")
    assert len(fig.axes) == 2 and fig.axes[0].get_xlabel() == "parameter w"

"""helpers.synthetic: seeded 2-D toy sets and the 1-D regression set."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.synthetic import KINDS, Synthetic2D, course_curve, course_regression_1d, regression_1d


def _knn_accuracy(X_train, y_train, X_test, y_test, k: int = 5) -> float:
    distances = ((X_test[:, None, :] - X_train[None]) ** 2).sum(-1)
    votes = y_train[np.argsort(distances, axis=1)[:, :k]]
    return float(((votes.mean(1) > 0.5).astype(int) == y_test).mean())


@pytest.mark.parametrize("kind", KINDS)
def test_generate_shapes_balance_and_seeding(kind):
    X, y = Synthetic2D(kind, n=400, noise=0.1, seed=0).generate()
    assert X.shape == (400, 2) and X.dtype == np.float32 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [200, 200]
    again, _ = Synthetic2D(kind, n=400, noise=0.1, seed=0).generate()
    other, _ = Synthetic2D(kind, n=400, noise=0.1, seed=1).generate()
    assert np.array_equal(X, again) and not np.array_equal(X, other)


@pytest.mark.parametrize("kind", KINDS)
def test_classes_have_learnable_structure(kind):
    X, y = Synthetic2D(kind, n=600, noise=0.05, seed=0).generate()
    assert _knn_accuracy(X[:400], y[:400], X[400:], y[400:]) > 0.9


def test_xor_and_circles_are_not_linearly_separable():
    for kind in ("xor", "circles"):
        X, y = Synthetic2D(kind, n=1000, noise=0.05, seed=0).generate()
        features = np.hstack([X, np.ones((len(X), 1))])
        w, *_ = np.linalg.lstsq(features, 2.0 * y - 1, rcond=None)
        assert ((features @ w > 0) == y).mean() < 0.7


def test_splits_sizes_and_training_standardisation():
    data = Synthetic2D("moons", n=1000, seed=0)
    splits = data.splits()
    assert (len(splits.train), len(splits.val), len(splits.test)) == (600, 200, 200)
    assert splits.train.X.dtype == torch.float32 and splits.train.y.dtype == torch.int64
    assert torch.allclose(splits.train.X.mean(0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(splits.train.X.std(0, unbiased=False), torch.ones(2), atol=1e-4)
    # Validation and test are scaled with the training statistics, not their own.
    X, _ = data.generate()
    mean, std = X[:600].mean(0), X[:600].std(0)
    assert np.allclose(splits.test.X.numpy(), (X[800:] - mean) / std, atol=1e-5)
    raw = data.splits(standardize=False)
    assert np.allclose(raw.val.X.numpy(), X[600:800])


def test_bad_arguments_raise_value_errors():
    with pytest.raises(ValueError, match="moons"):
        Synthetic2D("spiral")
    with pytest.raises(ValueError, match="fractions"):
        Synthetic2D().splits(fractions=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="fractions"):
        regression_1d(fractions=(0.5, 0.5))


def test_regression_1d_split_and_standardisation():
    splits = regression_1d(n=100, noise=0.1, seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (35, 35, 30)
    for split in (splits.train, splits.val, splits.test):
        assert split.X.shape[1:] == (1,) and split.y.shape[1:] == (1,) and split.y.dtype == torch.float32
    for t in (splits.train.X, splits.train.y):
        assert t.mean().item() == pytest.approx(0.0, abs=1e-5)
        assert t.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)
    assert torch.equal(regression_1d(seed=0).train.y, splits.train.y)
    assert not torch.equal(regression_1d(seed=1).train.y, splits.train.y)


def test_regression_1d_is_a_smooth_function_of_x():
    # A degree-7 polynomial fitted on train explains held-out targets far better than their mean does.
    splits = regression_1d(n=300, noise=0.05, seed=0)
    coeffs = np.polyfit(splits.train.X[:, 0].numpy(), splits.train.y[:, 0].numpy(), 7)
    prediction = np.polyval(coeffs, splits.test.X[:, 0].numpy())
    residual = ((prediction - splits.test.y[:, 0].numpy()) ** 2).mean()
    assert residual < 0.05 * splits.test.y.var().item()


def test_course_regression_1d_follows_the_course_generator():
    data = course_regression_1d(n=300, noise=0.1, seed=0)
    assert (len(data.train), len(data.val), len(data.test)) == (105, 105, 90)
    # Undo the training standardisation: x are the 300 evenly spaced points of [-3, 3], each used once.
    rng = np.random.default_rng(0)
    x = np.linspace(-3.0, 3.0, 300)
    rng.shuffle(x)
    mx, sx = x[:105].mean(), x[:105].std()
    raw_x = np.concatenate([s.X[:, 0].numpy() for s in (data.train, data.val, data.test)]) * sx + mx
    np.testing.assert_allclose(np.sort(raw_x), np.linspace(-3.0, 3.0, 300), atol=1e-5)
    for t in (data.train.X, data.train.y):
        assert t.mean().item() == pytest.approx(0.0, abs=1e-5)
        assert t.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)
    # Residuals around the true curve have the requested noise (in raw units).
    y = rng.normal(course_curve(x), 0.1)
    my, sy = y[:105].mean(), y[:105].std()
    raw_y = data.train.y[:, 0].numpy() * sy + my
    residual = raw_y - course_curve(raw_x[:105])
    assert 0.07 < residual.std() < 0.13 and abs(residual.mean()) < 0.03


def test_course_regression_1d_rejects_bad_settings():
    with pytest.raises(ValueError, match="noise"):
        course_regression_1d(noise=-1)
    with pytest.raises(ValueError, match="at least 10"):
        course_regression_1d(n=5)

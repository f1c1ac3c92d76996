"""Tests for helpers.models: layer counts, shapes, residual paths, ResNet18 modes and offline weights."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from helpers import models
from helpers.models import (MLP, LargeNet, MediumNet, PretrainedUnavailable, ScaledResidualMLP, SmallNet, Standardize,
                            count_parameters, pretrained_resnet18, scratch_resnet18)


pytestmark = pytest.mark.usefixtures("one_thread")


def n_modules(model: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in model.modules())


# --- MLP -----------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [0, 1, 6])
def test_mlp_depth_counts_hidden_layers(depth):
    model = MLP(784, 10, depth=depth, width=32)
    assert n_modules(model, nn.Linear) == depth + 1  # the sheet's "6 layers" model has 7 nn.Linear
    assert len(model.linears) == depth + 1
    assert model.linears[0].in_features == 784 and model.linears[-1].out_features == 10


def test_mlp_flattens_images():
    model = MLP(28 * 28, 10, depth=2, width=16)
    assert model(torch.randn(5, 1, 28, 28)).shape == (5, 10)


def test_mlp_batch_norm_comes_before_activation():
    torch.manual_seed(0)
    model = MLP(3, 2, depth=1, width=4, batch_norm=True, activation="tanh")
    x = torch.randn(16, 3)
    block = model.hidden[0]
    pre = block.linear(x)
    expected = torch.tanh((pre - pre.mean(0)) / torch.sqrt(pre.var(0, unbiased=False) + block.norm.eps))
    torch.testing.assert_close(block(x), expected, atol=1e-5, rtol=1e-4)


def test_residual_block_is_identity_when_its_layer_is_zero():
    model = MLP(4, 2, depth=2, width=4, residual=True)
    block = model.hidden[1]
    nn.init.zeros_(block.linear.weight)
    nn.init.zeros_(block.linear.bias)
    x = torch.randn(3, 4)
    torch.testing.assert_close(block(x), x)


def test_residual_connections_keep_gradients_alive_in_deep_sigmoid_nets():
    def first_layer_grad(residual: bool) -> float:
        torch.manual_seed(0)
        model = MLP(8, 2, depth=20, width=16, activation="sigmoid", residual=residual)
        x, y = torch.randn(64, 8), torch.randint(0, 2, (64,))
        nn.functional.cross_entropy(model(x), y).backward()
        return model.linears[0].weight.grad.norm().item()

    # Vanishing gradients: through 20 sigmoids the first layer gets almost nothing, unless skips carry it.
    assert first_layer_grad(residual=True) > 1e3 * first_layer_grad(residual=False)


def test_mlp_rejects_bad_settings():
    with pytest.raises(ValueError, match="activation"):
        MLP(2, 2, depth=1, width=4, activation="swishy")
    with pytest.raises(ValueError, match="depth"):
        MLP(2, 2, depth=-1, width=4)
    with pytest.raises(ValueError, match="dropout"):
        MLP(2, 2, depth=1, width=4, dropout=1.5)


# --- CNNs ----------------------------------------------------------------------------
@pytest.mark.parametrize("cls, flat", [(SmallNet, 16 * 14 * 14), (MediumNet, 800), (LargeNet, 8192)])
def test_cnn_architectures_on_cifar_shapes(cls, flat):
    model = cls()
    assert model.fc1.in_features == flat
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("cls", [SmallNet, MediumNet, LargeNet])
def test_cnns_accept_28x28_grayscale(cls):
    model = cls(in_channels=1, num_classes=10, input_size=28)
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("cls", [SmallNet, MediumNet, LargeNet])
def test_cnn_samples_do_not_mix_across_the_batch(cls):
    torch.manual_seed(0)
    model = cls(in_channels=1, input_size=28).eval()
    x = torch.randn(4, 1, 28, 28)
    # A view(-1, n) with the wrong n would reshuffle features between samples; flatten(1) never does.
    torch.testing.assert_close(model(x)[2:3], model(x[2:3]), atol=1e-5, rtol=1e-4)


def test_cnn_rejects_too_small_inputs():
    with pytest.raises(ValueError, match="input_size"):
        MediumNet(input_size=8)


def test_count_parameters():
    model = MLP(2, 3, depth=1, width=4)
    assert count_parameters(model) == (2 * 4 + 4) + (4 * 3 + 3)
    model.linears[0].requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == 4 * 3 + 3


# --- ResNet18 ------------------------------------------------------------------------
def test_scratch_resnet18_has_a_fresh_head_and_trains_everything():
    model = scratch_resnet18(3)
    assert all(p.requires_grad for p in model.parameters()) and model.fc.out_features == 3
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    with pytest.raises(ValueError, match="num_outputs"):
        scratch_resnet18(0)


def test_pretrained_resnet18_takes_a_state_dict_the_kit_trained():
    donor = scratch_resnet18(5)
    model = pretrained_resnet18(donor.state_dict())
    torch.testing.assert_close(model.conv1.weight, donor.conv1.weight)
    assert model.fc.out_features == 5, "the pretraining head stays: replacing it is the transfer learning"
    with pytest.raises(ValueError, match="state_dict"):
        pretrained_resnet18({"conv1.weight": torch.zeros(1), "fc.weight": torch.zeros(5, 512)})  # wrong shape
    with pytest.raises(ValueError, match="state_dict"):
        pretrained_resnet18({"conv1.weight": donor.conv1.weight})  # keys missing


def test_pretrained_unavailable_offline_without_cached_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))  # an empty torch hub cache
    assert not models.imagenet_weights_available()
    with pytest.raises(PretrainedUnavailable) as err:
        pretrained_resnet18()
    message = str(err.value)
    assert str(tmp_path) in message and "KIT_OFFLINE" in message and "scratch_resnet18" in message
    # Once the file is in the cache, the weights count as available.
    path = models.imagenet_weights_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    assert models.imagenet_weights_available()


# --- the sin(α·x) implicit representation ----------------------------------------------------
def test_sin_features_shape_order_and_values():
    X = torch.tensor([[1.0, -2.0], [30.0, 45.5], [0.0, 0.0]])
    out = models.sin_features(X)
    assert out.shape == (3, 20)
    alphas = models.DEFAULT_ALPHAS
    assert alphas == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    for i in range(3):
        for j in range(2):  # each coordinate's ten frequencies sit together
            for k, a in enumerate(alphas):
                assert out[i, j * 10 + k].item() == pytest.approx(math.sin(a * X[i, j].item()), abs=1e-6)
    assert torch.all(out[2] == 0)


def test_sin_features_numpy_module_and_errors():
    X = np.random.default_rng(0).uniform(-10, 70, size=(50, 2)).astype(np.float32)
    out = models.sin_features(X, alphas=[0.5, 2.0])
    assert isinstance(out, np.ndarray) and out.shape == (50, 4)
    np.testing.assert_allclose(out[:, 1], np.sin(2.0 * X[:, 0]), atol=1e-5)
    np.testing.assert_allclose(out[:, 2], np.sin(0.5 * X[:, 1]), atol=1e-5)
    layer = models.SinFeatures()
    assert list(layer.parameters()) == []  # fixed frequencies, nothing to learn
    torch.testing.assert_close(layer(torch.from_numpy(X)), models.sin_features(torch.from_numpy(X)))
    with pytest.raises(ValueError, match="2-D"):
        models.sin_features(torch.zeros(5))
    with pytest.raises(ValueError, match="non-empty"):
        models.sin_features(X, alphas=[])


def test_resnet_input_replicates_resizes_and_normalises():
    layer = models.ResNetInput(16)
    out = layer(torch.full((2, 1, 28, 28), 0.5))
    assert out.shape == (2, 3, 16, 16)
    expected = [(0.5 - m) / s for m, s in zip(models.IMAGENET_MEAN, models.IMAGENET_STD)]
    torch.testing.assert_close(out[0, :, 5, 7], torch.tensor(expected))
    with pytest.raises(ValueError, match="at least 16"):
        models.ResNetInput(8)


def test_resnet18_with_input_takes_small_grey_images():
    model = models.with_input(scratch_resnet18(1), 16)
    assert isinstance(model[0], models.ResNetInput) and model(torch.rand(2, 1, 28, 28)).shape == (2, 1)
    with pytest.raises(ValueError, match="at least 16"):
        models.with_input(scratch_resnet18(1), 8)


# --- the deep residual MLP of sheet 3's 6.2.4 -------------------------------------------------
def test_scaled_residual_mlp_starts_as_the_identity_through_any_depth():
    torch.manual_seed(0)
    model = ScaledResidualMLP(2, 3, depth=100, width=4)
    assert len(model.linears) == 101 and len(model.blocks) == 99
    x = torch.randn(64, 2)
    stream = model.stem(x)
    for block in model.blocks:
        stream = block(stream)
    torch.testing.assert_close(stream, model.stem(x))  # every block adds exactly zero at first
    torch.testing.assert_close(model(x), model.out(model.stem(x)))
    nn.functional.cross_entropy(model(x), torch.randint(0, 3, (64,))).backward()
    grads = [layer.weight.grad.pow(2).sum().item() for layer in model.linears]
    assert all(g > 0 for g in grads), "the skips carry the gradient to every layer"
    assert max(grads[1:-1]) / min(grads[1:-1]) < 1.001, "at first every block sees the same stream and signal"
    with pytest.raises(ValueError, match="depth"):
        ScaledResidualMLP(2, 3, depth=0, width=4)


def test_standardize_uses_the_columns_statistics():
    X = torch.tensor([[1.0, 10.0], [3.0, 30.0], [5.0, 50.0]])
    layer = Standardize.fit(X)
    out = layer(X)
    torch.testing.assert_close(out.mean(0), torch.zeros(2))
    torch.testing.assert_close(out.std(0), torch.ones(2))
    assert out[2, 0].item() == pytest.approx(1.0)  # (5 − 3) / 2
    assert not list(layer.parameters()), "fixed statistics: buffers, not parameters"
    with pytest.raises(ValueError, match="std > 0"):
        Standardize([0.0], [0.0])

"""Tests for helpers.training: a model that learns, History, divergence, callbacks, optimizers, schedulers."""
from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from helpers.models import MLP, SmallNet
from helpers.callbacks import Callback, Checkpoint, EarlyStopping, GradientClipping, load_checkpoint
from helpers.device import RSS_INCREASE_KIND
from helpers.history import History, summarize
from helpers.training import OPTIMIZERS, SCHEDULERS, evaluate, fit, predict


class Batches:
    """A tiny in-memory loader: slices of (X, y), reshuffled every epoch from a fixed seed."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor, batch_size: int = 32, shuffle: bool = False):
        self.X, self.y, self.batch_size, self.shuffle = X, y, batch_size, shuffle
        self.generator = torch.Generator().manual_seed(0)

    def __len__(self) -> int:
        return math.ceil(len(self.X) / self.batch_size)

    def __iter__(self):
        n = len(self.X)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self.X[idx], self.y[idx]


def loader(X: torch.Tensor, y: torch.Tensor, batch_size: int = 32, shuffle: bool = False) -> Batches:
    return Batches(X, y, batch_size=batch_size, shuffle=shuffle)


pytestmark = pytest.mark.usefixtures("one_thread")


def quadrants(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """XOR of the signs: separable, but not linearly (a margin of 0.1 around both axes)."""
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 2, generator=g) * 2 - 1
    X = X + 0.1 * X.sign()
    return X, ((X[:, 0] > 0) ^ (X[:, 1] > 0)).long()


@pytest.fixture(scope="module")
def data():
    return {"train": loader(*quadrants(512, 0), shuffle=True), "val": loader(*quadrants(256, 1), batch_size=128)}


def small_mlp(seed: int = 0, **kwargs) -> MLP:
    torch.manual_seed(seed)
    return MLP(2, 2, depth=2, width=32, **kwargs)


# --- Learning and History ------------------------------------------------------------------
def test_mlp_learns_a_separable_problem(data):
    history = fit(small_mlp(), data["train"], 8, lr=1e-2, val_loader=data["val"], device="cpu", quiet=True)
    assert history.final("val_acc") > 0.95
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    assert not history.diverged


def test_history_has_one_entry_per_epoch_and_step(data):
    history = fit(small_mlp(), data["train"], 3, val_loader=data["val"], device="cpu", quiet=True)
    for name in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "lr", "time", "peak_mem"):
        assert len(getattr(history, name)) == 3, name
    assert history.epoch == [0, 1, 2]
    assert len(history.step_loss) == 3 * len(data["train"])
    assert all(math.isnan(v) for v in history.test_loss)  # no test loader given
    assert all(t > 0 for t in history.time) and all(m >= 0 for m in history.peak_mem)
    assert history.peak_mem == sorted(history.peak_mem), "the peak since the run began never falls"
    assert history.peak_mem_kind == RSS_INCREASE_KIND
    assert history.config["optimizer"] == "adam" and history.config["epochs"] == 3
    assert history.to_frame().shape[0] == 3


def test_train_loss_is_the_batch_weighted_mean_of_step_losses():
    X, y = quadrants(100, 0)
    history = fit(small_mlp(), loader(X, y, batch_size=40), 1, device="cpu", quiet=True)  # batches 40, 40, 20
    expected = (40 * history.step_loss[0] + 40 * history.step_loss[1] + 20 * history.step_loss[2]) / 100
    assert history.train_loss[0] == pytest.approx(expected, rel=1e-6)


class FirstLayerGradient(Callback):
    """Writes history.grad_norms as sheet 3's 6.2.4 does: one value per epoch (here the last step's)."""

    def after_backward(self, trainer):
        self.value = trainer.model.linears[0].weight.grad.pow(2).sum().item()

    def after_train(self, trainer):
        trainer.history.grad_norms.setdefault("layer0", []).append(self.value)


def test_history_json_round_trip_stores_nan_as_null(tmp_path, data):
    history = fit(small_mlp(), data["train"], 2, val_loader=data["val"], device="cpu", quiet=True,
                  callbacks=[FirstLayerGradient()])
    assert len(history.grad_norms["layer0"]) == 2
    path = history.to_json(tmp_path / "h.json")
    raw = json.loads(path.read_text())
    assert raw["test_loss"] == [None, None]
    back = History.from_json(path)
    assert math.isnan(back.test_loss[0]) and back.val_loss == history.val_loss
    assert back.step_loss == history.step_loss and back.grad_norms == history.grad_norms
    assert History.from_dict(history.to_dict()).config == history.config


def test_diverging_run_is_flagged_and_stops_cleanly(data):
    history = fit(small_mlp(), data["train"], 5, optimizer="sgd", lr=1e3, val_loader=data["val"], device="cpu",
                  quiet=True)
    assert history.diverged
    assert len(history.epoch) < 5
    assert not math.isfinite(history.train_loss[-1])
    assert json.loads(json.dumps(history.to_dict()))["diverged"] is True


# --- Callbacks --------------------------------------------------------------------------
def test_checkpoint_round_trip(tmp_path, data):
    path = tmp_path / "ckpt" / "model.pt"
    model = small_mlp()
    fit(model, data["train"], 2, val_loader=data["val"], device="cpu", quiet=True,
        callbacks=[Checkpoint(path, save_best_only=False)])
    raw = torch.load(path, weights_only=True)  # plain tensors and numbers only
    assert raw["epoch"] == 1 and raw["monitor"] == "val_loss"
    fresh = small_mlp(seed=1)
    load_checkpoint(fresh, path)
    x = torch.randn(8, 2)
    torch.testing.assert_close(fresh(x), model(x))


def test_checkpoint_keeps_the_best_epoch(tmp_path, data):
    path = tmp_path / "best.pt"
    history = fit(small_mlp(), data["train"], 3, val_loader=data["val"], device="cpu", quiet=True,
                  callbacks=[Checkpoint(path, monitor="val_acc")])
    best_epoch = max(range(3), key=lambda e: (history.val_acc[e], -e))
    assert torch.load(path, weights_only=True)["epoch"] == best_epoch


def test_early_stopping_stops_and_restores_the_best_weights(data):
    model = small_mlp()
    # An lr this small cannot improve val_loss by min_delta: the run should stop after `patience` epochs.
    stopper = EarlyStopping(patience=2, min_delta=1e-3)
    history = fit(model, data["train"], 20, optimizer="sgd", lr=1e-9, val_loader=data["val"], device="cpu",
                  quiet=True, callbacks=[stopper])
    assert len(history.epoch) == 3 and stopper.stopped_epoch == 2
    assert evaluate(model, data["val"])[0] == pytest.approx(history.val_loss[0], rel=1e-6)


def test_callback_events_and_stop_flag(data):
    class Recorder(Callback):
        def __init__(self):
            self.events = []

        def before_fit(self, trainer):
            self.events.append("start")

        def before_epoch(self, trainer):
            self.events.append(f"epoch {trainer.epoch}")

        def after_epoch(self, trainer):
            self.events.append(trainer.epoch)
            trainer.stop = trainer.epoch == 1

        def after_fit(self, trainer):
            self.events.append("end")

    recorder = Recorder()
    history = fit(small_mlp(), data["train"], 10, device="cpu", quiet=True, callbacks=[recorder])
    assert recorder.events == ["start", "epoch 0", 0, "epoch 1", 1, "end"] and len(history.epoch) == 2


def test_run_peak_memory_is_measured_from_the_fit_start(data):
    # Memory the process held before the fit is not this run's: a 300 MB block freed earlier must not show.
    import numpy as np

    block = np.ones(300 * 2**20 // 8)
    del block
    history = fit(small_mlp(), data["train"], 1, device="cpu", quiet=True)
    assert 0 <= history.peak_mem[0] < 100


# --- Optimizers, schedulers, settings --------------------------------------------------
LRS = {"sgd": 0.2, "momentum": 0.05, "adam": 1e-2, "adamw": 1e-2, "rmsprop": 1e-3, "adagrad": 0.05}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_name_trains(name, data):
    history = fit(small_mlp(), data["train"], 3, optimizer=name, lr=LRS[name], device="cpu", quiet=True)
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.config["optimizer"] == name


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_batched_cpu_updates_change_nothing_but_speed(name, data):
    """make_optimizer batches the CPU updates over tensors (foreach): the weights equal torch's default update's."""
    from helpers.training import make_optimizer

    kwargs = {"momentum": 0.9} if name == "momentum" else {}
    cls = {"sgd": torch.optim.SGD, "momentum": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
           "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad}[name]
    models = [small_mlp(), small_mlp()]
    models[1].load_state_dict(models[0].state_dict())
    kit = make_optimizer(name, models[0].parameters(), LRS[name], weight_decay=1e-3)
    plain = cls(models[1].parameters(), lr=LRS[name], weight_decay=1e-3, **kwargs)
    assert kit.defaults["foreach"] is True and plain.defaults["foreach"] is None
    batches = list(data["train"]) * 3
    for model, opt in zip(models, (kit, plain)):
        for xb, yb in batches:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
    assert all(torch.equal(a, b) for a, b in zip(models[0].parameters(), models[1].parameters()))


def test_optimizer_instance_is_used_as_given(data):
    model = small_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.123)
    history = fit(model, data["train"], 1, optimizer=opt, device="cpu", quiet=True)
    assert history.lr == [0.123] and history.config["optimizer"] == "SGD"


@pytest.mark.parametrize("name, kwargs, expected", [
    ("step", {"step_size": 1, "gamma": 0.5}, [0.1, 0.05, 0.025]),
    ("exponential", {"gamma": 0.5}, [0.1, 0.05, 0.025]),
    ("cosine", None, [0.1, 0.075, 0.025]),
    ("onecycle", None, [0.1 / 25, None, None]),
])
def test_every_scheduler_name_sets_the_lr(name, kwargs, expected, data):
    history = fit(small_mlp(), data["train"], 3, optimizer="sgd", lr=0.1, scheduler=name, scheduler_kwargs=kwargs,
                  device="cpu", quiet=True)
    for got, want in zip(history.lr, expected):
        if want is not None:
            assert got == pytest.approx(want)
    if name == "onecycle":  # stepped per batch: up to max_lr and back down within the run
        assert history.lr[1] > history.lr[0] and history.lr[2] < history.lr[1]


@pytest.mark.parametrize("kwargs, match", [
    ({"optimizer": "lbfgs"}, "optimizer.*sgd"),
    ({"lr": 0.0}, "lr"),
    ({"lr": -1.0}, "lr"),
    ({"epochs": -1}, "epochs"),
    ({"scheduler": "linear"}, "scheduler.*cosine"),
    ({"loss": "hinge"}, "loss.*cross_entropy"),
])
def test_bad_settings_raise_value_error(kwargs, match, data):
    settings = {"epochs": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        fit(small_mlp(), data["train"], device="cpu", quiet=True, **settings)
    with pytest.raises(ValueError, match="max_norm"):
        GradientClipping(0.0)


def test_torch_dataloader_works():
    X, y = quadrants(64, 0)
    history = fit(small_mlp(), DataLoader(TensorDataset(X, y), batch_size=16), 1, device="cpu", quiet=True)
    assert len(history.step_loss) == 4 and history.config["batch_size"] == 16


def test_bad_loaders_raise_value_error():
    empty = DataLoader(TensorDataset(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long)), batch_size=4)
    with pytest.raises(ValueError, match="no batches"):
        fit(small_mlp(), empty, 1, device="cpu", quiet=True)

    class ZeroBatchSize(list):
        batch_size = 0

    with pytest.raises(ValueError, match="batch_size"):
        fit(small_mlp(), ZeroBatchSize([(torch.zeros(1, 2), torch.zeros(1, dtype=torch.long))]), 1, device="cpu")


def test_any_list_of_batches_works_as_a_loader():
    X, y = quadrants(64, 0)
    batches = [(X[:32], y[:32]), (X[32:], y[32:])]
    history = fit(small_mlp(), batches, 2, val_loader=batches, device="cpu", quiet=True)
    assert len(history.step_loss) == 4 and not math.isnan(history.val_acc[-1])


# --- Precision, clipping, gradient norms -------------------------------------------------
def test_amp_on_cpu_runs_in_bfloat16(data):
    model = small_mlp()
    dtypes = set()
    model.linears[0].register_forward_hook(lambda mod, inp, out: dtypes.add(out.dtype))
    history = fit(model, data["train"], 2, amp=True, val_loader=data["val"], device="cpu", quiet=True)
    assert torch.bfloat16 in dtypes
    assert all(math.isfinite(v) for v in history.step_loss) and history.val_acc[-1] > 0.6


def test_gradient_clipping_bounds_the_update():
    X, y = quadrants(32, 0)
    model = small_mlp()
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    fit(model, loader(X, y, batch_size=32), 1, optimizer="sgd", lr=1.0, callbacks=[GradientClipping(1e-3)], device="cpu",
        quiet=True)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (after - before).norm() <= 1e-3 * (1 + 1e-4)


# --- evaluate / predict, BCE, regression ---------------------------------------------------
def test_evaluate_matches_a_direct_computation_in_eval_mode(data):
    model = small_mlp(dropout=0.5)
    X, y = data["val"].X, data["val"].y
    model.eval()
    with torch.no_grad():
        logits = model(X)
    model.train()
    loss, acc = evaluate(model, data["val"])
    assert loss == pytest.approx(nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    assert acc == pytest.approx((logits.argmax(1) == y).float().mean().item())
    assert model.training  # the mode it had before


@pytest.mark.parametrize("target_shape", ["flat", "column"])
def test_bce_training_and_prediction(target_shape, data):
    X, y = data["train"].X, data["train"].y
    y = y.float() if target_shape == "flat" else y.float().unsqueeze(1)
    binary = loader(X, y, shuffle=True)
    torch.manual_seed(0)
    model = MLP(2, 1, depth=2, width=32)
    history = fit(model, binary, 10, lr=1e-2, loss="bce", val_loader=binary, device="cpu", quiet=True)
    assert history.final("val_acc") > 0.9
    preds, probs, targets = predict(model, binary)
    assert preds.shape == probs.shape == targets.shape == (len(X),)
    assert ((probs > 0.5).long() == preds).all() and ((probs >= 0) & (probs <= 1)).all()
    assert (preds == targets.long()).float().mean().item() == pytest.approx(history.val_acc[-1])


def test_predict_multiclass(data):
    model = small_mlp()
    preds, probs, targets = predict(model, data["val"])
    assert probs.shape == (256, 2) and preds.shape == targets.shape == (256,)
    torch.testing.assert_close(probs.sum(1), torch.ones(256))
    assert (preds == probs.argmax(1)).all()


def test_mse_regression_reports_no_accuracy():
    X = torch.linspace(-1, 1, 64).unsqueeze(1)
    history = fit(MLP(1, 1, depth=1, width=16), loader(X, 2 * X), 5, lr=1e-2, loss="mse", device="cpu", quiet=True)
    assert math.isnan(history.train_acc[-1]) and history.train_loss[-1] < history.train_loss[0]


def test_a_frozen_backbone_stays_as_it_was():
    """Only parameters with requires_grad train; a module kept in eval mode keeps its BatchNorm statistics."""
    body = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU())
    body.requires_grad_(False)
    head = nn.Linear(8, 1)

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.head = body, head

        def train(self, mode=True):
            super().train(mode)
            self.body.eval()
            return self

        def forward(self, x):
            return self.head(self.body(x))

    model = Probe()
    body_before, head_before = copy.deepcopy(body.state_dict()), head.weight.detach().clone()
    X, y = torch.randn(8, 4) + 3.0, torch.randint(0, 2, (8,)).float()
    fit(model, loader(X, y, batch_size=4), 1, loss="bce", device="cpu", quiet=True)
    for key, value in body.state_dict().items():  # weights and BatchNorm running statistics
        torch.testing.assert_close(value, body_before[key], msg=key)
    assert not torch.equal(head.weight, head_before)


# --- The loop and its events ----------------------------------------------------------------------
def test_the_loop_reads_on_one_screen():
    import inspect

    from helpers.training import Trainer

    assert len(inspect.getsource(Trainer.fit).splitlines()) <= 40


def test_events_come_in_the_loops_order():
    from helpers.callbacks import EVENTS

    heard = []
    listener = type("Listener", (Callback,), {e: lambda self, trainer, e=e: heard.append(e) for e in EVENTS})()
    X, y = quadrants(64, 0)
    fit(small_mlp(), loader(X, y, batch_size=32), 1, val_loader=loader(X, y), device="cpu", quiet=True,
        callbacks=[listener])
    batch = ["before_batch", "after_loss", "after_backward", "before_step", "after_batch"]
    assert heard == ["before_fit", "before_epoch", *batch, *batch, "after_train", "after_epoch", "after_fit"]


def test_a_user_callback_sees_the_epoch_already_recorded(data):
    seen = []

    class Reader(Callback):
        def after_epoch(self, trainer):
            seen.append((len(trainer.history), trainer.history.val_acc[-1]))

    history = fit(small_mlp(), data["train"], 2, val_loader=data["val"], device="cpu", quiet=True, callbacks=[Reader()])
    assert seen == [(1, history.val_acc[0]), (2, history.val_acc[1])]


def test_metrics_are_functions_recorded_under_their_names(data):
    from helpers.metrics import accuracy
    from helpers.plotting import plot_history

    def error(pred, target):
        return 1 - accuracy(pred, target)

    history = fit(small_mlp(), data["train"], 2, val_loader=data["val"], device="cpu", quiet=True,
                  metrics={"acc": accuracy, "error": error})
    assert history.series("val_error") == pytest.approx([1 - a for a in history.val_acc])
    assert history.series("train_error") == pytest.approx([1 - a for a in history.train_acc])
    assert all(math.isnan(v) for v in history.series("test_error"))  # no test loader
    back = History.from_dict(json.loads(json.dumps(history.to_dict())))
    assert back.series("val_error") == history.series("val_error")
    assert len(plot_history(history, metrics=("loss", "error")).axes) == 2
    assert summarize(history)["final_val_error"] == pytest.approx(1 - history.val_acc[-1])
    none = fit(small_mlp(), data["train"], 1, device="cpu", quiet=True, metrics={})
    assert math.isnan(none.train_acc[0]) and not none.metrics, "metrics={} records no accuracy"


def test_train_accuracy_is_the_share_of_correct_predictions_over_the_epoch():
    X, y = quadrants(100, 0)
    model = small_mlp()
    for p in model.parameters():
        p.requires_grad_(False)
    model.linears[-1].bias.requires_grad_(True)  # something to optimise, lr tiny: predictions stay put
    history = fit(model, loader(X, y, batch_size=40), 1, optimizer="sgd", lr=1e-12, device="cpu", quiet=True)
    with torch.no_grad():
        expected = (model(X).argmax(1) == y).float().mean().item()
    assert history.train_acc[0] == pytest.approx(expected)


def test_old_flags_name_the_callback_that_replaced_them(data):
    with pytest.raises(TypeError, match=r"clip_grad is now a callback: callbacks=\[GradientClipping"):
        fit(small_mlp(), data["train"], 1, clip_grad=1.0, quiet=True)
    with pytest.raises(TypeError, match=r"track_grad_norms is now a callback: callbacks=\[a callback whose after_backward"):
        fit(small_mlp(), data["train"], 1, track_grad_norms=True, quiet=True)


def test_mixed_precision_scales_the_loss_and_steps_through_the_scaler():
    from helpers.callbacks import MixedPrecision

    scaled = []

    class CpuScaling(MixedPrecision):  # float16's loss scaling, exercised with a CPU GradScaler
        def before_fit(self, trainer):
            super().before_fit(trainer)
            self.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)

        def after_loss(self, trainer):
            super().after_loss(trainer)
            scaled.append(trainer.loss_grad.item() / trainer.loss.item())

    X, y = quadrants(64, 0)
    plain = fit(small_mlp(), loader(X, y, batch_size=16), 2, optimizer="sgd", lr=0.1, device="cpu", quiet=True)
    mixed = fit(small_mlp(), loader(X, y, batch_size=16), 2, optimizer="sgd", lr=0.1, device="cpu", quiet=True,
                callbacks=[CpuScaling(), GradientClipping(1e6)])
    assert scaled[0] == 2.0 ** 10, "backward() ran on the scaled loss"
    # Scaling by a power of two and unscaling before the step is exact: the same training, step for step.
    assert mixed.step_loss == pytest.approx(plain.step_loss, rel=1e-6)

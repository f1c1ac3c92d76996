"""helpers.transfer_learning: the binary task, the kit backbone, the baselines and their ranking."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import transfer_learning
from helpers.data import FASHION_CLASSES, Split, load_fashion_mnist
from helpers.history import History

SIZE = 16  # the smallest image side ResNetInput accepts; keeps every ResNet18 step to milliseconds


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def smoke(monkeypatch):
    """Generated stand-in data (no real files needed)."""
    monkeypatch.setenv("KIT_PROFILE", "smoke")


@pytest.fixture
def tiny_task(smoke) -> transfer_learning.BinaryTask:
    return transfer_learning.fashion_binary_task(train_limit=32, eval_limit=16)


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory) -> transfer_learning.Backbone:
    """One kit backbone (one training step) shared by the baseline tests."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KIT_PROFILE", "smoke")
        mp.setenv("KIT_CACHE", str(tmp_path_factory.mktemp("backbone-cache")))
        return transfer_learning.kit_backbone(SIZE, train_limit=32, batch_size=32)


# --- the binary task ---------------------------------------------------------------------------
def test_standin_task_on_real_fashion_mnist(shared_data):
    task = transfer_learning.fashion_binary_task(root=shared_data)
    assert task.classes == ["T-shirt/top", "Shirt"]
    full = load_fashion_mnist(shared_data, normalize=False)
    tshirt, shirt = FASHION_CLASSES.index("T-shirt/top"), FASHION_CLASSES.index("Shirt")
    for name in ("train", "val", "test"):
        split, source = getattr(task, name), getattr(full, name)
        assert split.X.shape[1:] == (1, 28, 28) and split.X.dtype == torch.float32
        assert split.y.dtype == torch.float32 and set(split.y.unique().tolist()) == {0.0, 1.0}
        assert 0.0 <= split.X.min() and split.X.max() <= 1.0
        # label 1 is exactly the Shirt images, label 0 exactly the T-shirts, in the data layer's split
        torch.testing.assert_close(split.X[split.y == 1], source.X[source.y == shirt])
        torch.testing.assert_close(split.X[split.y == 0], source.X[source.y == tshirt])
    sizes = task.sizes()
    assert sizes["train"] + sizes["val"] == 12_000 and sizes["test"] == 2_000
    # the course's faces set trains ~1,400 steps of 32; the stand-in is of the same order (a few hundred)
    assert 250 <= math.ceil(sizes["train"] / 32) <= 1_400
    assert "Shirt" in task.note and "stand-in" in task.note.lower()


def test_standin_task_subsample_and_bad_classes(tiny_task):
    assert tiny_task.sizes() == {"train": 32, "val": 16, "test": 16}
    x, y = tiny_task.arrays("train")
    assert x.shape == (32, 784) and y.dtype == np.int64 and set(np.unique(y)) <= {0, 1}
    xb, yb = next(iter(tiny_task.loader("train", 16, shuffle=True)))
    assert xb.shape == (16, 1, 28, 28) and yb.dtype == torch.float32
    with pytest.raises(ValueError, match="two different FashionMNIST classes"):
        transfer_learning.fashion_binary_task(classes=("Shirt", "Sweater"))
    with pytest.raises(ValueError, match="Unknown split"):
        tiny_task.split("validation")


def test_faces_imagefolder_is_found_and_loaded(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        for cls in ("fake", "real"):
            folder = tmp_path / "real-vs-fake" / split / cls
            folder.mkdir(parents=True)
            for i in range(3):
                pixels = rng.integers(0, 255, size=(40, 40, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    assert transfer_learning.find_faces([tmp_path / "elsewhere"]) is None
    assert transfer_learning.find_faces([tmp_path]) == tmp_path / "real-vs-fake"
    task = transfer_learning.load_binary_task(root=tmp_path, image_size=SIZE)
    assert task.classes == ["fake", "real"] and task.sizes() == {"train": 6, "val": 6, "test": 6}
    xb, yb = next(iter(task.loader("train", 6)))
    assert xb.shape == (6, 3, SIZE, SIZE) and yb.dtype == torch.float32
    assert sorted(yb.tolist()) == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    assert task.arrays("test")[0].shape == (6, 3 * SIZE * SIZE)


# --- models and the kit backbone -----------------------------------------------------------------
def test_kit_backbone_pretrains_caches_and_transfers(smoke, monkeypatch):
    from helpers.config import cache_dir

    backbone = transfer_learning.kit_backbone(SIZE, train_limit=32, batch_size=32)
    assert backbone.source == "kit" and 0.0 <= backbone.val_acc <= 1.0
    assert "8 other FashionMNIST classes" in backbone.description
    files = list((cache_dir() / "backbones").glob("*.pt"))
    assert len(files) == 1

    def no_training(*args, **kwargs):
        raise AssertionError("a cached backbone must not be trained again")

    monkeypatch.setattr(transfer_learning, "fit", no_training)
    again = transfer_learning.kit_backbone(SIZE, train_limit=32, batch_size=32)
    for k, v in backbone.state_dict.items():
        torch.testing.assert_close(again.state_dict[k], v)
    # the surgery of sheet 3's part 7 starts from these weights, with the 8-class pretraining head
    pretrained = transfer_learning.pretrained_model(backbone)
    torch.testing.assert_close(pretrained.conv1.weight, backbone.state_dict["conv1.weight"])
    assert pretrained.fc.out_features == 8
    with pytest.raises(ValueError, match="needs a Backbone"):
        transfer_learning.pretrained_model(None)


def test_pretrained_backbone_falls_back_to_kit_offline(smoke, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no ImageNet weights cached there; tests run offline
    backbone = transfer_learning.pretrained_backbone(SIZE, train_limit=32, batch_size=32)
    assert backbone.source == "kit"
    from helpers.models import PretrainedUnavailable

    with pytest.raises(PretrainedUnavailable):
        transfer_learning.pretrained_backbone(SIZE, prefer="imagenet")


# --- baselines and results -------------------------------------------------------------------------
def _probe(resnet):
    """A linear probe as sheet 3's part 7 builds it (the exercise's reference, in a few lines)."""
    resnet.requires_grad_(False)
    resnet.fc = torch.nn.Linear(resnet.fc.in_features, 1)
    return resnet


def test_every_baseline_returns_metrics_and_test_probabilities(tiny_task, tiny_backbone):
    backbone = tiny_backbone
    n_test = len(tiny_task.test)
    for name in transfer_learning.BASELINES:
        if name in transfer_learning.SURGERY_BASELINES:
            h = transfer_learning.train_resnet(tiny_task, _probe(transfer_learning.pretrained_model(backbone)), 1e-3,
                                               image_size=SIZE, name=name)
        else:
            h = transfer_learning.run_baseline(tiny_task, name, lr=1e-3, backbone=backbone, image_size=SIZE)
        assert isinstance(h, History) and len(h.epoch) == 1, name
        for key in ("val_acc", "test_acc"):
            assert 0.0 <= h.final(key) <= 1.0, (name, key)
        assert math.isfinite(h.final("val_loss")) and math.isfinite(h.final("test_loss")), name
        probs = transfer_learning.test_probs(h)
        assert "test_probs" in h.extras and "test_probs" not in h.config, name
        assert probs.shape == (n_test,) and ((probs >= 0) & (probs <= 1)).all(), name
        # the stored probabilities reproduce the recorded test accuracy
        assert np.mean((probs > 0.5) == tiny_task.test.y.numpy()) == pytest.approx(h.final("test_acc")), name
    with pytest.raises(ValueError, match="Unknown baseline"):
        transfer_learning.run_baseline(tiny_task, "svm")
    with pytest.raises(ValueError, match="model surgery"):
        transfer_learning.run_baseline(tiny_task, "finetune", lr=1e-3, backbone=backbone)


def test_train_resnet_trains_only_what_requires_grad(tiny_task, tiny_backbone):
    model = _probe(transfer_learning.pretrained_model(tiny_backbone))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    h = transfer_learning.train_resnet(tiny_task, model, 1e-2, image_size=SIZE, name="probe")
    assert h.config["model"] == "probe"
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k]) and "running" not in k
               and "num_batches" not in k}
    assert changed == {"fc.weight", "fc.bias"}


def test_xgboost_baseline_learns_the_standin(smoke):
    task = transfer_learning.fashion_binary_task(train_limit=300)
    h = transfer_learning.xgboost_baseline(task, n_estimators=20)  # the notebook uses the defaults (100 trees)
    assert h.final("train_acc") > 0.95 and h.final("val_acc") > 0.7


def _fake_run(baseline, lr, val_acc, test_acc, test_loss=None):
    h = History()
    test_loss = 1 - test_acc if test_loss is None else test_loss
    h.append_epoch(epoch=0, val_acc=val_acc, val_loss=1 - val_acc, test_acc=test_acc, test_loss=test_loss, time=1.0)
    return {"baseline": baseline, "lr": lr, "history": h}


def test_ranking_best_per_baseline_and_misclassified(tiny_task):
    # Ranked by test accuracy as in the course, whatever the validation accuracy says; a tie goes to the lower
    # test loss. The xgboost run has the best validation accuracy and still ranks last.
    runs = pd.DataFrame([_fake_run("scratch", 1e-2, 0.70, 0.69), _fake_run("scratch", 1e-3, 0.80, 0.78, 0.40),
                         _fake_run("scratch", 1e-4, 0.70, 0.78, 0.30), _fake_run("finetune", 1e-3, 0.80, 0.88),
                         _fake_run("xgboost", math.nan, 0.95, 0.61)])
    ranking = transfer_learning.ranking_table(runs)
    assert ranking["rank"].tolist() == [1, 2, 3, 4, 5]
    assert ranking["baseline"].tolist() == ["finetune", "scratch", "scratch", "scratch", "xgboost"]
    assert ranking["lr"].tolist()[1:3] == [1e-4, 1e-3]  # tie on test accuracy: lower test loss first
    best = transfer_learning.best_per_baseline(ranking, k=2)
    assert best.groupby("baseline").size().to_dict() == {"finetune": 1, "scratch": 2, "xgboost": 1}
    assert 1e-2 not in best["lr"].tolist()

    y = tiny_task.test.y.numpy()
    probs = np.where(y == 1, 0.9, 0.1)
    probs[[1, 4, 7]] = 1 - probs[[1, 4, 7]]  # three deliberate mistakes
    images, true, pred = transfer_learning.misclassified(tiny_task, probs, n=5)
    assert images.shape == (3, 1, 28, 28) and (true != pred).all()
    torch.testing.assert_close(images[1], tiny_task.test.X[4])
    with pytest.raises(ValueError, match="probabilities"):
        transfer_learning.misclassified(tiny_task, probs[:-1])


def test_xgboost_sees_the_courses_centre_crop_of_a_224_resize():
    # A 28×28 image whose centre 12×12 is bright: Resize(224) scales by 8, so the centre 64×64 crop (the original
    # pixels 10..17) lies inside that square.
    images = torch.zeros(3, 1, 28, 28)
    images[:, :, 8:20, 8:20] = 1.0
    images[1, :, 0, 0] = 1.0  # a corner pixel, outside the crop
    pixels = transfer_learning.crop_pixels(images)
    assert pixels.shape == (3, 64 * 64)
    assert pixels.min() > 0.9 and np.allclose(pixels[0], pixels[1]), "only the centre survives the crop"
    rgb = transfer_learning.crop_pixels(torch.rand(2, 3, 40, 50))  # non-square: the shorter side becomes 224
    assert rgb.shape == (2, 3 * 64 * 64)


def test_xgboost_pixels_batch_through_a_split(tiny_task):
    x, y = transfer_learning.xgboost_pixels(tiny_task, "test", batch_size=5)
    assert x.shape == (len(tiny_task.test), 64 * 64) and (y == tiny_task.labels("test")).all()
    np.testing.assert_allclose(x[7], transfer_learning.crop_pixels(tiny_task.test.X[7:8])[0], atol=1e-6)


def test_no_download_is_tried_once_the_weights_are_known_absent(smoke, monkeypatch, tmp_path):
    from helpers.models import PretrainedUnavailable

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # nothing cached there
    monkeypatch.setenv("KIT_CACHE", str(tmp_path / "cache"))
    tries = []

    def fake_resnet18(*args, **kwargs):
        tries.append(kwargs)
        raise PretrainedUnavailable("no network")

    monkeypatch.setattr(transfer_learning, "pretrained_resnet18", fake_resnet18)
    monkeypatch.setattr(transfer_learning, "kit_backbone", lambda size, **kw: transfer_learning.Backbone("kit", {}, "kit"))
    monkeypatch.setenv("KIT_OFFLINE", "1")
    assert transfer_learning.pretrained_backbone(SIZE).source == "kit" and tries == [], "offline: not even one try"
    monkeypatch.setenv("KIT_OFFLINE", "0")
    transfer_learning.pretrained_backbone(SIZE)
    transfer_learning.pretrained_backbone(SIZE)
    assert len(tries) == 1, "online: one failed try, then the failure is remembered"
    with pytest.raises(PretrainedUnavailable):
        transfer_learning.pretrained_backbone(SIZE, prefer="imagenet")  # asked for explicitly: it tries and says why

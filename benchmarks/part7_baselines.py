"""Sheet 3, part 7: the five transfer-learning baselines, one setting each, with their accuracy and time.

XGBoost on the course's Resize(224) + CenterCrop(64) pixels, ResNet18 from scratch, the linear probe, the
scikit-learn probe on frozen features and the fine-tune, each for ``--epochs`` on the binary task the sheet
uses (the course's faces when they are in the data root, else the FashionMNIST stand-in), through the kit's
study machinery (``helpers.transfer_learning``). The pretrained backbone is torchvision's ImageNet ResNet18
when its weights are cached, else the kit's own (pretrained on the other eight FashionMNIST classes and
cached in ``KIT_CACHE``). The ResNets run at the course's best learning rate per baseline. Writes a JSON list
with one record per baseline: baseline, setting, accuracy (test), seconds (wall time of the run, its
evaluation included), device, and a few more fields (val_accuracy, image_size, epochs, train_images, backbone).

    python -m benchmarks.part7_baselines --image-size 224 --epochs 1 --device cuda --out build/part7.json
    python -m benchmarks.part7_baselines --image-size 16 --limit 64 --device cpu --out /tmp/part7.json   # seconds

On a CPU, without ``--image-size`` and ``--limit``, it runs the quick profile's size (32 px, 960 training images).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from torch import nn

# The course's best learning rate of each ResNet baseline (its 7.6.1 ranking).
LRS = {"scratch": 1e-4, "linear_probe": 1e-1, "finetune": 1e-4}
ORDER = ("xgboost", "scratch", "linear_probe", "logreg", "finetune")
CPU_DEFAULTS = {"image_size": 32, "limit": 960}


# --- Reference versions of sheet 3's part-7 exercises. The model surgery lives in the notebook, where the
# student writes it (LinearProbe, fine_tune); the benchmark carries these short copies so it needs no notebook.
class _LinearProbe(nn.Module):
    """A frozen pretrained ResNet18 (its 512 features, batch norm kept in eval mode) and a new linear head."""

    def __init__(self, resnet: nn.Module, n_out: int = 1):
        super().__init__()
        n_features, resnet.fc = resnet.fc.in_features, nn.Identity()
        self.backbone, self.head = resnet.requires_grad_(False), nn.Linear(n_features, n_out)

    def train(self, mode: bool = True) -> "_LinearProbe":
        super().train(mode)
        self.backbone.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def _fine_tune(resnet: nn.Module, n_out: int = 1) -> nn.Module:
    """The whole pretrained ResNet18 trainable, with a new head."""
    resnet.fc = nn.Linear(resnet.fc.in_features, n_out)
    return resnet.requires_grad_(True)


SURGERY = {"linear_probe": _LinearProbe, "finetune": _fine_tune}
SETTINGS = {"xgboost": "default parameters on Resize(224) + CenterCrop(64) pixels",
            "logreg": "StandardScaler + LogisticRegression(max_iter={max_iter}) on frozen features"}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.part7_baselines", description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=None, help="side the ResNets see (course: 224)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of each ResNet baseline (course: 1)")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: KIT_DEVICE, else the best there is)")
    parser.add_argument("--limit", type=int, default=None, help="training images (evaluation: at most half as many)")
    parser.add_argument("--batch-size", type=int, default=32, help="ResNet training batch (course: 32)")
    parser.add_argument("--backbone-limit", type=int, default=2560,
                        help="images for the kit's own backbone, used without ImageNet weights (default 2560)")
    parser.add_argument("--baselines", default=",".join(ORDER), help=f"comma-separated subset of {','.join(ORDER)}")
    parser.add_argument("--out", type=Path, default=Path("build/bench/part7_baselines.json"), help="JSON file to write")
    args = parser.parse_args(argv)
    unknown = set(args.baselines.split(",")) - set(ORDER)
    if unknown:
        parser.error(f"unknown baselines {sorted(unknown)}; choose from {', '.join(ORDER)}")
    return args


def run(args: argparse.Namespace) -> list[dict]:
    """Train each baseline once; return one record per baseline."""
    if args.device:
        os.environ["KIT_DEVICE"] = args.device  # the kit's own training (the backbone) uses it too
    from helpers import transfer_learning as tl
    from helpers.config import seed_everything
    from helpers.device import get_device

    device = get_device(args.device)
    if device.type == "cpu" and args.image_size is None and args.limit is None:
        print(f"CPU without --image-size/--limit: the quick profile's size {CPU_DEFAULTS}")
        args.image_size, args.limit = CPU_DEFAULTS["image_size"], CPU_DEFAULTS["limit"]
    size = args.image_size or 224
    eval_limit = None if args.limit is None else max(args.limit // 2, 16)
    task = tl.load_binary_task(image_size=size, train_limit=args.limit, eval_limit=eval_limit)
    start = time.perf_counter()
    backbone = tl.pretrained_backbone(size, train_limit=args.backbone_limit, val_limit=500, epochs=1)
    print(f"task: {task.note}\nbackbone ({time.perf_counter() - start:.0f} s): {backbone.description}")
    records = []
    for baseline in args.baselines.split(","):
        seed_everything(0)
        start = time.perf_counter()
        if baseline in SURGERY:
            model = SURGERY[baseline](tl.pretrained_model(backbone))
            history = tl.train_resnet(task, model, LRS[baseline], image_size=size, epochs=args.epochs,
                                      batch_size=args.batch_size, name=baseline, device=device)
        else:
            history = tl.run_baseline(task, baseline, LRS.get(baseline), backbone=backbone, image_size=size,
                                      epochs=args.epochs, batch_size=args.batch_size, device=device)
        seconds = time.perf_counter() - start
        setting = f"lr {LRS[baseline]:g}, Adam, batch {args.batch_size}" if baseline in LRS else \
            SETTINGS[baseline].format(max_iter=tl.LOGREG_MAX_ITER)
        records.append({"baseline": baseline, "setting": setting, "accuracy": history.final("test_acc"),
                        "seconds": round(seconds, 2), "device": "cpu" if baseline == "xgboost" else str(device),
                        "val_accuracy": history.final("val_acc"), "image_size": size, "epochs": args.epochs,
                        "train_images": task.sizes()["train"], "backbone": backbone.source})
        print(f"{baseline:13s} {records[-1]['accuracy']:.4f}  {seconds:7.1f} s  {setting}")
    return records


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    records = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

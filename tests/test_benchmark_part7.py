"""benchmarks.part7_baselines: the five baselines of sheet 3's part 7, at a tiny size on the CPU."""
from __future__ import annotations

import json

import pytest

from benchmarks import part7_baselines


@pytest.mark.usefixtures("one_thread")
def test_the_five_baselines_run_and_write_their_table(tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_PROFILE", "smoke")  # generated stand-in images: no data files needed
    out = tmp_path / "part7.json"
    assert part7_baselines.main(["--image-size", "16", "--limit", "32", "--backbone-limit", "32", "--epochs", "1",
                                 "--device", "cpu", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["baseline"] for r in rows] == ["xgboost", "scratch", "linear_probe", "logreg", "finetune"]
    for row in rows:
        assert {"baseline", "setting", "accuracy", "seconds", "device"} <= set(row)
        assert 0.0 <= row["accuracy"] <= 1.0 and row["seconds"] > 0, row
        assert row["device"] == "cpu" and row["image_size"] == 16 and row["train_images"] == 32
    assert rows[2]["setting"].startswith("lr 0.1") and "max_iter=2000" in rows[3]["setting"]


def test_the_reference_surgery_trains_what_the_sheet_says():
    from torchvision.models import resnet18

    probe = part7_baselines._LinearProbe(resnet18(weights=None))
    assert sum(p.numel() for p in probe.parameters() if p.requires_grad) == 513
    assert not any(m.training for m in probe.train().backbone.modules())
    tuned = part7_baselines._fine_tune(resnet18(weights=None).requires_grad_(False))
    assert all(p.requires_grad for p in tuned.parameters()) and tuned.fc.out_features == 1


def test_an_unknown_baseline_is_refused():
    with pytest.raises(SystemExit):
        part7_baselines.parse(["--baselines", "xgboost,svm"])

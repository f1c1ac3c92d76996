"""Tests for helpers.store: stable keys, atomic writes that leave nothing half-written, safe torch loads."""
from __future__ import annotations

import pickle

import pytest
import torch

from helpers import store


def test_content_key_is_stable_and_order_free():
    a = store.content_key({"lr": 0.1, "depth": [1, 2], "name": "x"})
    assert a == store.content_key({"name": "x", "depth": [1, 2], "lr": 0.1}) and len(a) == 24
    assert a != store.content_key({"lr": 0.2, "depth": [1, 2], "name": "x"})
    assert len(store.content_key("x", 12)) == 12


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "deep" / "r.json"
    store.write_json(path, {"ok": 1})
    with pytest.raises(RuntimeError):
        with store.atomic_file(path, "w") as f:
            f.write('{"half": ')
            raise RuntimeError("killed mid-write")
    assert store.read_json(path) == {"ok": 1}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"], "the temp file was left behind"
    with pytest.raises(ValueError):
        store.write_json(path, {"x": float("nan")})  # JSON has no NaN: make it json_safe first
    assert store.read_json(tmp_path / "missing.json") is None


def test_publish_dir_keeps_the_first_and_can_replace(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for folder, text in ((first, "1"), (second, "2")):
        folder.mkdir()
        (folder / "f").write_text(text)
    target = tmp_path / "target"
    assert store.publish_dir(first, target) and (target / "f").read_text() == "1"
    assert not store.publish_dir(second, target) and (target / "f").read_text() == "1"
    assert store.publish_dir(second, target, replace=True) and (target / "f").read_text() == "2"


def test_torch_round_trip_and_refusal_of_arbitrary_objects(tmp_path):
    state = {"w": torch.arange(3.0), "epoch": 2, "name": "x"}
    path = store.save_torch(tmp_path / "m.pt", state)
    back = store.load_torch(path)
    assert torch.equal(back["w"], state["w"]) and back["epoch"] == 2

    class Payload:
        def __reduce__(self):
            return (print, ("executed",))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"x": Payload()}, protocol=2))
    with pytest.raises(pickle.UnpicklingError):
        store.load_torch(evil)

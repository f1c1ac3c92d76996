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


# --- callable_identity: a function named by its code --------------------------------------------------
TRAIN = "def train(lr, seed):\n    return scale(lr)\n"


def test_identity_follows_the_notebook_functions_a_function_calls(notebook):
    notebook.run("def scale(x):\n    return x\n")
    train = notebook.run(TRAIN)["train"]
    before = store.callable_identity(train)
    assert store.callable_identity(train) == before, "the same code gives the same identity"
    notebook.run("def scale(x):\n    return 100 * x\n")   # the helper changes, train's own source does not
    assert store.callable_identity(train) != before
    notebook.run("def scale(x):\n    return x\n")
    assert store.callable_identity(train) == before, "going back to the old code finds the old identity"
    notebook.run("def unrelated(x):\n    return -x\n")
    assert store.callable_identity(train) == before, "a function train does not use is not part of it"


def test_identity_is_the_same_in_another_session(notebook):
    other = type(notebook)()
    for nb in (notebook, other):  # two kernels running the same cells (other cell numbers, other addresses)
        nb.run("def scale(x):\n    return x\n")
        nb.run(TRAIN)
    assert store.callable_identity(notebook["train"]) == store.callable_identity(other["train"])


def test_identity_sees_classes_closures_partials_and_methods(notebook):
    import functools

    ns = notebook.run("class Net:\n    width = 4\n    def forward(self, x):\n        return self.width * x\n\n"
                      "def train(lr, seed):\n    return Net().forward(lr)\n\n"
                      "def make(factor):\n    def step(x):\n        return factor * x\n"
                      "    def train(lr, seed):\n        return step(lr)\n    return train\n")
    train, made, method = ns["train"], ns["make"](2), ns["Net"]().forward
    ids = {name: store.callable_identity(fn) for name, fn in
           {"train": train, "made": made, "partial": functools.partial(train, seed=0), "method": method}.items()}
    assert ids["partial"] == ids["train"], "the bound settings are data; the code is train's"
    notebook.run("class Net:\n    width = 8\n    def forward(self, x):\n        return self.width * x\n")
    assert store.callable_identity(train) != ids["train"], "a notebook class the function uses (class attribute)"
    assert store.callable_identity(ns["Net"]().forward) != ids["method"], "a bound method is its class's code"
    notebook.run("def make(factor):\n    def step(x):\n        return factor * x + 1\n"
                 "    def train(lr, seed):\n        return step(lr)\n    return train\n")
    assert store.callable_identity(ns["make"](2)) != ids["made"], "a function in the closure"


def test_identity_refuses_lambdas_and_unreadable_code():
    with pytest.raises(ValueError, match=r"lambda.*def name"):
        store.callable_identity(lambda lr, seed: lr)
    namespace = {"__name__": "__main__"}
    exec("def train(lr, seed):\n    return lr\n", namespace)  # no file, no linecache: no source to read
    with pytest.raises(ValueError, match=r"Cannot read the source of train"):
        store.callable_identity(namespace["train"])
    with pytest.raises(ValueError, match="not callable"):
        store.callable_identity(3)


def test_identity_leaves_libraries_out_and_the_kit_to_its_digest(tmp_path, monkeypatch):
    import torch.nn

    from helpers.training import fit

    assert store.callable_identity(torch.nn.Linear) == store.callable_identity(torch.nn.Linear)
    kit = tmp_path / "helpers"
    (kit / "export").mkdir(parents=True)
    (kit / "training.py").write_text("# v1\n")
    (kit / "export" / "browser.py").write_text("# v1\n")
    first = store.kit_digest(kit)
    (kit / "export" / "browser.py").write_text("# v2\n")
    (kit / "assignments").mkdir()
    (kit / "assignments" / "grade.py").write_text("# grading\n")
    assert store.kit_digest(kit) == first, "printing and grading modules cannot change a run"
    (kit / "training.py").write_text("# v2\n")   # same size, maybe the same clock tick: contents count
    assert store.kit_digest(kit) != first
    before = store.callable_identity(fit)
    monkeypatch.setattr(store, "KIT_ROOT", kit)
    assert store.callable_identity(fit) != before, "a kit function is identified through the kit's sources"

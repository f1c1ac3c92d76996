"""KIT_SEED: one setting shifts every seed a sheet uses; 0 changes nothing, and a shifted run has keys of its own."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import config, experiments, sweeps
from helpers.data import Split, split_indices
from helpers.export import cache as export_cache
from helpers.export.tidy import title_block
from helpers.history import History
from helpers.synthetic import Synthetic2D


def _draws(seed: int = 0) -> dict:
    """What each way a sheet turns a seed into numbers gives for ``seed`` under the current KIT_SEED."""
    config.seed_everything(seed)
    global_draw = (torch.rand(3).tolist(), np.random.rand(2).tolist())
    split = Split(torch.arange(20.0).reshape(20, 1), torch.arange(20))
    return {"global": global_draw,
            "loader": [yb.tolist() for _, yb in split.loader(5, shuffle=True, seed=seed)],
            "subset": split.subset(5, seed=seed).y.tolist(),
            "split": split_indices(20, 5, seed)[1].tolist(),
            "synthetic": Synthetic2D("moons", n=8, seed=seed).generate()[0].tolist()}


def test_offset_zero_is_the_sheets_own_seeds(monkeypatch):
    monkeypatch.delenv(config.SEED_ENV, raising=False)
    unset = _draws(3)
    monkeypatch.setenv(config.SEED_ENV, "0")
    assert _draws(3) == unset
    # and exactly what the generators give for seed 3 itself (today's numbers)
    assert unset["split"] == np.sort(np.random.default_rng(3).permutation(20)[:5]).tolist()
    assert unset["subset"] == torch.randperm(20, generator=torch.Generator().manual_seed(3))[:5].sort().values.tolist()


def test_the_offset_shifts_every_seed(monkeypatch):
    monkeypatch.setenv(config.SEED_ENV, "2")
    shifted = _draws(1)
    monkeypatch.setenv(config.SEED_ENV, "0")
    assert _draws(3) == shifted          # seed 1 under KIT_SEED=2 draws what seed 3 draws
    assert _draws(1) != shifted          # every kind of draw moved, not only some
    for kind, values in _draws(1).items():
        assert values != shifted[kind], kind


def test_the_run_record_keeps_the_seeds_names(monkeypatch):
    monkeypatch.setenv(config.SEED_ENV, "5")
    config.seed_everything(987_654)
    assert 987_654 in config.seeds_used() and 987_659 not in config.seeds_used()


@pytest.mark.parametrize("raw", ["x", "1.5", "-1"])
def test_a_bad_offset_names_the_setting(monkeypatch, raw):
    monkeypatch.setenv(config.SEED_ENV, raw)
    with pytest.raises(ValueError, match="KIT_SEED must be a whole number"):
        config.seed_offset()


def train_tiny(lr, seed):
    """A stand-in training function for the cache keys."""
    return History()


def test_cache_keys_stay_at_zero_and_differ_with_an_offset(monkeypatch, tmp_path):
    monkeypatch.delenv(config.SEED_ENV, raising=False)
    payload = experiments._key_payload(train_tiny, {"lr": 0.1}, {}, 0, "smoke", "code")
    # KIT_SEED unset or 0: the payload holds exactly what it held before the setting existed
    assert set(payload) == {"fn", "code", "params", "fixed", "seed", "profile"}
    base = experiments.cache_key(train_tiny, {"lr": 0.1}, profile="smoke")
    base_version = sweeps._version("code", "smoke")
    notebook = tmp_path / "sheet.ipynb"
    notebook.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    base_exec = export_cache.keys(notebook, "smoke").execution
    monkeypatch.setenv(config.SEED_ENV, "0")
    assert experiments.cache_key(train_tiny, {"lr": 0.1}, profile="smoke") == base
    assert sweeps._version("code", "smoke") == base_version
    assert export_cache.keys(notebook, "smoke").execution == base_exec
    monkeypatch.setenv(config.SEED_ENV, "1")
    one = experiments.cache_key(train_tiny, {"lr": 0.1}, profile="smoke")
    assert one != base
    assert sweeps._version("code", "smoke") != base_version
    assert export_cache.keys(notebook, "smoke").execution != base_exec
    monkeypatch.setenv(config.SEED_ENV, "2")
    assert experiments.cache_key(train_tiny, {"lr": 0.1}, profile="smoke") not in (base, one)


def draw_once(k, seed):
    """A grid's training function that reports the first number its seed draws."""
    config.seed_everything(seed)
    return {"draw": float(torch.rand(1))}


def test_a_grid_trains_under_the_offset_and_caches_apart(monkeypatch, tmp_path):
    monkeypatch.setenv("KIT_CACHE", str(tmp_path))
    monkeypatch.delenv("KIT_SCHEDULER", raising=False)
    monkeypatch.setenv(config.SEED_ENV, "0")
    zero = experiments.run_grid(draw_once, {"k": [1]}, repeats=2, profile="smoke", name="offset", quiet=True, n_jobs=2)
    monkeypatch.setenv(config.SEED_ENV, "1")
    # the same worker processes (started under KIT_SEED=0, reused): the offset travels with each run
    one = experiments.run_grid(draw_once, {"k": [1]}, repeats=2, profile="smoke", name="offset", quiet=True, n_jobs=2)
    here = experiments.run_grid(draw_once, {"k": [2]}, repeats=2, profile="smoke", name="offset", quiet=True, n_jobs=1)
    assert one["draw"].tolist() == here["draw"].tolist()    # in a worker as in this process
    assert not one["cached"].any()                          # its own cache entries, not seed 0's
    assert one["seed"].tolist() == [0, 1]                   # the seeds keep their names
    assert one["draw"].iloc[0] == zero["draw"].iloc[1]      # seed 0 under KIT_SEED=1 draws seed 1's number


def test_the_title_block_shows_an_offset_only_when_set():
    plain = title_block("s", "quick", "2026-01-01", "cpu", "v")
    assert "Seed offset" not in plain.source
    assert "KIT_SEED=2" in title_block("s", "quick", "2026-01-01", "cpu", "v", seed_offset=2).source

"""Run profile, paths and seeding from helpers.config; the settings table in helpers.profiles."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from helpers import config, profiles


def test_profile_defaults_to_quick_and_reads_the_environment(monkeypatch):
    assert config.get_profile() == "quick"
    monkeypatch.setenv("KIT_PROFILE", "Smoke")
    assert config.get_profile() == "smoke"
    assert config.get_profile("full") == "full"


def test_unknown_profile_names_the_choices(monkeypatch):
    monkeypatch.setenv("KIT_PROFILE", "fast")
    with pytest.raises(ValueError, match="smoke, quick, full"):
        config.get_profile()


def test_paths_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("KIT_DATA", str(tmp_path / "d"))
    monkeypatch.setenv("KIT_CACHE", str(tmp_path / "c"))
    assert config.data_root() == tmp_path / "d"
    assert config.data_search_roots()[0] == tmp_path / "d"
    assert config.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()
    monkeypatch.delenv("KIT_DATA")
    assert config.data_root() == config.REPO_ROOT / "data"


def test_importing_config_does_not_import_torch():
    # The exporter reads the profile from config; that must not pay for loading torch.
    import subprocess
    import sys

    code = "import sys, helpers.config; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=config.REPO_ROOT).returncode == 0


def test_seed_everything_repeats_all_three_generators():
    def draw():
        return random.random(), float(np.random.rand()), float(torch.rand(1))
    config.seed_everything(7)
    first = draw()
    config.seed_everything(7)
    assert draw() == first
    config.seed_everything(8)
    assert draw() != first


def test_every_experiment_has_all_three_profiles():
    for name, table in profiles.SETTINGS.items():
        assert set(table) == set(config.PROFILES), name


def test_settings_are_copies_and_unknown_names_fail(monkeypatch):
    name = next(iter(profiles.SETTINGS))
    s = profiles.settings(name, "smoke")
    s["__poke__"] = 1
    assert "__poke__" not in profiles.settings(name, "smoke")
    with pytest.raises(ValueError, match="known experiments"):
        profiles.settings("no.such.experiment")


def test_scale_note_names_what_a_profile_changes_from_the_course():
    assert profiles.scale_note("mlp.lr", "full") == "[full profile] the course's settings"
    quick = profiles.scale_note("mlp.batch_size", "quick")
    assert quick.startswith("[quick profile] ") and "epochs 1/2/10/10 (course: 1/10/50/50)" in quick
    assert "train_limits 10,000/all/all/all (course: all/all/all/all)" in quick
    assert "batch_sizes" not in quick, "settings equal to the course's are not listed"

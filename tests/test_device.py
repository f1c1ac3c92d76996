"""Tests for helpers.device: which device, which precision, how much memory (one answer each)."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch
from torch import nn

from helpers import device
from helpers.device import CUDA_KIND, RSS_KIND, MemoryMeter, get_device, track_peak_memory

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")


def test_device_from_argument_environment_or_default(monkeypatch):
    monkeypatch.setenv("KIT_DEVICE", " CPU ")
    assert get_device() == torch.device("cpu")
    assert get_device("Cpu") == torch.device("cpu") and get_device(torch.device("cpu")) == torch.device("cpu")
    monkeypatch.delenv("KIT_DEVICE")
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert get_device().type == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_unavailable_or_unknown_device_names_the_setting(monkeypatch):
    monkeypatch.setenv("KIT_DEVICE", "cuda")
    with pytest.raises(ValueError, match="KIT_DEVICE asks for 'cuda'.*CUDA is not available"):
        get_device()
    with pytest.raises(ValueError, match="device argument"):
        get_device("cuda:0")
    monkeypatch.setenv("KIT_DEVICE", "gpu please")
    with pytest.raises(ValueError, match="KIT_DEVICE is 'gpu please'"):
        get_device()


def test_device_of_follows_the_model_parameters():
    assert device.device_of(nn.Linear(2, 2)) == torch.device("cpu")
    assert device.device_of(nn.ReLU()) == torch.device("cpu")
    assert device.device_of(nn.Linear(2, 2), "cpu") == torch.device("cpu")


def test_one_precision_answer_per_device_type():
    cpu, cuda, mps = (torch.device(t) for t in ("cpu", "cuda", "mps"))
    assert device.amp_dtype(cpu) == torch.bfloat16 and not device.uses_grad_scaler(cpu)
    assert device.amp_dtype(cuda) == torch.float16 and device.uses_grad_scaler(cuda)
    assert device.amp_dtype(mps) == torch.float16 and device.uses_grad_scaler(mps)
    assert not device.grad_scaler(cpu, enabled=True).is_enabled()
    with device.autocast(cpu, enabled=True):
        assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.bfloat16
    with device.autocast(cpu, enabled=False):
        assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.float32


def test_cpu_peak_memory_is_the_increase_over_the_run_start():
    with track_peak_memory(torch.device("cpu"), interval=0.005) as mem:
        block = np.ones(200 * 2**20 // 8)  # 200 MB, touched so that it is resident
        time.sleep(0.05)
        del block
    assert mem.kind == RSS_KIND
    assert mem.increase_mb >= 150, mem
    assert mem.peak_mb >= mem.increase_mb and mem.run_mb == mem.increase_mb


def test_meter_reads_the_peak_so_far_and_stops_its_thread():
    meter = MemoryMeter(torch.device("cpu"), interval=0.005).start()
    first = meter.read()
    block = np.ones(100 * 2**20 // 8)
    time.sleep(0.03)
    del block
    final = meter.stop()
    assert final.increase_mb >= 80 and final.increase_mb >= first.increase_mb
    assert meter._sampler is None


@needs_cuda
def test_cuda_peak_memory_is_reset_per_run():
    big = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda")  # 256 MB peak before the run
    del big
    with track_peak_memory(torch.device("cuda")) as mem:
        small = torch.empty(16 * 2**20, dtype=torch.uint8, device="cuda")
        del small
    assert mem.kind == CUDA_KIND
    assert 15 <= mem.increase_mb < 64, "the earlier 256 MB peak leaked in: the stats were not reset"


# --- how many CPU threads: the cores this process may use, KIT_THREADS to override --------------------
def test_cpu_threads_follow_the_usable_cores_unless_kit_threads_says_otherwise(monkeypatch):
    monkeypatch.delenv("KIT_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(device, "_cpu_quota", lambda: None)
    assert device.usable_cores() == 4 and device.cpu_threads() == 4
    monkeypatch.setattr(device, "_cpu_quota", lambda: 2)   # a container started with --cpus 2 on a 4-core host
    assert device.usable_cores() == 2 and device.cpu_threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert device.cpu_threads() == 3
    monkeypatch.setenv("KIT_THREADS", "1")
    assert device.cpu_threads() == 1


@pytest.mark.parametrize("value", ["0", "two", "-1", "1.5"])
def test_a_bad_kit_threads_names_the_setting_and_the_fix(monkeypatch, value):
    monkeypatch.setenv("KIT_THREADS", value)
    with pytest.raises(ValueError, match=rf"KIT_THREADS is '{value}'.*whole number of threads >= 1.*or unset it"):
        device.cpu_threads()


def test_importing_the_kit_sets_torch_threads_from_kit_threads_and_keeps_a_lower_count():
    """A kernel's torch threads follow KIT_THREADS (and the usable cores) from the setup cell's imports on;
    a script that chose fewer threads before importing the kit keeps them."""
    import subprocess
    import sys
    from pathlib import Path

    def threads_after_import(before: str, **env: str) -> list[str]:
        code = f"import torch; {before}; import helpers.training; print(torch.get_num_threads())"
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), **env}
        env.pop("OMP_NUM_THREADS", None)
        if "KIT_THREADS" not in env or not env["KIT_THREADS"]:
            env.pop("KIT_THREADS", None)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        return out.stdout.split() or [out.stderr[-2000:]]

    assert threads_after_import("pass", KIT_THREADS="3") == ["3"]
    assert threads_after_import("torch.set_num_threads(1)", KIT_THREADS="") == ["1"]
    assert threads_after_import("torch.set_num_threads(64)", KIT_THREADS="") == [str(device.usable_cores())]


def test_cpu_threads_for_a_block_and_back():
    before = torch.get_num_threads()
    with device.cpu_threads_for(3):
        assert torch.get_num_threads() == 3
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), device.cpu_threads_for(1):
        raise RuntimeError("a run that fails")
    assert torch.get_num_threads() == before


def test_worker_environment_makes_a_process_compute_on_one_thread():
    env = device.worker_environment()
    assert env["KIT_THREADS"] == "1" and env["OMP_NUM_THREADS"] == "1" and device.WORKER_THREADS == 1

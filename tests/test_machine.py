"""Which machine a run happened on: the CPU model from the system, torch's threads and kernels as torch has them."""
from __future__ import annotations

import platform

import torch

from helpers import machine


def test_cpu_model_is_read_from_cpuinfo_on_x86_and_arm(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\n"
                   "flags\t\t: fpu avx512f\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\n")
    assert machine.cpu_model(x86) == "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 48.00\n\nHardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n")
    assert machine.cpu_model(arm) == "Raspberry Pi 4 Model B Rev 1.4"
    silent = tmp_path / "silent"
    silent.write_text("processor\t: 0\nBogoMIPS\t: 48.00\n")
    assert machine.cpu_model(silent) == (platform.processor() or platform.machine() or "unknown CPU")


def test_describe_reports_torchs_threads_and_cpu_kernels_as_set():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        described = machine.describe()
    finally:
        torch.set_num_threads(before)
    assert described["cpu"] == machine.cpu_model() and described["cpu"]
    assert described["torch_threads"] == 1
    assert described["cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_label_says_the_model_the_threads_and_what_was_not_recorded():
    record = {"cpu": "AMD EPYC 7B13", "cpu_cores": 2, "torch_threads": 2, "cpu_capability": "AVX2"}
    assert machine.label(record) == "AMD EPYC 7B13, 2 cores; torch 2 threads, AVX2"
    assert machine.label({**record, "torch_threads": 1}) == "AMD EPYC 7B13, 2 cores; torch 1 thread, AVX2"
    assert machine.label({**record, "torch_threads": None}) == "AMD EPYC 7B13, 2 cores; torch not used"
    assert machine.label({}) == "not recorded"

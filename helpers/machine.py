"""Which machine a run happened on: the CPU's model, the instruction set torch picked, torch's thread count.

Every run record and every PDF's cover carry these, so a number that differs between two machines can be traced:
torch's float sums change with the thread count (how a reduction is split) and with the SIMD kernels it selects
for the CPU (AVX2 against AVX-512), so two machines with the same seeds can train different models.

A ground-floor module with no kit imports. It never imports torch: it reports on the torch a sheet already
imported (a sheet that never did has no thread count to report).
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")
# /proc/cpuinfo names the model "model name" on x86; ARM kernels say "Model" or "Hardware", or nothing at all.
_MODEL_KEYS = ("model name", "Model", "Hardware")


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    """The CPU's model name, e.g. 'AMD EPYC 7B13' or 'Apple M2'; the architecture when the system does not say."""
    try:
        fields = dict(line.split(":", 1) for line in cpuinfo.read_text(errors="replace").splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        for key in _MODEL_KEYS:
            if fields.get(key):
                return fields[key]
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            done = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                  timeout=5)
            if done.returncode == 0 and done.stdout.strip():
                return done.stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            pass
    # Windows names the model here; on Linux it is often empty.
    return platform.processor() or platform.machine() or "unknown CPU"


def describe() -> dict[str, Any]:
    """This process's machine as JSON-ready data: CPU model, logical cores, torch's threads and CPU kernels."""
    torch = sys.modules.get("torch")
    threads = capability = None
    if torch is not None:
        threads = torch.get_num_threads()
        capability = torch.backends.cpu.get_cpu_capability()
    return {"cpu": cpu_model(), "cpu_cores": os.cpu_count(), "torch_threads": threads, "cpu_capability": capability}


def label(record: dict[str, Any]) -> str:
    """One line for a cover or a document, e.g. 'AMD EPYC 7B13, 2 cores; torch 2 threads, AVX512'."""
    if not record.get("cpu"):
        return "not recorded"
    text = record["cpu"] + (f", {record['cpu_cores']} cores" if record.get("cpu_cores") else "")
    if record.get("torch_threads"):
        text += f"; torch {record['torch_threads']} thread{'s' if record['torch_threads'] != 1 else ''}"
        text += f", {record['cpu_capability']}" if record.get("cpu_capability") else ""
    else:
        text += "; torch not used"
    return text

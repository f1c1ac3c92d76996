"""benchmarks/gpu_check.sh on a machine without a GPU: everything before the CUDA check works, then it fails loudly.

The check itself runs on a GPU machine (README, "GPU check"); here its steps are tested up to the CUDA check, and
its sheet runner (the master's cells in one namespace, as a kernel runs them) on the CPU in the smoke profile.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
no_gpu_only = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")


def run_check(out: Path, **env) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KIT_GPU_")}
    environ.update(env, KIT_CACHE=str(out / "cache"))
    environ.pop("OUT", None)
    return subprocess.run(["bash", str(SCRIPT), str(out)], env=environ, capture_output=True, text=True, timeout=300)


@no_gpu_only
def test_without_cuda_the_check_sets_up_reports_and_fails_loudly(tmp_path):
    proc = run_check(tmp_path, KIT_GPU_PYTHON=sys.executable)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out
    assert "GPU CHECK FAILED: no CUDA device is visible" in out and "steps 4 and 5 were not run" in out
    assert "the kit imports" in out  # step 1 reached the kit
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [(s["step"], s["status"]) for s in summary["steps"]] == [("setup", "ok"), ("environment", "ok"),
                                                                    ("cuda", "failed")]
    assert summary["exit"] == 3
    env = json.loads((tmp_path / "environment.json").read_text())
    assert env["torch"]["torch"] == torch.__version__ and env["torch"]["cuda_available"] is False
    assert env["sheet_report"]["gpu"] == "no GPU" and "nvidia_smi" in env
    assert "GPU CHECK FAILED" in (tmp_path / "gpu_check.log").read_text()
    assert not (tmp_path / "sheet4_quick.json").exists(), "nothing is measured without a GPU"


@pytest.mark.skipif(shutil.which("python3") is None, reason="no python3")
def test_a_python_without_torch_fails_at_the_cuda_check_too():
    """The CUDA check names a missing torch (a venv whose install went wrong) instead of a traceback."""
    if subprocess.run(["python3", "-c", "import torch"], capture_output=True).returncode == 0:
        pytest.skip("python3 has torch")
    proc = subprocess.run(["python3", "-m", "benchmarks._gpu_check", "require-cuda"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert "no CUDA device is visible. torch is not importable" in proc.stderr


@pytest.mark.skipif(shutil.which("python3") is None, reason="no python3 to make a venv with")
def test_a_failed_install_says_what_to_set(tmp_path):
    probe = subprocess.run(["python3", "-c", "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"],
                           capture_output=True)
    if probe.returncode == 0:
        pytest.skip("python3 has a CUDA torch: the check would use it without installing")
    proc = run_check(tmp_path, KIT_GPU_VENV=str(tmp_path / "venv"),
                     KIT_GPU_PIP_ARGS="--no-index --find-links " + str(tmp_path) + " no-such-package-kit-test")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "making a venv" in out and "KIT_GPU_PIP_ARGS" in out and "KIT_GPU_PYTHON" in out
    assert json.loads((tmp_path / "gpu_check.json").read_text())["steps"][0]["status"] == "failed"


@pytest.mark.slow
def test_the_sheet_runner_runs_sheet_4_as_a_kernel_would(tmp_path):
    """What step 4 runs, here on the CPU in the smoke profile: every code cell, the tables, checks and tests."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "KIT_PROFILE": "smoke", "KIT_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "benchmarks._gpu_check", "sheet4", "--out", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "sheet4_quick.json").read_text())
    assert result["error"] is None
    assert {"env", "speed", "part1", "part2", "part3", "part4", "part5", "part6", "q1", "q5"} <= set(result["tables"])
    assert result["checks"] and len(result["reference"]) == 9
    assert result["part5_tests"] and all(t["passed"] for t in result["part5_tests"]), result["part5_tests"]
    invariants = [c for c in result["checks"] if c["kind"] == "invariant"]
    assert invariants and all(c["ok"] for c in invariants)

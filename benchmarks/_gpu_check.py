"""The GPU check's Python steps (``benchmarks/gpu_check.sh`` runs them; see README, "GPU check").

    python -m benchmarks._gpu_check environment --out DIR   # environment.json: GPU, driver, CUDA, torch, CPU
    python -m benchmarks._gpu_check require-cuda            # exit 3, saying why, when no CUDA device is visible
    python -m benchmarks._gpu_check sheet4 --out DIR        # sheet 4 in the quick profile: sheet4_quick.json

``sheet4`` runs the sheet itself, the master notebook's code cells in order in one namespace, as a kernel
would, so what runs on the GPU is the sheet (its mixed-precision step included), not a copy of it. It needs no
Jupyter: a GPU image that has PyTorch but no Jupyter or otter-grader can run it (IPython's ``display`` and
otter's ``Notebook`` are stood in for where they are missing: nothing here displays or grades). Then it runs
Part 5's tests (public and hidden) on this machine's torch. It writes every table of the sheet, its claim checks
and its course-reference table as JSON. The leading underscore keeps ``make bench`` from running it.
"""
from __future__ import annotations

import argparse
import inspect
import json
import linecache
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
import types
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHEET = REPO / "notebooks" / "04_gpu_performance_lab.ipynb"
NO_CUDA_EXIT = 3
# The sheet's results: each a DataFrame (records), a dict or a Series in the sheet's namespace.
TABLES = ["env", "speed", "part1", "part2", "part3", "part4", "part5", "part6", "q1", "q5"]


def _write(path: Path, data: dict) -> None:
    from helpers.history import json_safe

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(json_safe(data), indent=1, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def nvidia_smi() -> dict:
    """The GPUs nvidia-smi lists (name, driver, memory, compute capability), or why it could not say."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {"error": "nvidia-smi not found on PATH"}
    fields = "name,driver_version,memory.total,compute_cap"
    try:
        out = subprocess.run([exe, f"--query-gpu={fields}", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return {"error": f"nvidia-smi failed: {err}"}
    if out.returncode != 0:
        return {"error": f"nvidia-smi exit {out.returncode}: {(out.stderr or out.stdout).strip()[:300]}"}
    gpus = [dict(zip(fields.split(","), (v.strip() for v in line.split(","))))
            for line in out.stdout.strip().splitlines() if line.strip()]
    return {"gpus": gpus}


def torch_report() -> dict:
    """What this Python's torch says about CUDA, without failing where torch or CUDA is missing."""
    try:
        import torch
    except ImportError as err:
        return {"torch": None, "error": f"torch is not importable: {err}"}
    report = {"torch": torch.__version__, "cuda_build": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
              "device_count": torch.cuda.device_count() if torch.cuda.is_available() else 0}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        report.update(gpu=torch.cuda.get_device_name(0), capability=".".join(map(str, torch.cuda.get_device_capability(0))),
                      gpu_memory_gb=round(props.total_memory / 2**30, 1), multiprocessors=props.multi_processor_count,
                      cudnn=torch.backends.cudnn.version())
        try:
            version = torch._C._cuda_getDriverVersion()  # the driver's CUDA API version, e.g. 13000
            report["driver_cuda"] = f"{version // 1000}.{version % 1000 // 10}"
        except (AttributeError, RuntimeError):
            report["driver_cuda"] = "unknown"
    return report


def environment(out: Path) -> int:
    """Write environment.json: nvidia-smi, torch and CUDA, and the sheet's own environment report."""
    data = {"python": sys.executable, "python_version": platform.python_version(), "platform": platform.platform(),
            "cpu_cores": os.cpu_count(), "nvidia_smi": nvidia_smi(), "torch": torch_report(),
            "kit_settings": {k: v for k, v in os.environ.items() if k.startswith("KIT_")}}
    if data["torch"].get("torch"):
        import torch

        from helpers.gpu_lab import environment_report

        data["sheet_report"] = environment_report(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    _write(out / "environment.json", data)
    t = data["torch"]
    smi = data["nvidia_smi"].get("gpus") or [data["nvidia_smi"]]
    print(f"python {data['python_version']}; torch {t.get('torch')} (CUDA build {t.get('cuda_build')}); "
          f"CUDA available: {t.get('cuda_available')}; nvidia-smi: {smi}")
    return 0


def require_cuda() -> int:
    """Exit 0 when a CUDA device is visible; otherwise say what was seen and exit NO_CUDA_EXIT."""
    t = torch_report()
    if t.get("cuda_available"):
        print(f"CUDA device: {t['gpu']} (capability {t['capability']}, {t['gpu_memory_gb']} GB); "
              f"torch {t['torch']}, CUDA build {t['cuda_build']}, driver CUDA {t['driver_cuda']}")
        return 0
    smi = nvidia_smi()
    seen = t.get("error") or (f"torch {t['torch']} (CUDA build {t['cuda_build'] or 'none: a CPU-only build'}) "
                              "says torch.cuda.is_available() is False")
    print(f"GPU CHECK FAILED: no CUDA device is visible. {seen}; nvidia-smi: "
          f"{smi.get('gpus') or smi.get('error')}. Python: {sys.executable}. This check must run on a machine "
          "with an NVIDIA GPU and a CUDA build of torch (README, 'GPU check'); nothing was measured.",
          file=sys.stderr)
    return NO_CUDA_EXIT


# --- sheet 4, run as a kernel would ----------------------------------------------------------------------

def _stand_ins() -> None:
    """Stand in for IPython's display and otter's Notebook where this Python has neither (a bare GPU image)."""
    try:
        import IPython.display  # noqa: F401
    except ImportError:
        ipython, display = types.ModuleType("IPython"), types.ModuleType("IPython.display")
        display.display = lambda *objects, **kwargs: None
        ipython.display = display
        sys.modules.update({"IPython": ipython, "IPython.display": display})
    try:
        import otter  # noqa: F401
    except ImportError:
        otter = types.ModuleType("otter")

        class Notebook:  # grader.check is only called in student versions
            def __init__(self, *args, **kwargs):
                pass

            def check(self, *args, **kwargs):
                return None

        otter.Notebook = Notebook
        sys.modules["otter"] = otter


def _frame(value):
    """A result of the sheet as JSON-ready data: DataFrames as records, Series and dicts as dicts."""
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return value.drop(columns=[c for c in ("warnings",) if c in value]).to_dict(orient="records")
    if isinstance(value, pd.Series):
        return value.to_dict()
    return value


def run_sheet(out: Path) -> int:
    """Run the master's code cells in order; write sheet4_quick.json (tables, checks, reference, tests)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    out = out.resolve()
    os.chdir(SHEET.parent)  # where a kernel started on the sheet runs (otter's Notebook looks for the file there)
    _stand_ins()
    from helpers import master_format as mf
    from helpers import runlog

    cells = json.loads(SHEET.read_text(encoding="utf-8"))["cells"]
    tests = mf.test_cells(cells)
    namespace: dict = {"__name__": "__main__"}
    result: dict = {"sheet": SHEET.name, "profile": os.environ.get("KIT_PROFILE"), "cells": [], "error": None}
    t0 = time.perf_counter()
    import matplotlib.pyplot as plt

    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = mf.printed_form("".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"])
        source = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("%"))
        start, filename = time.perf_counter(), f"<{SHEET.name} cell {index}>"
        # As ipykernel does: the cell's lines in linecache, so functions defined in it have a source.
        linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
        try:
            exec(compile(source, filename, "exec"), namespace)  # noqa: S102
        except BaseException as err:  # the sheet failed: say where, keep what it measured
            result["error"] = {"cell": index, "first_line": source.splitlines()[0] if source else "",
                               "error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-3000:]}
            print(f"sheet 4 failed in cell {index}: {type(err).__name__}: {err}", file=sys.stderr)
            break
        finally:
            plt.close("all")
            seconds = round(time.perf_counter() - start, 2)
            result["cells"].append({"cell": index, "seconds": seconds, "test": index in tests,
                                    "first_line": source.splitlines()[0][:80] if source else ""})
            print(f"  cell {index:3d} {seconds:7.1f} s  {source.splitlines()[0][:70] if source else ''}", flush=True)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    result["tables"] = {name: _frame(namespace[name]) for name in TABLES if name in namespace}
    record = runlog.snapshot()
    result["checks"], result["reference"] = record["checks"], record["reference"]
    if "ref" in namespace:
        result["reference"] = namespace["ref"].frame().to_dict(orient="records")
    result["part5_tests"] = _run_tests(namespace) if result["error"] is None else []
    _write(out / "sheet4_quick.json", result)
    failed = [t for t in result["part5_tests"] if not t["passed"]]
    held = sum(c["ok"] for c in result["checks"])
    print(f"sheet 4: {result['wall_s']} s; claim checks {held} of {len(result['checks'])} hold; "
          f"Part 5 tests: {len(result['part5_tests']) - len(failed)} of {len(result['part5_tests'])} pass")
    for check in result["checks"]:
        print(f"  {'✓' if check['ok'] else '✗'} {check.get('kind', 'finding')}: {check['claim']}  {check['values']}")
    return 1 if result["error"] or failed else 0


def _run_tests(namespace: dict) -> list[dict]:
    """Call every test function the sheet defined, with its arguments taken from the sheet's namespace."""
    outcomes = []
    for name, test in namespace.items():
        if not (name.startswith("test_") and callable(test)):
            continue
        if name.endswith("written_in_this_notebook"):  # provenance of a Jupyter cell: this runner's cells are not
            continue
        args = [namespace[p] if p in namespace else sys.modules.get(p) for p in inspect.signature(test).parameters]
        try:
            test(*args)
            outcomes.append({"test": name, "passed": True})
        except Exception as err:  # noqa: BLE001 - a failing test is a result
            outcomes.append({"test": name, "passed": False, "error": f"{type(err).__name__}: {err}"[:500]})
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["environment", "require-cuda", "sheet4"])
    parser.add_argument("--out", type=Path, default=REPO / "build" / "gpu-check")
    args = parser.parse_args(argv)
    if args.step == "environment":
        return environment(args.out)
    if args.step == "require-cuda":
        return require_cuda()
    return run_sheet(args.out)


if __name__ == "__main__":
    sys.exit(main())

"""Grade one notebook: run it and the sheet's probes in a sandbox of its own, then judge what they reported here.

The grader's process (this one) never runs student code: it prepares a folder holding only the notebook,
starts ``helpers.assignments.kernel_run`` in a bubblewrap sandbox (``sandbox``) with the probes on its standard
input, waits at most ``timeout`` seconds, reads back two small JSON files, and gives them to the verdict
(``verdict.judge``), with the expected values ``make assign`` computed from the master's solution. Whatever
the submission does, the outcome is plain data: scores, tests and notes; a limit it hit is named.
"""
from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from . import sandbox, verdict
from .kernel_run import PROBES_FILE, RUN_FILE

GRADED, TIMEOUT, ERROR = "graded", "timeout", "error"
MAX_REPORT_BYTES = 64 * 1024 ** 2


def read_untrusted_json(path: Path, limit: int = MAX_REPORT_BYTES) -> Any:
    """A JSON file the sandbox wrote, or None: regular files only (no links, no pipes), at most ``limit`` bytes."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
        return json.loads(data) if len(data) <= limit else None
    except (OSError, ValueError, RecursionError):
        return None
    finally:
        os.close(fd)


def _unpack_kit(kit: bytes, into: Path) -> None:
    """The student kit (make assign's kit.zip) into ``into``; names that climb out of it are refused."""
    with zipfile.ZipFile(io.BytesIO(kit)) as zf:
        for name in zf.namelist():
            target = (into / name).resolve()
            if not str(target).startswith(str(into.resolve()) + os.sep):
                raise ValueError(f"the kit archive holds a path outside its folder: {name}")
        zf.extractall(into)


def _kill(proc: subprocess.Popen) -> None:
    """Kill the sandbox (its PID namespace takes every process the submission started with it)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def _wait(proc: subprocess.Popen, timeout: float) -> tuple[int | None, float | None]:
    """Wait for the sandbox at most ``timeout`` s: (exit code or None, CPU seconds it and its processes used)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, round(usage.ru_utime + usage.ru_stime, 2)
        time.sleep(0.05)
    return None, None


def limit_notes(run: dict, log_tail: str, limits: sandbox.Limits, cell_timeout: int) -> list[str]:
    """The limits a run hit, as the row says them."""
    notes = []
    errors = " ".join(str(e.get("error", "")) for e in run.get("errors", []) if isinstance(e, dict))
    if "MemoryError" in errors or "std::bad_alloc" in log_tail or "Cannot allocate memory" in errors + log_tail:
        notes.append(limits.describe("memory"))
    if "Resource temporarily unavailable" in errors + log_tail or "BlockingIOError" in errors:
        notes.append(limits.describe("processes"))
    if "File size limit exceeded" in log_tail or "File too large" in errors:
        notes.append(limits.describe("file"))
    if run.get("output_limit_hit"):
        notes.append(limits.describe("output"))
    timeouts = [t for t in run.get("timeouts", []) if isinstance(t, (int, str))]
    if timeouts:
        notes.append(f"stopped after {cell_timeout} s (the time budget of a cell): code cell(s) "
                     f"{', '.join(map(str, timeouts[:5]))}")
    if run.get("kernel") == "died":
        notes.append("the kernel died" + (" (out of memory?)" if not notes else ""))
    return notes


def run_sandboxed(notebook: bytes, notebook_name: str, probes: list[dict], skip: list[str], kit: bytes, *,
                  timeout: int = 900, cell_timeout: int = 300, profile: str = "smoke",
                  limits: sandbox.Limits = sandbox.Limits(), uid: int | None = None) -> dict[str, Any]:
    """Run one notebook, then ``probes``, in a sandbox; return {"exit", "timed_out", "run", "probes", "log"} as read back."""
    why_not = sandbox.unavailable()
    with tempfile.TemporaryDirectory(prefix="kit-grade-", ignore_cleanup_errors=True) as tmp:
        tmp = Path(tmp)
        work, kit_dir = tmp / "submission", tmp / "kit"
        kit_dir.mkdir()
        _unpack_kit(kit, kit_dir)
        work.mkdir()
        (work / Path(notebook_name).name).write_bytes(notebook)
        sandbox.prepare(work, uid)
        job = {"notebook": Path(notebook_name).name, "skip": list(skip), "tests": probes,
               "cell_timeout": int(cell_timeout), "output_limit": limits.output_bytes,
               "probe_timeout": max(60, int(cell_timeout))}
        env = {"KIT_PROFILE": profile, "KIT_CACHE": "/tmp/kit-cache", "KIT_OFFLINE": "1", "MPLBACKEND": "Agg",
               "OMP_NUM_THREADS": "1", "KIT_THREADS": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
        argv = [sys.executable, "-m", "helpers.assignments.kernel_run"]
        if why_not is None:
            cmd, run_env = sandbox.command(argv, workdir=work, kit=kit_dir, uid=uid, limits=limits, env=env), None
        else:  # no sandbox here: a plain process (make grade said so at the start)
            cmd = argv
            run_env = {**os.environ, **env, "PYTHONPATH": str(kit_dir), "KIT_CACHE": str(tmp / "cache"),
                       "HOME": str(work)}
        log_path = tmp / "log"
        timed_out = False
        with open(log_path, "w+b") as log:
            proc = subprocess.Popen(cmd, cwd=work, env=run_env, stdin=subprocess.PIPE, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
            try:
                proc.stdin.write(json.dumps(job).encode())
                proc.stdin.close()
            except BrokenPipeError:
                pass
            code, cpu = _wait(proc, timeout)
            timed_out = code is None
            _kill(proc)
            log.seek(max(0, log.seek(0, os.SEEK_END) - 4000))
            tail = log.read().decode("utf-8", "replace")
        return {"exit": code, "timed_out": timed_out, "log": tail, "cpu_s": cpu,
                "run": read_untrusted_json(work / RUN_FILE), "probes": read_untrusted_json(work / PROBES_FILE)}


def grade_one(notebook: bytes, notebook_name: str, grading: dict, kit: bytes, *, timeout: int = 900,
              cell_timeout: int = 300, profile: str = "smoke", limits: sandbox.Limits = sandbox.Limits(),
              uid: int | None = None) -> dict[str, Any]:
    """Run one notebook and the sheet's probes in a sandbox; return its outcome (scores, tests, notes) as plain data."""
    ran = run_sandboxed(notebook, notebook_name, grading["probes"], grading["skip"], kit, timeout=timeout,
                        cell_timeout=cell_timeout, profile=profile, limits=limits, uid=uid)
    if ran["timed_out"]:
        return {"status": TIMEOUT, "note": f"did not finish within {timeout} s: the notebook (or its kernel) "
                                           "was stopped; no question was graded"}
    run, probes, tail = ran["run"], ran["probes"], ran["log"]
    if not isinstance(run, dict):
        last = "\n".join(tail.strip().splitlines()[-6:])
        return {"status": ERROR, "note": f"the notebook could not be run (exit code {ran['exit']}); no question "
                                         "was graded", "log": last}
    errors = [e for e in run.get("errors", []) if isinstance(e, dict)][:50]
    notes = limit_notes(run, tail, limits, cell_timeout)
    if run.get("kernel") == "died" and not isinstance(probes, dict):
        return {"status": ERROR, "note": "; ".join(notes) + ": the notebook stopped there, so no question was graded",
                "limits": [n for n in notes if n != "the kernel died"]}
    if not isinstance(probes, dict):
        notes.append("the tests could not run after the notebook (no probe report): every test fails")
    return {"status": GRADED, "questions": verdict.judge(grading["expected"], probes),
            "errors": [{"code_cell": e.get("code_cell"), "error": str(e.get("error", ""))[:300],
                        "first_line": str(e.get("first_line", ""))[:120]} for e in errors],
            "limits": notes, "cells": {"ran": run.get("ran"), "skipped": run.get("skipped")}, "cpu_s": ran["cpu_s"] or run.get("cpu_s")}

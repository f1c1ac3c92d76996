"""The Dask cluster: KIT_SCHEDULER, clear errors, and run_grid on a real scheduler with two real workers.

The cluster tests start ``dask scheduler`` and two ``dask worker`` processes on localhost
(``cluster.local_cluster``) and skip only where the Dask servers are not installed.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from helpers import cluster
from helpers.device import worker_environment
from helpers.experiments import run_grid

REPO = Path(__file__).resolve().parents[1]


def test_no_scheduler_means_this_machine(monkeypatch):
    monkeypatch.delenv("KIT_SCHEDULER", raising=False)
    assert cluster.scheduler_address() is None and cluster.client() is None
    monkeypatch.setenv("KIT_SCHEDULER", "  ")
    assert cluster.client() is None
    monkeypatch.setenv("KIT_SCHEDULER", "tcp://10.0.0.5:8786")
    assert cluster.scheduler_address() == "tcp://10.0.0.5:8786"
    assert cluster.scheduler_address("tcp://other:1") == "tcp://other:1", "the argument wins"


def test_an_unreachable_scheduler_names_the_setting_the_address_and_the_fix(monkeypatch):
    pytest.importorskip("distributed", reason="the Dask client (distributed) is not installed")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("KIT_SCHEDULER", f"tcp://127.0.0.1:{port}")
    with pytest.raises(cluster.ClusterError, match=rf"Cannot reach the Dask scheduler at tcp://127.0.0.1:{port} \(from "
                                                   r"KIT_SCHEDULER\).*make cluster.*unset KIT_SCHEDULER"):
        cluster.client(timeout=2)
    with pytest.raises(cluster.ClusterError, match="from the scheduler argument"):
        run_grid(_never_called, {"x": [1, 2]}, scheduler=f"tcp://127.0.0.1:{port}", quiet=True)


def _never_called(x, seed):
    raise AssertionError("no run may start when the scheduler cannot be reached")


# --- run_grid on a real cluster --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dask_cluster():
    """A scheduler and two one-thread workers, each a process of its own, running this checkout of the kit."""
    pytest.importorskip("distributed", reason="the Dask servers (distributed) are not installed")
    env = {**worker_environment(), "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    with cluster.local_cluster(2, env=env) as running:
        yield running


# A notebook's training function: it reaches the workers by value. It logs where each run starts and ends,
# so a test can kill the worker in the middle of a run and count what trained.
GRID_CELL = """
import os, signal, time
from helpers.history import History

def train(x, seed, log, pause=0.0, die_at=None):
    with open(log, "a") as f:
        f.write(f"start {x} {os.getpid()}\\n")
    if x == die_at:
        os.kill(os.getpid(), signal.SIGKILL)   # this run kills every worker that tries it
    time.sleep(pause)
    h = History()
    h.append_epoch(epoch=0, train_loss=float(x) * (seed + 1), val_loss=1.0 / (1 + x))
    with open(log, "a") as f:
        f.write(f"done {x} {os.getpid()}\\n")
    return h
"""


def _lines(log: Path, kind: str) -> list[str]:
    return [line.split()[1] for line in log.read_text().splitlines() if line.startswith(kind)] if log.exists() else []


def test_a_grid_on_the_cluster_equals_the_local_run(dask_cluster, notebook, tmp_path, monkeypatch, one_thread):
    """Issue 23: the run cache, the result table and the order of rows are those of a local run with the same seeds."""
    from test_experiments import MOONS, NOTEBOOK_TRAIN, _records

    notebook.run(NOTEBOOK_TRAIN)
    frames, records = [], []
    for scheduler, cache in ((None, tmp_path / "local"), (dask_cluster.address, tmp_path / "dask")):
        monkeypatch.setenv("KIT_CACHE", str(cache))
        frames.append(run_grid(notebook["train_moons"], MOONS, repeats=2, n_jobs=1, scheduler=scheduler, quiet=True))
        records.append(_records(cache / "runs"))
    local, on_dask = frames
    assert on_dask["pid"].nunique() == 2 and os.getpid() not in set(on_dask["pid"]), "trained on both workers"
    assert (on_dask["threads"] == 1).all()
    assert len(records[0]) == 8 and records[0] == records[1]
    same = [c for c in local if c not in ("time_s", "pid", "history") and not c.endswith(("time_s", "peak_mem"))]
    pd.testing.assert_frame_equal(local[same], on_dask[same])


def test_kit_scheduler_sends_the_grid_and_workers_never_write_the_cache(dask_cluster, notebook, tmp_path, monkeypatch):
    notebook.run(GRID_CELL)
    log = tmp_path / "log.txt"
    monkeypatch.setenv("KIT_SCHEDULER", dask_cluster.address)
    frame = run_grid(notebook["train"], {"x": [1, 2, 3]}, fixed={"log": str(log)}, quiet=True)
    pids = {int(line.split()[2]) for line in log.read_text().splitlines() if line.startswith("start")}
    assert os.getpid() not in pids and list(frame["final_train_loss"]) == [1.0, 2.0, 3.0]
    records = sorted((Path(os.environ["KIT_CACHE"]) / "runs" / "train").glob("*.json"))
    assert len(records) == 3 and all(json.loads(p.read_text())["key"]["params"]["x"] in (1, 2, 3) for p in records)
    assert run_grid(notebook["train"], {"x": [1, 2, 3]}, fixed={"log": str(log)}, quiet=True)["cached"].all()
    assert sorted(_lines(log, "done")) == ["1", "2", "3"], "each run trained once, the second call read the cache"


def test_a_worker_killed_mid_grid_has_its_run_retried_and_every_point_trained_once(dask_cluster, notebook, tmp_path):
    """Issue 23.4: kill one worker in the middle of a run; every point is trained (finished) once and cached."""
    notebook.run(GRID_CELL)
    log = tmp_path / "log.txt"
    killed = []

    def kill_the_worker_of_run_2():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for line in log.read_text().splitlines() if log.exists() else []:
                if line.startswith("start 2 "):
                    pid = int(line.split()[2])
                    os.kill(pid, signal.SIGKILL)   # the worker process; its nanny starts a new one
                    killed.append(pid)
                    return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_the_worker_of_run_2)
    killer.start()
    frame = run_grid(notebook["train"], {"x": list(range(6))}, fixed={"log": str(log), "pause": 1.0},
                     scheduler=dask_cluster.address, quiet=True)
    killer.join()
    assert killed, "run 2 started and its worker was killed"
    assert _lines(log, "start").count("2") == 2, "run 2 was tried again"
    finished = [line.split()[1:] for line in log.read_text().splitlines() if line.startswith("done")]
    assert sorted({x for x, _ in finished}) == [str(x) for x in range(6)], "every point finished"
    # A run trains twice only when its result died with the killed worker before this process fetched it
    # (Dask computes a lost result again); any other run finishes exactly once.
    again = [x for x in {x for x, _ in finished} if [y for y, _ in finished].count(x) > 1]
    assert all([pid for y, pid in finished if y == x][0] == str(killed[0]) for x in again), finished
    assert len(again) <= 1 and len(finished) == 6 + len(again), finished
    assert "error" not in frame and list(frame["final_train_loss"]) == [float(x) for x in range(6)]
    assert len(list((Path(os.environ["KIT_CACHE"]) / "runs" / "train").glob("*.json"))) == 6


def test_a_run_that_kills_its_worker_twice_is_reported_by_grid_point(dask_cluster, notebook, tmp_path):
    notebook.run(GRID_CELL)
    log = tmp_path / "log.txt"
    frame = run_grid(notebook["train"], {"x": [0, 1, 2, 3]}, fixed={"log": str(log), "die_at": 2},
                     scheduler=dask_cluster.address, quiet=True, errors="record")
    assert list(frame["error"].isna()) == [True, True, False, True], "the grid went on"
    assert frame.loc[2, "error"].startswith("WorkerDied: the Dask worker training this run died, also when the "
                                            "scheduler tried it again")
    assert _lines(log, "start").count("2") == 2, "tried once more (allowed-failures 1), then reported"
    assert len(list((Path(os.environ["KIT_CACHE"]) / "runs" / "train").glob("*.json"))) == 3


def test_a_function_that_does_not_pickle_is_refused_by_the_cluster(dask_cluster, notebook):
    notebook.run("import threading\nLOCK = threading.Lock()\n"
                 "def train(x, seed):\n    with LOCK:\n        return {'y': x}\n")
    with pytest.raises(ValueError, match=r"Dask cluster.*needs __main__.train and its fixed settings to pickle.*"
                                         r"unset KIT_SCHEDULER"):
        run_grid(notebook["train"], {"x": [1, 2]}, scheduler=dask_cluster.address, quiet=True)


def test_an_unwritten_exercise_on_the_cluster_is_raised(dask_cluster, notebook):
    notebook.run("def train(x, seed):\n    raise NotImplementedError('3.1: write the forward pass')\n")
    with pytest.raises(NotImplementedError, match="3.1: write the forward pass"):
        run_grid(notebook["train"], {"x": [1, 2]}, scheduler=dask_cluster.address, quiet=True)


# --- make cluster ----------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.mark.parametrize("address, why", [("tcp://127.0.0.1", "names no port"), ("nonsense://host:1", "scheme")])
def test_a_bad_address_names_the_setting_and_the_fix(monkeypatch, address, why):
    monkeypatch.setenv("KIT_SCHEDULER", address)
    with pytest.raises(cluster.ClusterError, match=rf"from KIT_SCHEDULER\).*{why}.*make cluster"):
        cluster.client()


@pytest.mark.slow
def test_make_cluster_starts_a_scheduler_and_workers_and_stops_them_all():
    port = _free_port()
    proc = subprocess.Popen(["bash", str(REPO / "scripts" / "cluster.sh"), "2", str(port),
                             str(Path(sys.executable).parent)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        address = None
        deadline = time.monotonic() + 90
        while address is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, f"make cluster ended early (exit {proc.poll()})"
            if line.strip().startswith("export KIT_SCHEDULER="):
                address = line.strip().split("=", 1)[1]
        assert address == f"tcp://127.0.0.1:{port}"
        client = cluster.client(address)
        assert cluster.client(address) is client, "one client per address and process"
        client.wait_for_workers(2, timeout=60)
        # The workers import helpers from this checkout: what grading and grids send them runs as here.
        assert client.submit(lambda: __import__("helpers.config").config.REPO_ROOT).result(timeout=60) == REPO
        client.close()
        proc.send_signal(signal.SIGTERM)   # as when make is stopped
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0 and "stopped" in rest
        assert not _listening(port)
    finally:
        left = _wait_for_group_to_end(proc.pid, 15)
        if left:
            os.killpg(proc.pid, signal.SIGKILL)   # whatever this test started and is still there
        assert not left, "make cluster left processes behind"


def _wait_for_group_to_end(group: int, timeout: float) -> bool:
    """True when processes of ``group`` are still there after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.2)
    return True

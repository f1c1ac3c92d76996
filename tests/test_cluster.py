"""helpers.cluster and make cluster: a real scheduler and two workers on this machine, and a clean stop."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import cluster

REPO = Path(__file__).resolve().parent.parent


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


def test_no_scheduler_named_means_this_machine(monkeypatch):
    monkeypatch.delenv("KIT_SCHEDULER", raising=False)
    assert cluster.client() is None
    monkeypatch.setenv("KIT_SCHEDULER", "  ")
    assert cluster.scheduler_address() is None


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

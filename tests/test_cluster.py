"""The Dask cluster: KIT_SCHEDULER, clear errors, and run_grid on a real scheduler with two real workers.

The cluster tests start ``dask scheduler`` and two ``dask worker`` processes on localhost
(``cluster.local_cluster``) and skip only where the Dask servers are not installed.
"""
from __future__ import annotations

import socket

import pytest

from helpers import cluster


def test_no_scheduler_means_this_machine(monkeypatch):
    monkeypatch.delenv("KIT_SCHEDULER", raising=False)
    assert cluster.scheduler_address() is None and cluster.dask_client() is None
    monkeypatch.setenv("KIT_SCHEDULER", "  ")
    assert cluster.dask_client() is None
    monkeypatch.setenv("KIT_SCHEDULER", "tcp://10.0.0.5:8786")
    assert cluster.scheduler_address() == "tcp://10.0.0.5:8786"
    assert cluster.scheduler_address("tcp://other:1") == "tcp://other:1", "the argument wins"


def test_an_unreachable_scheduler_names_the_setting_the_address_and_the_fix(monkeypatch):
    pytest.importorskip("distributed", reason="the Dask client (distributed) is not installed")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 2)
    monkeypatch.setenv("KIT_SCHEDULER", f"tcp://127.0.0.1:{port}")
    with pytest.raises(cluster.SchedulerUnreachable,
                       match=rf"KIT_SCHEDULER is 'tcp://127.0.0.1:{port}', but no Dask scheduler answered.*make cluster"
                             r".*unset KIT_SCHEDULER"):
        cluster.dask_client()
    with pytest.raises(cluster.SchedulerUnreachable, match="the scheduler argument is"):
        cluster.dask_client(f"tcp://127.0.0.1:{port}")

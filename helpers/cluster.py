"""Where many runs run: the Dask cluster named by ``KIT_SCHEDULER``, or this machine when it is unset.

A ground-floor module: it imports nothing from the kit, and ``distributed`` only when a cluster is named.
``make cluster`` starts a scheduler and workers on this machine to try it; README, "Running on a cluster",
shows how a course points the kit at real machines.
"""
from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["SCHEDULER_ENV", "CONNECT_TIMEOUT", "ClusterError", "scheduler_address", "client"]

SCHEDULER_ENV = "KIT_SCHEDULER"
SCHEMES = ("tcp", "tls", "ucx", "ws", "wss", "inproc")
CONNECT_TIMEOUT = 10  # seconds: a scheduler that does not answer by then is down or unreachable
_clients: dict[str, "Client"] = {}


class ClusterError(ConnectionError):
    """The Dask scheduler named by KIT_SCHEDULER (or the scheduler argument) cannot be reached."""


def scheduler_address(scheduler: str | None = None) -> str | None:
    """The scheduler's address: the argument, else ``KIT_SCHEDULER``; None when neither names one."""
    address = scheduler if scheduler is not None else os.environ.get(SCHEDULER_ENV, "")
    return address.strip() or None


def client(scheduler: str | None = None, timeout: float = CONNECT_TIMEOUT) -> "Client | None":
    """A Dask client of the scheduler at ``scheduler`` or ``KIT_SCHEDULER`` (one per address and process); None when unset."""
    address = scheduler_address(scheduler)
    if address is None:
        return None
    known = _clients.get(address)
    if known is not None and known.status == "running":
        return known
    from distributed import Client

    try:
        _probe(address, timeout)
        connected = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, ValueError) as err:  # refused, timed out, or not an address at all
        source = "the scheduler argument" if scheduler is not None else SCHEDULER_ENV
        raise ClusterError(
            f"Cannot reach the Dask scheduler at {address} (from {source}): {err}. Fix: start "
            f"the scheduler and its workers (`make cluster` on this machine prints the address to export), check "
            f"the address (e.g. tcp://host:8786) and that its port is open, or unset {SCHEDULER_ENV} to run on "
            "this machine.") from None
    _clients[address] = connected
    return connected


def _probe(address: str, timeout: float) -> None:
    """Open and close a TCP connection to a ``tcp://host:port`` scheduler; OSError when nothing answers.

    A Client that fails to connect spends seconds more closing itself when it is garbage collected, and
    prints a traceback doing so; this check fails fast and quietly in the common case (nothing listening).
    """
    scheme, _, rest = address.rpartition("://")
    scheme = scheme or "tcp"   # Dask's default, as in "host:8786"
    if scheme not in SCHEMES:
        raise ValueError(f"unknown address scheme {scheme!r} (Dask knows {', '.join(SCHEMES)})")
    if scheme != "tcp":
        return  # tls://, ucx://, ...: the Client itself tells
    host, _, port = rest.rstrip("/").rpartition(":")
    if not port.isdigit():
        raise ValueError(f"{address!r} names no port")
    socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout).close()

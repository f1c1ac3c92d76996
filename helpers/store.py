"""The on-disk store: content-derived keys, atomic writes, and safe torch state-dict files.

Every file the kit writes for later (run records, trained weights, backbones, extracted data,
stand-ins, checkpoints) goes through here, so "how do I write this file safely" has one answer:
write to a temp file in the same folder, then ``os.replace`` it into place. A crash or a kill
never leaves half a file under the real name, and a reader never sees one.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

try:  # POSIX; elsewhere runs are not locked (two processes on one cache may then train a run twice)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["content_key", "atomic_file", "write_json", "write_bytes", "write_text", "copy_stream",
           "publish_dir", "save_torch", "load_torch", "read_json", "file_lock", "lock_holder"]


def content_key(payload: Any, length: int = 24) -> str:
    """A stable hex key for a JSON-able payload: equal settings give equal keys in every session."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


@contextmanager
def atomic_file(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temp file beside ``path`` for writing; on success rename it to ``path``, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the name points at it
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write bytes atomically; return the path."""
    with atomic_file(path, "wb") as f:
        f.write(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Write text (UTF-8) atomically; return the path."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, data: Any, indent: int | None = None) -> Path:
    """Write JSON atomically (NaN is refused: make the data JSON-safe first); return the path."""
    return write_text(path, json.dumps(data, indent=indent, allow_nan=False))


def read_json(path: str | Path) -> Any | None:
    """The JSON in ``path``, or None when the file is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def copy_stream(src: IO[bytes], path: str | Path) -> Path:
    """Copy a binary stream into ``path`` atomically; return the path."""
    with atomic_file(path, "wb") as f:
        shutil.copyfileobj(src, f, 1 << 20)
    return Path(path)


def publish_dir(tmp: str | Path, target: str | Path, replace: bool = False) -> bool:
    """Rename a finished folder ``tmp`` to ``target`` (same file system); return False if another process won.

    With ``replace=True`` an existing ``target`` is removed first (a broken leftover); otherwise an
    existing ``target`` is kept and ``tmp`` is left for the caller to delete.
    """
    tmp, target = Path(tmp), Path(target)
    if replace:
        shutil.rmtree(target, ignore_errors=True)
    try:
        os.replace(tmp, target)
    except OSError:
        if not target.exists():
            raise
        return False
    return True


def save_torch(path: str | Path, obj: dict) -> Path:
    """``torch.save`` atomically; keep to tensors, numbers, strings, lists and dicts so ``load_torch`` can read it."""
    import torch

    with atomic_file(path, "wb") as f:
        torch.save(obj, f)
    return Path(path)


def load_torch(path: str | Path) -> Any:
    """``torch.load`` on the CPU with ``weights_only=True``: tensors and plain data, never arbitrary objects."""
    import torch

    return torch.load(Path(path), map_location="cpu", weights_only=True)


@contextmanager
def file_lock(path: str | Path, wait: bool = True, note: str = "") -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (created if missing); yield False instead when ``wait=False`` and it is busy.

    The lock is the operating system's (``flock``): it is released when the holder exits, also when it is
    killed, so a crashed run never leaves a lock that blocks the next one. ``note`` (e.g. what runs) is
    written into the file with the holder's process id, for ``lock_holder``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        if fcntl is not None:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n{note}")
        f.flush()
        try:
            yield True
        finally:
            if fcntl is not None:
                fcntl.flock(f, fcntl.LOCK_UN)


def lock_holder(path: str | Path) -> tuple[int, str] | None:
    """(process id, note) of whoever last took the lock at ``path``, or None when it was never taken."""
    try:
        pid, _, note = Path(path).read_text().partition("\n")
        return int(pid), note
    except (OSError, ValueError):
        return None

"""Where a sweep's study lives, and how several processes take turns claiming its trials.

One string names a storage everywhere: ``run_sweep(storage=...)``, ``KIT_SWEEP_STORAGE`` and a worker's
``--storage``.

- ``None``: ``KIT_SWEEP_STORAGE`` if set, else the SQLite file ``cache_dir()/sweeps/<study>-<profile>.db``;
- a path ending in ``.journal``: an optuna journal file (``JournalFileBackend``), for several processes, or
  machines sharing a folder, with no server;
- a database URL: ``postgresql://user:password@host:5432/db`` for processes on many machines (optuna's
  ``RDBStorage``), or ``sqlite:///file.db``;
- any other path: an SQLite file; ``"memory"``: a throw-away study in this process.

SQLite serves one process: its file locking is not meant for many writers (and breaks on network folders),
so a sweep with parallel workers there is refused (``require_shared``) with the journal file as the fix.
A journal file or PostgreSQL can be shared; there, a worker claims its next trial inside ``claim_lock``
(optuna's symlink lock beside the journal, which works on network folders; a PostgreSQL advisory lock,
released by the server when its holder dies), so that counting the trials and starting one is one step
across all processes: the budget is never overrun and no grid point is started twice.
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import optuna

from . import store
from .config import cache_dir, get_profile

__all__ = ["STORAGE_ENV", "JOURNAL_SUFFIX", "SweepStorage", "SweepStorageError", "resolve", "default_storage"]

STORAGE_ENV = "KIT_SWEEP_STORAGE"
JOURNAL_SUFFIX = ".journal"
SHARED_KINDS = ("journal", "postgresql")
_LOCAL = threading.Lock()   # SQLite and memory: one process, so a lock of this process is enough


class SweepStorageError(ValueError):
    """A storage that cannot serve what was asked of it (parallel workers on SQLite, say)."""


def default_storage(study_name: str, profile: str | None = None) -> str:
    """SQLite URL of a sweep's default database: ``cache_dir()/sweeps/<study_name>-<profile>.db``."""
    folder = cache_dir() / "sweeps"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / f'{study_name}-{get_profile(profile)}.db'}"


@dataclass
class SweepStorage:
    """A resolved storage: its kind, the string a worker process is given, and optuna's storage object."""

    kind: str       # "sqlite", "journal", "postgresql", "rdb" (another database) or "memory"
    spec: str       # what --storage / KIT_SWEEP_STORAGE would say to reach it
    where: str      # for messages: the spec without a password
    origin: str     # which setting named it: "storage=", KIT_SWEEP_STORAGE or the default
    _optuna: Any = field(default=None, repr=False)
    _engine: Any = field(default=None, repr=False)

    @property
    def shared(self) -> bool:
        """True when processes on several machines can use it at once."""
        return self.kind in SHARED_KINDS

    def optuna(self) -> optuna.storages.BaseStorage:
        """optuna's storage object (made once)."""
        if self._optuna is None:
            if self.kind == "memory":
                self._optuna = optuna.storages.InMemoryStorage()
            elif self.kind == "journal":
                from optuna.storages.journal import JournalFileBackend, JournalStorage

                Path(self.spec).parent.mkdir(parents=True, exist_ok=True)
                self._optuna = JournalStorage(JournalFileBackend(self.spec))
            else:
                self._optuna = optuna.storages.get_storage(_driver_url(self.spec))
        return self._optuna

    @contextmanager
    def claim_lock(self, study_name: str) -> Iterator[None]:
        """Hold the study's claim lock: one process at a time counts the trials and starts the next."""
        if self.kind == "journal":
            from optuna.storages.journal import JournalFileSymlinkLock

            target = f"{self.spec}.claim"   # the lock is a symlink to it; optuna's stale-lock check stats the target
            open(target, "ab").close()
            lock = JournalFileSymlinkLock(target)
            lock.acquire()
            try:
                yield
            finally:
                lock.release()
        elif self.kind == "postgresql":
            import sqlalchemy

            if self._engine is None:
                self._engine = sqlalchemy.create_engine(_driver_url(self.spec), poolclass=sqlalchemy.pool.NullPool)
            key = int(store.content_key(["kit-sweep-claim", study_name], 15), 16)  # fits PostgreSQL's bigint
            with self._engine.connect() as conn:  # a session lock: the server drops it if this process dies
                conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
                try:
                    yield
                finally:
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        else:
            with _LOCAL:
                yield

    def require_shared(self, what: str) -> None:
        """Refuse ``what`` (e.g. "3 worker processes") unless several processes can share this storage."""
        if self.shared:
            return
        if self.kind == "memory":
            problem = "storage='memory' lives in one process only"
        elif self.kind == "sqlite":
            problem = f"the SQLite database {self.where} (from {self.origin}) serves one process only"
        else:
            problem = (f"{self.where} (from {self.origin}) is a database the kit cannot lock across processes "
                       "(it supports journal files and PostgreSQL)")
        raise SweepStorageError(
            f"A sweep with {what} needs a storage they can share, but {problem}. Fix: use an optuna journal file, "
            f"storage='sweeps{JOURNAL_SUFFIX}' (machines sharing a folder: a path in that folder), or a PostgreSQL "
            f"URL, storage='postgresql://user:password@host:5432/sweeps'; or set {STORAGE_ENV} to one of them.")


def resolve(storage: str | Path | None, study_name: str, profile: str | None = None) -> SweepStorage:
    """The storage named by ``storage`` (see the module's docstring); None reads ``KIT_SWEEP_STORAGE``."""
    origin = "storage="
    if storage is None and os.environ.get(STORAGE_ENV, "").strip():
        storage, origin = os.environ[STORAGE_ENV].strip(), STORAGE_ENV
    if storage is None:
        url = default_storage(study_name, profile)
        return SweepStorage("sqlite", url, url.removeprefix("sqlite:///"),
                            f"the default: no storage was given and {STORAGE_ENV} is unset")
    if isinstance(storage, str) and storage == "memory":
        return SweepStorage("memory", "memory", "memory", origin)
    text = str(storage)
    if isinstance(storage, Path) or "://" not in text:
        path = Path(text).expanduser().resolve()
        if path.name.endswith(JOURNAL_SUFFIX):
            return SweepStorage("journal", str(path), str(path), origin)
        path.parent.mkdir(parents=True, exist_ok=True)
        return SweepStorage("sqlite", f"sqlite:///{path}", str(path), origin)
    from sqlalchemy.engine import make_url

    try:
        url = make_url(text)
    except Exception as err:  # sqlalchemy's ArgumentError: say which setting held the bad URL
        raise SweepStorageError(f"{origin.rstrip('=')} is not a database URL or a file path: {text!r} ({err}). "
                                "Examples: sweeps.journal, postgresql://user:password@host:5432/sweeps") from None
    backend = url.get_backend_name()
    kind = {"sqlite": "sqlite", "postgresql": "postgresql"}.get(backend, "rdb")
    return SweepStorage(kind, text, url.render_as_string(hide_password=True), origin)


def _driver_url(url: str) -> str:
    """``postgresql://`` with the psycopg (3) driver the kit installs, whatever SQLAlchemy's default driver is."""
    return "postgresql+psycopg://" + url.removeprefix("postgresql://") if url.startswith("postgresql://") else url

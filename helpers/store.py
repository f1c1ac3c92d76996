"""The on-disk store: content-derived keys, code identities, atomic writes, and safe torch state-dict files.

Every file the kit writes for later (run records, trained weights, backbones, extracted data,
stand-ins, checkpoints) goes through here, so "how do I write this file safely" has one answer:
write to a temp file in the same folder, then ``os.replace`` it into place. A crash or a kill
never leaves half a file under the real name, and a reader never sees one.

"Is this cached result still what the code would compute?" has one answer too: ``callable_identity``
names a function by its code (its source, the source of the notebook and project functions and classes
it uses, and ``kit_digest()`` of ``helpers/``). ``run_grid``, the sweeps and the export cache key on it,
so editing a training function, a helper it calls or the kit retrains exactly what depends on it.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

try:  # POSIX; elsewhere runs are not locked (two processes on one cache may then train a run twice)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["content_key", "kit_digest", "callable_identity", "atomic_file", "write_json", "write_bytes", "write_text", "copy_stream",
           "publish_dir", "save_torch", "load_torch", "read_json", "file_lock", "lock_holder"]


def content_key(payload: Any, length: int = 24) -> str:
    """A stable hex key for a JSON-able payload: equal settings give equal keys in every session."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


# --- Code identity -------------------------------------------------------------------------------
KIT_ROOT = Path(__file__).resolve().parent   # helpers/


OUTSIDE_RUNS = ("export", "assignments", "marking")  # subpackages of helpers/ that no training run uses


def kit_digest(root: str | Path | None = None) -> str:
    """sha256 of the kit's sources: names and contents of every .py and .toml under ``helpers/``, but for ``OUTSIDE_RUNS``.

    The export subpackage executes and prints notebooks, and the assignments subpackage builds student versions
    and grades them, and the marking subpackage marks written answers; none can change what a training run computes (the export cache adds the one module
    that can change an execution, ``export/execute.py``).
    """
    root = Path(root) if root is not None else KIT_ROOT
    files = sorted(p for ext in ("*.py", "*.toml") for p in root.rglob(ext)
                   if "__pycache__" not in p.parts and p.relative_to(root).parts[0] not in OUTSIDE_RUNS)
    # Contents, not modification times: an edit within the file system's clock tick must count (~2 ms in all).
    h = hashlib.sha256()
    for path in files:
        h.update(f"{path.relative_to(root).as_posix()}\n".encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def callable_identity(fn: Any) -> str:
    """A hex digest of what ``fn`` computes: its source, the sources it uses from the notebook or project, the kit.

    Followed from ``fn``: the global names its code (and the code nested in it) uses, its closure, a
    ``functools.partial``'s function and callable arguments, a bound method's class, a callable object's
    class. Functions and classes defined in the notebook (``__main__``) or in a project module add their
    source and are followed in turn; the kit's own (``helpers.*``) are covered by ``kit_digest()``;
    builtins and installed libraries are left out. A lambda, or code whose source cannot be read, raises
    ValueError: a cache keyed on it could not tell when it changed.
    """
    import inspect

    top = _unwrapped(fn)
    if not callable(top):
        raise ValueError(f"{top!r} is not callable; pass the function that computes the result.")
    if getattr(top, "__name__", "") == "<lambda>":
        raise ValueError(f"Cannot cache results of a lambda ({_where(top)}): the cache keys a function by its "
                         "source, and a lambda has no name of its own to find it by. Define it with "
                         "`def name(...):` in a notebook cell or a .py module and pass that function.")
    parts: list[str] = []
    _follow(fn, parts, set(), inspect)
    h = hashlib.sha256(f"kit {kit_digest()}\n".encode())
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def _unwrapped(fn: Any) -> Any:
    """The function behind a partial, a bound method or a staticmethod/classmethod."""
    while True:
        if isinstance(fn, functools.partial):
            fn = fn.func
        elif isinstance(fn, (staticmethod, classmethod)) or hasattr(fn, "__self__") and hasattr(fn, "__func__"):
            fn = fn.__func__
        else:
            return fn


def _qualname(obj: Any) -> str:
    return getattr(obj, "__qualname__", None) or type(obj).__qualname__


def _where(obj: Any) -> str:
    """'train in cell/file x.py, line 3' for a message."""
    code = getattr(obj, "__code__", None)
    if code is None:
        return _qualname(obj)
    return f"{_qualname(obj)}, defined in {Path(code.co_filename).name} line {code.co_firstlineno}"


def _library_roots() -> tuple[Path, ...]:
    """Folders whose modules are installed libraries or the standard library, not the project's own code."""
    import sysconfig

    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, *(sysconfig.get_paths()[k] for k in
                                                          ("stdlib", "platstdlib", "purelib", "platlib"))}
    return tuple(Path(p).resolve() for p in paths if p)


def _origin(obj: Any) -> str:
    """'kit' (helpers.*), 'user' (the notebook, a script, a project module) or 'library' (everything installed)."""
    module = getattr(obj, "__module__", None)
    if not isinstance(module, str):
        return "library"
    if module == "helpers" or module.startswith("helpers."):
        return "kit"
    if module == "__main__":
        return "user"
    file = getattr(sys.modules.get(module), "__file__", None)
    if not file:
        return "library"  # builtins and compiled modules
    path = Path(file).resolve()
    if {"site-packages", "dist-packages"} & set(path.parts):
        return "library"
    return "library" if any(path.is_relative_to(root) for root in _library_roots()) else "user"


def _source(obj: Any, inspect: Any) -> str:
    """The source of a user function or class; ValueError naming it when it cannot be read."""
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError) as err:
        if inspect.isclass(obj):
            text = _class_source(obj, inspect)
            if text is not None:
                return text
        raise ValueError(f"Cannot read the source of {_where(obj)} ({type(err).__name__}: {err}), so a cache "
                         "could not tell when it changes. Define it with `def`/`class` in a notebook cell or a .py "
                         "module (not through exec or a string).") from None


def _class_source(cls: type, inspect: Any) -> str | None:
    """A class's source found through one of its methods (inspect cannot find classes defined in a notebook)."""
    import ast
    import linecache

    for value in vars(cls).values():
        code = getattr(_unwrapped(value), "__code__", None) or getattr(getattr(value, "fget", None), "__code__", None)
        if code is None or not linecache.getlines(code.co_filename):
            continue
        lines = linecache.getlines(code.co_filename)
        try:
            tree = ast.parse("".join(lines))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name == cls.__name__ \
                    and node.lineno <= code.co_firstlineno <= node.end_lineno:
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                return "".join(lines[start - 1:node.end_lineno])
    return None


def _names(code: Any) -> list[str]:
    """Global and attribute names used by a code object and the code objects nested in it, in order."""
    names, stack = [], [code]
    while stack:
        current = stack.pop(0)
        names.extend(current.co_names)
        stack.extend(c for c in current.co_consts if hasattr(c, "co_names"))
    return list(dict.fromkeys(names))


def _follow(obj: Any, parts: list[str], seen: set[int], inspect: Any) -> None:
    """Add the source of ``obj`` and of what it uses (notebook and project code only) to ``parts``."""
    if isinstance(obj, functools.partial):
        for value in (obj.func, *obj.args, *obj.keywords.values()):
            if callable(value):
                _follow(value, parts, seen, inspect)
        return
    if hasattr(obj, "__self__") and hasattr(obj, "__func__"):   # a bound method: its class holds its code
        owner = obj.__self__ if inspect.isclass(obj.__self__) else type(obj.__self__)
        _follow(owner, parts, seen, inspect)
        obj = obj.__func__
    obj = inspect.unwrap(obj) if inspect.isfunction(obj) else obj
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if not (inspect.isfunction(obj) or inspect.isclass(obj)):
        if callable(obj) or _origin(type(obj)) == "user":   # a callable object, or an instance of a notebook class
            _follow(type(obj), parts, seen, inspect)
        return
    origin = _origin(obj)
    if origin != "user":
        parts.append(f"{origin} {getattr(obj, '__module__', '?')}.{_qualname(obj)}")  # the kit: in kit_digest()
        return
    parts.append(f"{_qualname(obj)}\n{_source(obj, inspect)}")
    if inspect.isclass(obj):
        for base in obj.__mro__[1:]:
            _follow(base, parts, seen, inspect)
        for value in vars(obj).values():
            value = _unwrapped(value)
            for fn in (value, getattr(value, "fget", None), getattr(value, "fset", None)):
                if inspect.isfunction(fn):
                    _follow_code(fn, parts, seen, inspect)
        return
    _follow_code(obj, parts, seen, inspect)


def _follow_code(fn: Any, parts: list[str], seen: set[int], inspect: Any) -> None:
    """Follow what a user function's code uses: its globals, its closure, its default arguments."""
    seen.add(id(fn))
    names = _names(fn.__code__)
    used = [fn.__globals__[n] for n in names if n in fn.__globals__]
    used += [cell.cell_contents for cell in fn.__closure__ or () if _filled(cell)]
    used += [*(fn.__defaults__ or ()), *(fn.__kwdefaults__ or {}).values()]
    for value in used:   # (the loop also visits what it appends to ``used``)
        if inspect.ismodule(value):
            if _origin(value) == "user":   # mymodule.helper(): follow the module's names the code uses
                used += [getattr(value, n) for n in names if hasattr(value, n)]
            continue
        # A list or dict of functions (a table of models, say); sets are skipped: their order is not stable.
        if isinstance(value, (list, tuple, dict)) and len(value) <= 100:
            items = value.values() if isinstance(value, dict) else value
            value = [v for v in items if inspect.isfunction(v) or inspect.isclass(v)]
            for item in value:
                _follow(item, parts, seen, inspect)
            continue
        _follow(value, parts, seen, inspect)


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents
    except ValueError:   # a closure variable not yet assigned
        return False
    return True


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

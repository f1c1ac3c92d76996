"""Where an exercise's code was written: in a notebook cell, or elsewhere (the kit, a file, a library).

The sheets' hidden tests check with it that a graded function or class was written in the notebook and
does not hand its work to the kit:

- ``written_in(obj, *methods)``: ``"this notebook"`` when ``obj`` (and the named methods of a class) was
  written in a notebook cell, else where it was defined (``"Var.backprop: helpers/autodiff.py"``) or that it
  is the student version's stub still (``"forward_np: not written yet (it raises NotImplementedError)"``);
- ``kit_names_used(obj)``: the kit's functions, classes and modules that its code refers to, by name;
- ``names_used(obj)``: every global or attribute name its code refers to (a test may forbid some, e.g. torch's
  own Adam in a hand-written Adam step).

Each returns a plain string or a sorted list, so a test compares it with ``expect_equal``, and the grader
compares the same plain values with what the master's solution gave.
"""
from __future__ import annotations

import re
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

NOTEBOOK = "this notebook"
KIT = "helpers"
_KIT_ROOT = Path(__file__).resolve().parent
# How kernels name a cell's code: ipykernel writes /tmp/ipykernel_<pid>/<hash>.py, plain IPython <ipython-input-…>.
_CELL = re.compile(r"(^<ipython-input-\d+-[0-9a-f]+>$)|([/\\]ipykernel_\d+[/\\]\d+\.py$)")


def is_notebook_cell(filename: str) -> bool:
    """Whether a code object's file name is a notebook cell's (ipykernel's or IPython's naming)."""
    return bool(_CELL.search(filename))


def _where_file(filename: str) -> str:
    """A file name as a message shows it: relative to the kit for the kit's files, else its name."""
    try:
        return (Path(KIT) / Path(filename).resolve().relative_to(_KIT_ROOT)).as_posix()
    except (ValueError, OSError):
        return Path(filename).name or filename


def _label(obj: Any) -> str:
    return getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type(obj).__name__


def _functions(obj: Any, methods: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
    """(label, function) for a function, or for a class's named methods (every method it defines if none named)."""
    if not isinstance(obj, type):
        yield _label(obj), obj
        return
    names = methods or tuple(n for n, v in vars(obj).items() if isinstance(v, (types.FunctionType, staticmethod,
                                                                               classmethod, property)))
    for name in names:
        value = obj.__dict__.get(name) if name in obj.__dict__ else getattr(obj, name, None)
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        elif isinstance(value, property):
            value = value.fget
        yield f"{obj.__qualname__}.{name}", value


def written_in(obj: Any, *methods: str) -> str:
    """``"this notebook"`` if ``obj`` and each named method were written in a notebook cell; else where one was.

    A function that still raises ``NotImplementedError`` (the student version's stub) is not written yet.
    """
    if obj is None or obj is Ellipsis:
        return f"nothing: {obj!r}"
    if getattr(obj, "__module__", None) != "__main__":
        return f"{_label(obj)}: module {getattr(obj, '__module__', None) or type(obj).__module__}"
    for label, fn in _functions(obj, methods):
        code = getattr(fn, "__code__", None)
        if fn is None:
            return f"{label}: missing"
        if code is None:
            return f"{label}: not Python code ({type(fn).__name__})"
        if getattr(fn, "__module__", None) != "__main__":
            return f"{label}: module {fn.__module__}"
        if not is_notebook_cell(code.co_filename):
            return f"{label}: {_where_file(code.co_filename)}"
        if "NotImplementedError" in _code_names(code):  # the student version's stub, not written yet
            return f"{label}: not written yet (it raises NotImplementedError)"
    return NOTEBOOK


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    """A code object and every code object nested in it (inner functions, lambdas, comprehensions)."""
    stack = [code]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))


def _code_names(code: types.CodeType) -> set[str]:
    """The global, attribute and imported names of a code object and the code nested in it."""
    return {name for inner in _codes(code) for name in inner.co_names}


def _is_kit(value: Any) -> str | None:
    """The kit module that ``value`` is, or comes from; None for anything else."""
    name = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
    if isinstance(name, str) and (name == KIT or name.startswith(KIT + ".")):
        return name
    return None


def names_used(obj: Any, *methods: str) -> list[str]:
    """Every global, attribute and imported name the code of ``obj`` (or of a class's methods) refers to, sorted."""
    names: set[str] = set()
    for _, fn in _functions(obj, methods):
        code = getattr(fn, "__code__", None)
        if code is not None:
            names |= _code_names(code)
    return sorted(names)


def kit_names_used(obj: Any, *methods: str, allow: tuple[str, ...] = ()) -> list[str]:
    """The kit's functions, classes and modules that ``obj`` refers to, as ``"name (module)"``, sorted.

    Followed: the global names of its code (nested code included), imports inside it, its closure, its
    default arguments and, for a class, its base classes (but for the names in ``allow``, e.g. a kit base
    class the exercise asks to subclass).
    """
    found: set[str] = set()

    def note(name: str, value: Any) -> None:
        module = _is_kit(value)
        if module is not None and name not in allow:
            found.add(f"{name} ({module})")

    if isinstance(obj, type):
        for base in obj.__mro__[1:]:
            note(base.__name__, base)
    for _, fn in _functions(obj, ()):
        code = getattr(fn, "__code__", None)
        if code is None:
            continue
        namespace = getattr(fn, "__globals__", {})
        for inner in _codes(code):
            for name in inner.co_names:
                if name == KIT or name.startswith(KIT + "."):  # import helpers.training inside the function
                    found.add(f"{name} (import)")
                elif name in namespace:
                    note(name, namespace[name])
        for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
            try:
                note(name, cell.cell_contents)
            except ValueError:  # a closure variable not bound yet
                pass
        for i, value in enumerate(fn.__defaults__ or ()):
            note(f"default {i}", value)
        for name, value in (fn.__kwdefaults__ or {}).items():
            note(name, value)
    return sorted(found)

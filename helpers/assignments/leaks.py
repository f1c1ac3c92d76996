"""Answers in the student kit: what of the masters' solutions a folder of Python modules holds.

``make assign`` copies ``helpers/`` to students; it must hold no answer to a graded question. From the
masters' solution cells (otter's markers), ``solutions`` reads what the graded questions ask for: the
functions and classes a solution cell defines (``forward_np``, ``Var``) and the methods of a class that hold
solution code (``Var.backprop``), with their bodies. ``find_answers`` parses every module of a kit folder
with ``ast`` and reports

- a module-level name (function, class, assignment or import) that a graded question asks for;
- a class that defines a method a graded question asks for (``Var.backprop``);
- a function or method whose body equals a solution's body (of ``MIN_BODY_NODES`` AST nodes or more), or holds
  a stretch of one (``MIN_STRETCH_NODES``), once docstrings and the names of variables, arguments and functions
  are stripped (attribute names and constants are kept). A one-line body such as ``return self.body(x)`` is
  left out: it is every model's forward, and a student writes it in seconds; its name is still checked.
"""
from __future__ import annotations

import ast
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import master_format

# A shared stretch of statements counts from this many AST nodes: a loop of a few lines (a traversal, an
# update over parameters), not one generic line such as ``return self.body(x)``.
MIN_STRETCH_NODES = 25
# A whole body counts from this many: ``return self.body(x)`` (a forward of any model that keeps its layers in
# ``self.body``) is no answer to FashionMLP, but a two-line Adam update is.
MIN_BODY_NODES = 12


@dataclass(frozen=True)
class Solution:
    """One function or method a graded question asks for, with its statements."""

    master: str      # the master notebook's file name
    name: str        # forward_np, Var, Var.backprop
    body: tuple[ast.stmt, ...]


@dataclass(frozen=True)
class Leak:
    """Something of a solution found in a kit module."""

    module: str      # the module's path inside the kit folder
    line: int
    what: str        # a sentence naming the kit's code and the solution it matches

    def __str__(self) -> str:
        return f"{self.module}:{self.line}: {self.what}"


def _holds(node: ast.AST, lines: set[int]) -> bool:
    return any(n in lines for n in range(node.lineno, (node.end_lineno or node.lineno) + 1))


def solutions(master: Path) -> list[Solution]:
    """What the graded (autograded) questions of ``master`` ask for: its solution cells' functions, classes, methods."""
    cells = json.loads(Path(master).read_text(encoding="utf-8"))["cells"]
    found: list[Solution] = []
    for index, block in master_format.blocks(cells):
        cell = cells[index]
        if block != "solution" or cell.get("cell_type") != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        tree = ast.parse(master_format.printed_form(source))
        written = master_format.printed_solution_lines(source)
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append(Solution(Path(master).name, node.name, tuple(node.body)))
            elif isinstance(node, ast.ClassDef):
                found.append(Solution(Path(master).name, node.name, ()))
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and _holds(item, written):
                        found.append(Solution(Path(master).name, f"{node.name}.{item.name}", tuple(item.body)))
    return found


def _without_docstring(body: Sequence[ast.stmt]) -> list[ast.stmt]:
    body = list(body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    return body


_SKIPPED = {"ctx", "type_comment", "returns", "annotation", "decorator_list"}


def _normal_one(node: object, memo: dict[int, str] | None = None) -> str:
    """A node's AST as a string, with docstrings and the names of variables, arguments and functions left out
    (attribute names and constants stay), so that renaming variables does not hide a copy.

    ``memo`` keeps each statement's form by id (valid while its tree is alive): nested statements are met once
    per enclosing list.
    """
    if memo is not None and isinstance(node, ast.stmt) and id(node) in memo:
        return memo[id(node)]
    if isinstance(node, ast.Name):
        return "Name"
    if isinstance(node, ast.arg):
        return "arg"
    if isinstance(node, list):
        return "[" + ",".join(_normal_one(item, memo) for item in node) + "]"
    if not isinstance(node, ast.AST):
        return repr(node)
    parts = []
    for field, value in ast.iter_fields(node):
        if field in _SKIPPED or (field == "name" and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))):
            continue
        if field == "body" and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            value = _without_docstring(value)
        parts.append(_normal_one(value, memo))
    form = f"{type(node).__name__}({','.join(parts)})"
    if memo is not None and isinstance(node, ast.stmt):
        memo[id(node)] = form
    return form


def _normal(statements: Sequence[ast.stmt]) -> str:
    return "\n".join(_normal_one(s) for s in statements)


def _statement_lists(node: ast.AST) -> Iterator[list[ast.stmt]]:
    """Every list of statements of code under ``node`` (function, loop and branch bodies), not module or class bodies."""
    for child in ast.walk(node):
        if isinstance(child, (ast.Module, ast.ClassDef)):
            continue
        for field in ("body", "orelse", "finalbody"):
            value = getattr(child, field, None)
            if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                yield _without_docstring(value) if field == "body" else value
        if isinstance(child, ast.Try):
            for handler in child.handlers:
                yield handler.body


def _stretches(statements: list[ast.stmt], memo: dict[int, str]) -> Iterator[tuple[int, int, str]]:
    """(start, stop, normal form) of the shortest run of consecutive statements from each start that has at least
    MIN_STRETCH_NODES nodes. A longer shared run holds a shared shortest one, so these are enough to find it."""
    forms = [_normal_one(s, memo) for s in statements]
    sizes = [sum(1 for _ in ast.walk(s)) for s in statements]
    for i in range(len(statements)):
        total = 0
        for j in range(i + 1, len(statements) + 1):
            total += sizes[j - 1]
            if total >= MIN_STRETCH_NODES:
                yield i, j, "\n".join(forms[i:j])
                break


def _module_names(tree: ast.Module) -> Iterator[tuple[str, int]]:
    """(name, line) for every name a module defines at its top level."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.name, node.lineno
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        yield name.id, node.lineno
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                yield (alias.asname or alias.name).split(".")[0], node.lineno


def find_answers(kit: Path, masters: Sequence[Path]) -> list[Leak]:
    """Everything in the modules under ``kit`` that is a graded question's answer (see the module's docstring)."""
    wanted = [s for m in masters for s in solutions(Path(m))]
    top = {s.name: s for s in wanted if "." not in s.name}
    methods = {s.name: s for s in wanted if "." in s.name}
    whole = {_normal(_without_docstring(s.body)): s for s in wanted
             if sum(1 for statement in _without_docstring(s.body) for _ in ast.walk(statement)) >= MIN_BODY_NODES}
    leaks: list[Leak] = []
    kit_stretches: dict[str, tuple[str, int]] = {}  # normal form of a stretch of kit statements -> where
    for path in sorted(Path(kit).rglob("*.py")):
        rel = path.relative_to(kit).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
        for name, line in _module_names(tree):
            if name in top:
                leaks.append(Leak(rel, line, f"defines {name}, which {top[name].master} asks students to write"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    qual = f"{node.name}.{item.name}" if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) else ""
                    if qual in methods:
                        leaks.append(Leak(rel, item.lineno, f"defines {qual}, which {methods[qual].master} asks "
                                                            "students to write"))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                same = whole.get(_normal(_without_docstring(node.body)))
                if same is not None:
                    leaks.append(Leak(rel, node.lineno, f"{node.name} has the body of {same.name} "
                                                        f"({same.master}'s solution)"))
        memo: dict[int, str] = {}  # for this module's tree, alive until the next module
        for statements in _statement_lists(tree):
            for i, _, form in _stretches(statements, memo):
                kit_stretches.setdefault(form, (rel, statements[i].lineno))
    reported = {(leak.module, leak.line) for leak in leaks}
    shared: set[tuple[str, str]] = set()  # (kit module, solution): one leak each
    for solution in wanted:
        for statements in [_without_docstring(solution.body), *_statement_lists(ast.Module(body=list(solution.body),
                                                                                          type_ignores=[]))]:
            for i, j, form in _stretches(statements, {}):
                where = kit_stretches.get(form)
                if where is not None and where not in reported and (where[0], solution.name) not in shared:
                    shared.add((where[0], solution.name))
                    leaks.append(Leak(where[0], where[1], f"holds code of {solution.name} ({solution.master}'s "
                                                          f"solution): {j - i} statement(s) alike but for names"))
    return sorted(leaks, key=lambda leak: (leak.module, leak.line))

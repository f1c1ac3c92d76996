"""Notes for the TA on a notebook that reaches into the grading path: a hint to look, not the defence.

The defence is elsewhere: the verdict is decided outside the student's process (``verdict``), and a sandbox
holds each submission (``sandbox``). This only reads the notebook's code (never runs it) and names the cells
that assign attributes of modules on the grading path (otter, the kit's ``helpers``, ``numpy.testing``,
``torch.testing``, builtins), replace entries of ``sys.modules``, or call ``setattr`` on them.
"""
from __future__ import annotations

import ast
import re

WATCHED = ("otter", "helpers", "exercises", "np.testing", "numpy.testing", "torch.testing", "builtins",
           "__builtins__", "sys.modules", "probes", "verdict")
_MAGIC = re.compile(r"^\s*[%!]")


def _dotted(node: ast.AST) -> str:
    """'a.b.c' for an attribute chain or a name, '' for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Subscript):
        return _dotted(node.value)
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _watched(name: str, aliases: dict[str, str]) -> bool:
    head, _, rest = name.partition(".")
    full = aliases.get(head, head) + ("." + rest if rest else "")
    return any(full == w or full.startswith(w + ".") for w in WATCHED)


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Local names bound by imports of watched modules: ``import numpy.testing as npt`` gives npt -> numpy.testing."""
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                found[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return found


def notes(cells: list) -> list[str]:
    """One note per code cell that changes something on the grading path."""
    out, aliases = [], {}
    code = [c for c in cells if isinstance(c, dict) and c.get("cell_type") == "code"]
    trees = []
    for number, cell in enumerate(code, 1):
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        try:
            tree = ast.parse("\n".join("" if _MAGIC.match(line) else line for line in source.splitlines()))
        except (SyntaxError, ValueError):
            continue
        aliases.update(_aliases(tree))
        trees.append((number, tree))
    for number, tree in trees:
        hits = set()
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
                targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                if isinstance(target, (ast.Attribute, ast.Subscript)):
                    name = _dotted(target)
                    if name and _watched(name, aliases):
                        hits.add(name)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr") \
                    and node.args and _watched(_dotted(node.args[0]) or "?", aliases):
                hits.add(f"{node.func.id}({_dotted(node.args[0])}, …)")
        if hits:
            out.append(f"code cell {number} changes the grading path ({', '.join(sorted(hits)[:4])}): look at it; "
                       "it cannot change the verdict, which is decided outside the notebook")
    return out

"""The shape of helpers/: no import cycles (not even inside functions), and one module per physical question."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

HELPERS = Path(__file__).resolve().parent.parent / "helpers"


def _module_name(path: Path) -> str:
    parts = path.relative_to(HELPERS.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    """Every module of the package, subpackages (helpers/export/) included."""
    return {_module_name(p): p for p in sorted(HELPERS.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _statements(tree: ast.AST):
    """Every node of the tree except those inside ``if TYPE_CHECKING:`` blocks (their else branch is kept)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Kit modules that ``name`` imports anywhere (top level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _statements(ast.parse(path.read_text(), filename=str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # "from . import store" names a module; "from .store import write_json" names its contents.
            targets = [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith("helpers."):
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_walker_sees_imports_inside_functions_and_skips_type_checking(tmp_path):
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import X\n"
                     "def f():\n    from . import b\n")
    path = tmp_path / "c.py"
    path.write_text(ast.unparse(tree))
    assert _imports("helpers.c", path, {"helpers.a", "helpers.b", "helpers.c"}) == {"helpers.b"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_helpers_has_no_import_cycles():
    graph = import_graph()
    assert "helpers.history" in graph and "helpers.training" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_ground_floor_imports_nothing_above_it():
    graph = import_graph()
    assert graph["helpers.history"] <= {"helpers.config", "helpers.store"}
    assert graph["helpers.store"] == set() and graph["helpers.device"] == set()
    assert graph["helpers.config"] == set()
    for module in ("helpers.plotting", "helpers.experiments", "helpers.sweeps"):
        assert "helpers.training" not in graph[module], f"{module} needs History only: import it from history"
    assert "helpers.sweeps" not in graph["helpers.experiments"] and "helpers.experiments" not in graph["helpers.sweeps"]
    assert "helpers.sweeps" not in graph["helpers.plotting"]


def _calls(path: Path) -> set[str]:
    """Names of attributes and functions a module uses (``torch.cuda.reset_peak_memory_stats`` → its last part)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.Name):
            names.add(node.id)
    return names


ONE_MODULE = {
    "reset_peak_memory_stats": "helpers.device",
    "max_memory_allocated": "helpers.device",
    "GradScaler": "helpers.device",
    "autocast": "helpers.device",
    "bfloat16": "helpers.device",
    "float16": "helpers.device",
    "replace": "helpers.store",   # os.replace
    "rename": "helpers.store",    # os.rename / Path.rename
    "mkstemp": "helpers.store",
}


@pytest.mark.parametrize("name", sorted(ONE_MODULE))
def test_one_module_answers_each_question(name):
    owner = ONE_MODULE[name]
    users = set()
    for module, path in _modules().items():
        if module == owner:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if name in ("replace", "rename"):
                # os.replace / os.rename / <path>.rename / <path>.replace(<path>): a rename into place.
                hit = (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                       and node.func.attr == name and _is_rename(node))
            elif name == "autocast":
                hit = isinstance(node, ast.Attribute) and node.attr == "autocast" and \
                    isinstance(node.value, ast.Name) and node.value.id == "torch"
            else:
                hit = (isinstance(node, ast.Attribute) and node.attr == name) or \
                    (isinstance(node, ast.Name) and node.id == name)
            if hit:
                users.add(module)
    assert not users, f"only {owner} may use {name}; also used in {sorted(users)}"


def _is_rename(call: ast.Call) -> bool:
    """os.replace(a, b) / os.rename(a, b), or p.rename(q) / p.replace(q) with one argument (not str.replace(a, b))."""
    func = call.func
    if isinstance(func.value, ast.Name) and func.value.id in ("os", "shutil"):
        return True
    return func.attr == "rename" or (func.attr == "replace" and len(call.args) == 1 and not call.keywords)

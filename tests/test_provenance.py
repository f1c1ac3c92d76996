"""helpers.provenance: where an exercise was written, and which kit names its code leans on."""
from __future__ import annotations

import textwrap

import pytest

from helpers.provenance import NOTEBOOK, is_notebook_cell, kit_names_used, names_used, written_in

CELL = "/tmp/ipykernel_4211/3512853.py"


def cell(source: str, filename: str = CELL) -> dict:
    """Run ``source`` as a notebook cell does: in ``__main__``'s namespace, under the kernel's cell file name."""
    namespace = {"__name__": "__main__"}
    exec(compile(textwrap.dedent(source), filename, "exec"), namespace)
    return namespace


@pytest.mark.parametrize("name, expected", [
    ("/tmp/ipykernel_4211/3512853.py", True), ("C:\\Temp\\ipykernel_77\\12.py", True),
    ("<ipython-input-3-5f1e2a>", True), ("/repo/helpers/autodiff.py", False), ("<string>", False),
    ("/home/me/answers.py", False), ("/tmp/ipykernel_4211/answers.py", False)])
def test_cell_file_names(name, expected):
    assert is_notebook_cell(name) is expected


def test_a_function_and_a_class_written_in_a_cell():
    ns = cell("""
        class Var:
            def backprop(self, bp):
                return bp
            def __add__(self, other):
                return self

        def forward_np(X):
            return [x + 1 for x in X]
    """)
    assert written_in(ns["forward_np"]) == NOTEBOOK
    assert written_in(ns["Var"], "backprop", "__add__") == NOTEBOOK


def test_an_import_from_the_kit_or_a_file_is_named():
    from helpers.autodiff import DenseLayer

    assert written_in(DenseLayer) == "DenseLayer: module helpers.autodiff"
    ns = cell("def forward_np(X):\n    return X\n", filename="/home/me/answers.py")
    assert written_in(ns["forward_np"]) == "forward_np: answers.py"
    ns = cell("def forward_np(X):\n    return X\n", filename="<string>")  # exec of a string in a cell
    assert written_in(ns["forward_np"]) == "forward_np: <string>"
    assert written_in(len) == "len: module builtins" and written_in(None) == "nothing: None"


def test_a_class_that_inherits_its_methods_from_the_kit_is_caught():
    ns = cell("""
        from helpers.autodiff import DenseLayer

        class Layer(DenseLayer):
            pass
    """)
    assert written_in(ns["Layer"], "forward") == "Layer.forward: module helpers.autodiff"
    assert written_in(ns["Layer"], "no_such_method") == "Layer.no_such_method: missing"
    assert kit_names_used(ns["Layer"]) == ["DenseLayer (helpers.autodiff)"]
    assert kit_names_used(ns["Layer"], allow=("DenseLayer",)) == []


def test_kit_names_used_follows_globals_imports_closures_and_defaults():
    ns = cell("""
        import helpers.training as T
        from helpers.training import fit
        from helpers import data

        def by_global(model, loader):
            return fit(model, loader, 1)

        def by_module(n):
            return data.split_indices(n, 10, 0)

        def by_import(model, loader):
            import helpers.training
            return helpers.training.evaluate(model, loader)

        def make():
            f = T.evaluate
            def by_closure(model, loader):
                return f(model, loader)
            return by_closure
        by_closure = make()

        def by_default(model, loader, run=fit):
            return run(model, loader, 1)

        def honest(model, loader):
            return [model(x) for x, _ in loader]
    """)
    assert kit_names_used(ns["by_global"]) == ["fit (helpers.training)"]
    assert kit_names_used(ns["by_module"]) == ["data (helpers.data)"]
    assert kit_names_used(ns["by_import"]) == ["helpers.training (import)"]
    assert kit_names_used(ns["by_closure"]) == ["f (helpers.training)"]
    assert kit_names_used(ns["by_default"]) == ["default 0 (helpers.training)"]
    assert kit_names_used(ns["honest"]) == []


def test_names_used_sees_nested_code():
    ns = cell("""
        import torch

        def adam_step(m, v, g):
            step = lambda: torch.optim.Adam
            return step()
    """)
    assert {"torch", "optim", "Adam"} <= set(names_used(ns["adam_step"]))



def test_the_student_versions_stub_is_not_written_yet():
    ns = cell('''
        def forward_np(X, Ws, bs, acts):
            """The recursion of 1c."""
            raise NotImplementedError("1c: write forward_np")

        class Var:
            def backprop(self, bp):
                raise NotImplementedError("2b: Var.backprop")

        def master(X):
            """ # BEGIN PROMPT
            raise NotImplementedError("1c: write forward_np")
            """ # END PROMPT
            return X
    ''')
    assert written_in(ns["forward_np"]) == "forward_np: not written yet (it raises NotImplementedError)"
    assert written_in(ns["Var"], "backprop") == "Var.backprop: not written yet (it raises NotImplementedError)"
    assert written_in(ns["master"]) == NOTEBOOK  # the master's prompt is a string, not code

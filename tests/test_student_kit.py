"""What ships to students holds no answer: the kit that make assign copies, parsed against the masters' solutions.

The student kit is built once per session with the copy make assign uses (``assign.student_kit``). Every
module is parsed with ``ast``; a module-level name, a class's method or a function body (docstrings and
names stripped) that matches what a graded question asks for fails the test. Planted copies show that
the check catches each kind.
"""
from __future__ import annotations

import ast
import re
import shutil
import textwrap
from pathlib import Path

import pytest

from helpers import master_format
from helpers.assignments.assign import AssignError, refuse_answers, student_kit
from helpers.assignments.leaks import find_answers, solutions

REPO = Path(__file__).resolve().parent.parent
MASTERS = sorted((REPO / "notebooks").glob("[0-9]*.ipynb"))


@pytest.fixture(scope="session")
def kit(tmp_path_factory) -> Path:
    """helpers/ as make assign copies it into dist/student."""
    return student_kit(tmp_path_factory.mktemp("student"))


def plant(tmp_path: Path, source: str, name: str = "planted.py") -> Path:
    """A kit folder holding one module with ``source``."""
    folder = tmp_path / "helpers"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(textwrap.dedent(source))
    return folder


def solution_source(name: str) -> str:
    """The printed source (markers dropped) of the master's solution cell that defines ``name``."""
    import json

    for master in MASTERS:
        cells = json.loads(master.read_text())["cells"]
        for index, block in master_format.blocks(cells):
            text = master_format.printed_form("".join(cells[index]["source"]))
            if block == "solution" and re.search(rf"^(def|class) {name}\b", text, re.MULTILINE):
                return text
    raise LookupError(name)


def test_the_masters_name_what_students_write():
    names = {s.name for m in MASTERS for s in solutions(m)}
    # every graded exercise of the four sheets, with the methods a graded class asks for
    assert {"forward_np", "backprop_np", "Var", "Var.backprop", "Var.__add__", "Var.tanh", "forward", "squared_loss",
            "gradient_step", "adam_step", "fashion_transform", "validation_split", "FashionMLP", "FashionMLP.forward",
            "make_loss", "train_one_epoch", "evaluate_by_hand", "EuropeMLP", "train_europe", "SquaredGradNorms",
            "SquaredGradNorms.after_backward", "LinearProbe", "LinearProbe.train", "fine_tune", "amp_step"} <= names
    assert "Var.__init__" not in names and "Var.__sub__" not in names, "given methods are not the exercise"


def test_the_student_kit_holds_no_answer(kit):
    assert (kit / "autodiff.py").is_file() and (kit / "exercises.py").is_file()
    leaks = find_answers(kit, MASTERS)
    assert not leaks, "answers in the student kit:\n" + "\n".join(map(str, leaks))


def test_no_var_to_import_from_the_kit(kit):
    # the case: a q2b cell `from helpers.autodiff import Var` scored 5.25 of 6
    tree = ast.parse((kit / "autodiff.py").read_text())
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert not defined & {"Var", "forward", "squared_loss", "update_parameters", "zero_gradients"}
    assert {"DenseLayer", "GlorotInitializer", "nparray_to_Var", "parameters"} <= defined


def test_a_planted_name_is_caught(tmp_path):
    kit = plant(tmp_path, """
        from torch.nn import CrossEntropyLoss as make_loss

        def forward_np(X, Ws, bs, acts):
            return None

        class Var:
            def backprop(self, bp):
                pass
    """)
    found = [str(leak) for leak in find_answers(kit, MASTERS)]
    assert any(f.startswith("planted.py:2: defines make_loss") for f in found), found
    assert any(f.startswith("planted.py:4: defines forward_np") for f in found)
    assert any(f.startswith("planted.py:7: defines Var,") for f in found)
    assert any(f.startswith("planted.py:8: defines Var.backprop") for f in found)


def test_a_planted_body_under_other_names_is_caught(tmp_path):
    source = solution_source("backprop_np").replace("def backprop_np(As, Zs, T, Ws, acts):", "def chain(a, z, t, w, h):")
    for old, new in (("delta", "d"), ("grads", "out"), ("As", "a"), ("Zs", "z"), ("Ws", "w"), ("acts", "h")):
        source = re.sub(rf"\b{old}\b", new, source)
    kit = plant(tmp_path, "class Tools:\n" + textwrap.indent(source, "    "))
    found = [str(leak) for leak in find_answers(kit, MASTERS)]
    assert any("chain has the body of backprop_np" in f for f in found), found


def test_a_planted_stretch_of_a_solution_is_caught(tmp_path):
    # the first half of Var.backprop (its traversal), inside a function that does something else after it
    body = solution_source("Var").split("def backprop(self, bp):\n", 1)[1].split("adjoint =", 1)[0]
    traversal = textwrap.dedent(body).replace("self", "root").replace("order", "nodes")
    kit = plant(tmp_path, "def graph_nodes(root):\n" + textwrap.indent(traversal, "    ") + "    return len(nodes)\n")
    found = [str(leak) for leak in find_answers(kit, MASTERS)]
    assert any("holds code of Var.backprop" in f for f in found), found


def test_the_old_kit_autodiff_would_be_caught(tmp_path):
    # what helpers/autodiff.py shipped before: the fast Var and the functions of 2l (now tests/autodiff_reference.py)
    kit = tmp_path / "helpers"
    kit.mkdir()
    shutil.copy(REPO / "tests" / "autodiff_reference.py", kit / "autodiff.py")
    found = {str(leak).split(": ", 1)[1].split(",")[0] for leak in find_answers(kit, MASTERS)}
    assert {"defines Var", "defines Var.backprop", "defines forward", "defines squared_loss"} <= found


def test_generic_code_is_not_an_answer(tmp_path):
    kit = plant(tmp_path, """
        class Net:
            def forward(self, x):
                return self.body(x)

        def train(model, loader):
            for xb, yb in loader:
                model(xb)
    """)
    assert find_answers(kit, MASTERS) == []


def test_assign_refuses_to_publish_an_answer(tmp_path):
    kit = plant(tmp_path, "def adam_step(m, v, g, beta1, beta2, lr, eps, t=None):\n    return m, v, 0.0\n", "optim.py")
    with pytest.raises(AssignError, match=r"helpers/optim.py:1: defines adam_step"):
        refuse_answers(kit, MASTERS)

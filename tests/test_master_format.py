"""Reading otter-grader's master format: questions, solution lines, printed form; the committed masters."""
import json
from pathlib import Path

import pytest

from helpers import master_format as mf

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9]*.ipynb"))


def raw(text):
    return {"cell_type": "raw", "source": text, "metadata": {}}


def md(text):
    return {"cell_type": "markdown", "source": text, "metadata": {}}


def code(text):
    return {"cell_type": "code", "source": text, "metadata": {}, "outputs": [], "execution_count": None}


SOLVED = '''def square(x):
    """x times x."""
    # BEGIN SOLUTION NO PROMPT
    return x * x
    # END SOLUTION
    """ # BEGIN PROMPT
    raise NotImplementedError("q1: write square")
    """ # END PROMPT
nine = square(3)  # SOLUTION'''

CELLS = [
    raw("# ASSIGNMENT CONFIG\nname: demo\nconfig_file: assignment.yml"),
    md("# Demo"),
    raw("# BEGIN QUESTION\nname: q1\npoints: 2"),
    md("## 1 — Squares\nWrite square."),
    raw("# BEGIN SOLUTION"),
    code(SOLVED),
    raw("# END SOLUTION"),
    raw("# BEGIN TESTS"),
    code("def test_square(square):\n    assert square(3) == 9\n\ntest_square(square)"),
    raw("# END TESTS"),
    raw("# END QUESTION"),
    raw("# BEGIN QUESTION\nname: q2\npoints: [1, 2]\nmanual: true"),
    md("Why?"),
    raw("# BEGIN SOLUTION"),
    md("Because."),
    raw("# END SOLUTION"),
    raw("# END QUESTION"),
    md("## 3 — Later"),
]


def test_questions_names_points_kind_and_heading():
    qs = mf.questions(CELLS)
    assert [(q.name, q.points, q.manual, q.heading) for q in qs] == [("q1", 2.0, False, "1 — Squares"),
                                                                     ("q2", 3.0, True, "")]
    assert CELLS[qs[0].first_cell]["source"].startswith("## 1")
    assert mf.assignment_config(CELLS) == {"name": "demo", "config_file": "assignment.yml"}


def test_solution_lines_and_test_cells():
    assert mf.solution_lines(CELLS) == ["return x * x", "nine = square(3)"]
    assert mf.test_cells(CELLS) == {8}
    assert [i for i, c in enumerate(CELLS) if mf.is_boundary(c)] == [0, 2, 4, 6, 7, 9, 10, 11, 13, 15, 16]


def test_hidden_tests_by_comment_or_config():
    assert mf.is_hidden_test(code("# HIDDEN\ndef test_x(): pass"))
    assert mf.is_hidden_test(code('""" # BEGIN TEST CONFIG\nhidden: true\npoints: 1\n""" # END TEST CONFIG\ndef t(): pass'))
    assert not mf.is_hidden_test(code("def test_x(): pass  # HIDDEN comes too late"))


def test_printed_form_keeps_the_solution_and_drops_markers_and_prompts():
    assert mf.printed_form(SOLVED) == 'def square(x):\n    """x times x."""\n    return x * x\nnine = square(3)'


def test_malformed_questions_are_named():
    with pytest.raises(ValueError, match="needs a name"):
        mf.questions([raw("# BEGIN QUESTION\npoints: 1")])
    with pytest.raises(ValueError, match="inside the question"):
        mf.questions([raw("# BEGIN QUESTION\nname: a"), raw("# BEGIN QUESTION\nname: b")])


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_sheet_is_a_master_with_questions_named_by_task(notebook):
    cells = json.loads(notebook.read_text())["cells"]
    config = mf.assignment_config(cells)
    assert config.get("name") and config.get("config_file") == "assignment.yml", \
        f"{notebook.name}: the first cell must be its ASSIGNMENT CONFIG (name, config_file: assignment.yml)"
    qs = mf.questions(cells)
    assert qs and all(q.name.startswith(("q", "part")) for q in qs)
    assert any(not q.manual for q in qs) and any(q.manual for q in qs), "code exercises and written answers"
    assert mf.solution_lines(cells), "the code a student writes is marked"


def test_question_names_differ_across_sheets():
    names = [q.name for nb in NOTEBOOKS for q in mf.questions(json.loads(nb.read_text())["cells"])]
    assert len(names) == len(set(names)), "the gradebook has one column per question"


def test_printed_solution_lines_number_the_printed_form():
    source = ('def f(x):\n    """Doc."""\n    # BEGIN SOLUTION NO PROMPT\n    y = x + 1\n    return y\n    # END SOLUTION\n'
              '    """ # BEGIN PROMPT\n    raise NotImplementedError\n    """ # END PROMPT\nz = 2  # SOLUTION\n')
    printed = mf.printed_form(source).splitlines()
    lines = mf.printed_solution_lines(source)
    assert [printed[n - 1].strip() for n in sorted(lines)] == ["y = x + 1", "return y", "z = 2"]

"""Student PDFs: each question opens with a label (its bookmark), optionally on a new page; the manifest maps pages."""
import io

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from pypdf import PdfWriter

from helpers.export.bundle import question_pages
from helpers.export.tidy import BREAK_ID, QUESTION_ID, tidy_notebook


def student_notebook():
    cells = [new_markdown_cell("# Sheet"),
             new_markdown_cell("## 2b — Var", metadata={"kit": {"question": {"name": "q2b", "points": 6.0,
                                                                              "manual": False}}}),
             new_code_cell("class Var: ..."),
             new_markdown_cell("Explain.", metadata={"kit": {"question": {"name": "q2b_flow", "points": 1,
                                                                           "manual": True}}})]
    return new_notebook(cells=cells)


def test_each_question_opens_with_a_label_and_breaks_the_page_only_when_asked():
    plain = tidy_notebook(student_notebook())
    labels = [c for c in plain.cells if c.get("id", "").startswith(QUESTION_ID)]
    assert [c.id for c in labels] == ["kit-question-q2b", "kit-question-q2b_flow"]
    assert "Question q2b · 6 points" in labels[0].source
    assert "Question q2b_flow · 1 point (written answer, graded by hand)" in labels[1].source
    assert plain.cells.index(labels[0]) + 1 == next(i for i, c in enumerate(plain.cells) if "2b — Var" in c.source)
    broken = tidy_notebook(student_notebook(), pagebreaks=True)
    assert sum(c.get("id", "").startswith(BREAK_ID) for c in broken.cells) == 2
    # The label cells are the export's, not the sheet's: the sheet's own cells keep their numbers.
    assert [c.id for c in broken.cells if c.id.startswith("kit-cell-")] == [f"kit-cell-{i}" for i in range(1, 5)]


def test_a_master_or_lesson_notebook_gets_no_labels():
    nb = new_notebook(cells=[new_markdown_cell("## 2b — Var"), new_code_cell("x = 1")])
    assert len(tidy_notebook(nb, pagebreaks=True).cells) == 2


def test_question_pages_from_the_bookmarks():
    writer = PdfWriter()
    for _ in range(5):
        writer.add_blank_page(595, 842)
    writer.add_outline_item("Sheet 1", 0)
    writer.add_outline_item("Question q1c · 2 points", 1)
    writer.add_outline_item("2b — Var", 2)
    writer.add_outline_item("Question q2b · 6 points", 3)
    out = io.BytesIO()
    writer.write(out)
    assert question_pages(out.getvalue()) == {"q1c": [2, 3], "q2b": [4, 5]}

"""make similarity on a generated class of 40: planted copies rank first, starter code alone is no likeness, leaks flagged."""
from __future__ import annotations

from itertools import combinations

import pytest

from helpers.assignments import classgen, similarity
from helpers.assignments.answers import answer_text

from _classes import PLANTED, PLANTED_WRITTEN, ROOT, generated, master_cells, sheet1, sheet1_dist, student


@pytest.fixture(scope="module")
def compared():
    klass = generated()
    results = similarity.compare_sheet(klass.notebooks, student(), master_cells(), sheet1().questions)
    return klass, {r.question: r for r in results}


def test_the_three_planted_copies_rank_top_three_of_their_question(compared):
    klass, results = compared
    planted = {frozenset(pair[:2]) for pair in klass.copies[PLANTED]}
    assert {how for *_, how in klass.copies[PLANTED]} == {"commented", "renamed", "reordered"}
    top = {frozenset((p.a, p.b)) for p in results[PLANTED].pairs[:3]}
    assert top == planted, [(p.a, p.b, round(p.score, 2)) for p in results[PLANTED].pairs[:5]]


def test_honest_pairs_score_below_every_copy(compared):
    klass, results = compared
    planted = {frozenset(pair[:2]) for pair in klass.copies[PLANTED]}
    copies = [p.score for p in results[PLANTED].pairs if frozenset((p.a, p.b)) in planted]
    honest = [p.score for p in results[PLANTED].pairs if frozenset((p.a, p.b)) not in planted]
    assert len(copies) == 3 and honest, "the question should have honest pairs sharing something"
    assert max(honest) < min(copies) - 0.3, (max(honest), min(copies))


def test_answers_left_as_the_starter_code_share_nothing(compared):
    klass, results = compared
    for question, files in klass.untouched.items():
        if question not in results or results[question].kind != "code":
            continue
        texts = {answer_text(klass.notebooks[f])[question] for f in files}
        assert len(texts) == 1  # all the starter code, unchanged
        listed = {frozenset((p.a, p.b)) for p in results[question].pairs}
        assert not any(frozenset(pair) in listed for pair in combinations(files, 2)), question
        assert results[question].answered == len(klass.notebooks) - len(files)


def test_a_pasted_master_solution_is_flagged_as_leaked_however_disguised(compared):
    klass, results = compared
    for question, files in klass.leaked.items():
        assert {sid for sid, _ in results[question].leaks} == set(files), question
    assert results[PLANTED].leaks == []


def test_a_copied_written_answer_scores_as_a_copy(compared):
    klass, results = compared
    (a, b, _), = klass.copies[PLANTED_WRITTEN]
    pair = next(p for p in results[PLANTED_WRITTEN].pairs if {p.a, p.b} == {a, b})
    assert pair.score == pytest.approx(1.0)
    own = [f for (f, q), kind in klass.kinds.items() if q == PLANTED_WRITTEN and kind == "own" and f not in (a, b)]
    honest = [p.score for p in results[PLANTED_WRITTEN].pairs if p.a in own and p.b in own]
    assert max(honest, default=0.0) < 0.5


def test_the_page_ranks_marks_and_warns_and_a_pair_is_screenshot(tmp_path):
    from test_report import screenshot

    grades = tmp_path / "grades"
    classgen.write_graded(generated(), sheet1(), master_cells(), tmp_path / "submissions", grades)
    page = similarity.write(grades, sheet1_dist() / "autograder", sheet1_dist() / "student", ROOT / "notebooks")
    text = page.read_text()
    assert similarity.VERDICT in text and "<mark>" in text and "leaked solution" in text
    assert "src=" not in text  # nothing to load
    data = (grades / "similarity.json").read_text()
    assert '"question": "q2l"' in data
    png = ROOT / "docs" / "similarity.png"
    screenshot(page, png, width=1100, height=900, selector=f"#sheet1-{PLANTED} ~ .pair")
    assert 3_000 < png.stat().st_size < 300_000

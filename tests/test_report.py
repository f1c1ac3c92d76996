"""make report: the item analysis equals a hand computation; the page is self-contained and shows every figure offline."""
from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from helpers import store
from helpers.assignments import analysis, report
from helpers.assignments.grade import Sheet, Submission, write_gradebook

from _classes import ROOT, generated, master_cells, sheet1, sheet1_dist

QUESTIONS = ({"name": "qa", "points": 2.0, "manual": False}, {"name": "qb", "points": 4.0, "manual": False},
             {"name": "qw", "points": 3.0, "manual": True})
TESTS = {"qa": [("ta_pub", False), ("ta_hid", True), ("ta_never", True)],
         "qb": [("tb1", False), ("tb2", False), ("tb_always", False), ("tb_hid", True)]}
# passes per student, in the order of TESTS; and the scores otter gave
PASSES = {"s1": {"qa": (1, 1, 0), "qb": (1, 1, 1, 1)}, "s2": {"qa": (1, 0, 0), "qb": (1, 1, 1, 0)},
          "s3": {"qa": (0, 0, 0), "qb": (1, 0, 1, 0)}, "s4": {"qa": (1, 1, 0), "qb": (0, 0, 1, 0)},
          "s5": {"qa": (0, 0, 0), "qb": (1, 1, 1, 1)}}
SCORES = {"qa": [2, 1, 0, 2, 0], "qb": [4, 2, 2, 0, 4]}
MESSAGES = {("s2", "ta_hid"): "Traceback ...\nAssertionError: wrong sign", ("s3", "ta_hid"): "AssertionError: wrong sign",
            ("s5", "ta_hid"): "TypeError: not a Var"}


def pearson(x: list[float], y: list[float]) -> float:
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    return sxy / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))


@pytest.fixture
def small_class(tmp_path) -> tuple[Path, Path]:
    """Five graded submissions of a three-question sheet, and one that errored (left out of every statistic)."""
    autograders = tmp_path / "autograder"
    store.write_json(autograders / "demo.json", {"assignment": "demo", "notebook": "demo.ipynb", "zip": "demo.zip",
                                                 "questions": list(QUESTIONS)})
    sheet = Sheet("demo", "demo.ipynb", autograders / "demo.zip", QUESTIONS)
    subs, outcomes = [], {}
    for k, (sid, passes) in enumerate(PASSES.items()):
        questions = {}
        for q, tests in TESTS.items():
            questions[q] = {"score": SCORES[q][k], "possible": {"qa": 2, "qb": 4}[q], "tests": [
                {"name": name, "hidden": hidden, "passed": bool(p), "message": "" if p else MESSAGES.get(
                    (sid, name), "AssertionError: expected something else")}
                for (name, hidden), p in zip(tests, passes[q])]}
        subs.append(Submission(f"{sid}.ipynb", notebook=b"{}", sheet=sheet, collected=1000.0 + k))
        outcomes[f"{sid}.ipynb"] = {"status": "graded", "questions": questions, "errors": []}
    subs.append(Submission("s6.ipynb", notebook=b"{}", sheet=sheet))
    outcomes["s6.ipynb"] = {"status": "error", "note": "grading failed (the kernel died)"}
    write_gradebook(subs, outcomes, {"demo": sheet}, tmp_path / "grades")
    return tmp_path / "grades", autograders


def test_item_analysis_equals_a_hand_computation(small_class):
    g = analysis.load(*small_class)
    q = analysis.questions(g, "demo").set_index("question")
    assert q.loc["qa", "scored"] == 5 and q.loc["qw", "scored"] == 0  # the errored row counts nowhere
    assert q.loc["qa", "difficulty"] == pytest.approx((2 + 1 + 0 + 2 + 0) / 5 / 2)
    assert q.loc["qb", "difficulty"] == pytest.approx((4 + 2 + 2 + 0 + 4) / 5 / 4)
    # the rest of the total of qa is qb (the written question has no mark yet), and the other way round
    assert q.loc["qa", "discrimination"] == pytest.approx(pearson(SCORES["qa"], SCORES["qb"]))
    assert q.loc["qb", "discrimination"] == pytest.approx(pearson(SCORES["qb"], SCORES["qa"]))
    assert math.isnan(q.loc["qw", "discrimination"])

    t = analysis.tests(g, "demo").set_index("test")
    hand = {"ta_pub": 2 / 5, "ta_hid": 3 / 5, "ta_never": 1.0, "tb1": 1 / 5, "tb2": 2 / 5, "tb_always": 0.0,
            "tb_hid": 3 / 5}
    assert t["share_failing"].to_dict() == pytest.approx(hand)
    assert t.loc["ta_never", "flag"] == "no one passes" and t.loc["tb_always", "flag"] == "everyone passes"
    assert set(t["flag"][t["flag"] != ""].index) == {"ta_never", "tb_always"}
    assert t.loc["ta_hid", "messages"] == [("AssertionError: wrong sign", 2), ("TypeError: not a Var", 1)]
    assert t.loc["ta_hid", "hidden"] and not t.loc["ta_pub", "hidden"]

    hidden = analysis.hidden_only(g, "demo")
    assert set(zip(hidden["question"], hidden["submission"])) == {
        ("qa", "s1.ipynb"), ("qa", "s2.ipynb"), ("qa", "s4.ipynb"), ("qb", "s2.ipynb")}
    assert list(analysis.totals(g, "demo")["total"]) == [6, 3, 2, 2, 4]
    assert set(analysis.waiting(g, "demo")["submission"]) == {f"s{i}.ipynb" for i in range(1, 6)}


def test_marks_and_a_marking_status_column_from_a_marking_page_are_read(small_class):
    grades, autograders = small_class
    book = pd.read_csv(grades / "gradebook.csv", dtype=str, keep_default_na=False)
    book.loc[book["submission"] != "s6.ipynb", "qw"] = ["3", "1", "2", "manual", "2"]
    book["marking"] = ["done", "done", "in progress", "", "done", ""]
    book.to_csv(grades / "gradebook.csv", index=False)
    g = analysis.load(grades, autograders)
    q = analysis.questions(g, "demo").set_index("question")
    marked = [3, 1, 2, 2]                      # s1, s2, s3, s5
    rest = [6, 3, 2, 4]                        # their qa + qb
    assert q.loc["qw", "scored"] == 4 and q.loc["qw", "difficulty"] == pytest.approx(sum(marked) / 4 / 3)
    assert q.loc["qw", "discrimination"] == pytest.approx(pearson(marked, rest))
    waiting = analysis.waiting(g, "demo").set_index("submission")
    assert set(waiting.index) == {"s3.ipynb", "s4.ipynb"}  # s3: status not done; s4: qw has no mark
    assert waiting.loc["s4.ipynb", "unmarked"] == "qw"
    assert list(analysis.totals(g, "demo")["total"]) == [9, 4, 4, 2, 6]


def test_the_report_page_holds_every_table_and_an_inline_figure_per_part(small_class):
    grades, autograders = small_class
    page = report.render(analysis.load(grades, autograders))
    assert page.count("<img") == 3 and page.count("data:image/png;base64,") == 3  # questions, tests, totals
    assert "src='http" not in page and 'src="http' not in page and "<link" not in page
    for text in ("ta_never", "no one passes", "everyone passes", "AssertionError: wrong sign (×2)",
                 "Passed every public test, failed a hidden one", "Waiting for written marks (5 rows)"):
        assert text in page, text


def _chromium() -> str:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None)
    if path is None:
        pytest.skip("no Chromium installed (the kit's PDF export needs one: scripts/setup_pdf_tools.sh)")
    return path


def screenshot(page_file: Path, png: Path, *, width: int, height: int, selector: str | None = None) -> dict:
    """Open a local page in the system Chromium with the network blocked; screenshot it; report its images."""
    from playwright.sync_api import sync_playwright

    blocked = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.route("**/*", lambda route: (blocked.append(route.request.url), route.abort())
                       if route.request.url.startswith(("http://", "https://")) else route.continue_())
            page.goto(page_file.as_uri(), wait_until="load")
            images = page.evaluate("""() => Array.from(document.images).map(i => ({complete: i.complete,
                                       width: i.naturalWidth, height: i.naturalHeight}))""")
            target = page.locator(selector).first if selector else page
            target.screenshot(path=str(png))
        finally:
            browser.close()
    return {"images": images, "blocked": blocked}


def test_report_of_a_generated_class_opens_offline_in_chromium_with_every_figure(tmp_path):
    from helpers.assignments import classgen

    grades = tmp_path / "grades"
    classgen.write_graded(generated(), sheet1(), master_cells(), tmp_path / "submissions", grades)
    written = report.write(grades, sheet1_dist() / "autograder", pdf=True)
    assert [p.name for p in written] == ["report.html", "report.pdf"]
    assert (grades / "report.pdf").read_bytes().startswith(b"%PDF") and (grades / "report.pdf").stat().st_size > 20_000
    page = (grades / "report.html").read_text()
    expected = page.count("<img")
    assert expected == 3  # sheet 1: questions, tests, totals

    png = ROOT / "docs" / "report.png"
    seen = screenshot(grades / "report.html", png, width=900, height=1000)
    assert seen["blocked"] == []                 # nothing asked for the network
    assert len(seen["images"]) == expected
    assert all(i["complete"] and i["width"] > 0 and i["height"] > 0 for i in seen["images"]), seen["images"]
    assert 5_000 < png.stat().st_size < 150_000, png.stat().st_size

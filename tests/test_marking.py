"""make mark: rubrics in the masters, the marking store, the token-gated page in a real Chromium, CSV, the gradebook.

The class is generated (helpers.marking.demo): 12 graded submissions of sheet 3, through make grade's own
write_gradebook; the page is the real server in a subprocess, driven by Playwright on the system Chromium.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpers import master_format as mf
from helpers.assignments.assign import assign
from helpers.marking import cli, merge, transfer
from helpers.marking.demo import make_class

ROOT = Path(__file__).resolve().parent.parent
SHEET = "03_mlp_cnn_studies.ipynb"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(CHROMIUM is None, reason="no system Chromium (apt install chromium) to drive")


@pytest.fixture(scope="session")
def dist(tmp_path_factory) -> Path:
    """make assign's output for sheet 3 (one sheet keeps this fast)."""
    out = tmp_path_factory.mktemp("dist")
    assign([ROOT / "notebooks" / SHEET], out, extras=False, progress=None)
    return out


@pytest.fixture
def grades(tmp_path, dist) -> Path:
    out = tmp_path / "grades"
    make_class(dist, out, SHEET, 12)
    return out


class Server:
    """``python -m helpers.marking`` in a subprocess on a free port; the address and tokens it prints."""

    def __init__(self, grades: Path, dist: Path, tas: str = ""):
        self.args = [sys.executable, "-m", "helpers.marking", "--grades", str(grades), "--dist", str(dist),
                     "--port", str(_free_port())] + (["--tas", tas] if tas else [])
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.urls = {}
        for line in self.proc.stdout:
            found = re.match(r"\s+(\S+): (http://\S+/)\?token=(\S+)", line)
            if found:
                self.urls[found.group(1)] = (found.group(2), found.group(3))
            if line.startswith("Open your address"):
                break
        self.base = next(iter(self.urls.values()))[0]
        for _ in range(100):
            try:
                urllib.request.urlopen(self.base + "api/me", timeout=1)
            except urllib.error.HTTPError:
                return  # 401: it is up
            except OSError:
                time.sleep(0.05)

    def token(self, ta: str = "instructor") -> str:
        return self.urls[ta][1]

    def get(self, path: str, token: str | None = None) -> tuple[int, str]:
        request = urllib.request.Request(self.base + path.lstrip("/"),
                                         headers={"Authorization": f"Bearer {token}"} if token else {})
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def put(self, path: str, body: dict, token: str) -> tuple[int, dict]:
        request = urllib.request.Request(self.base + path.lstrip("/"), data=json.dumps(body).encode(), method="PUT",
                                         headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def kill(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(grades, dist):
    started = Server(grades, dist, tas="alice,bob")
    yield started
    if started.proc.poll() is None:
        started.kill()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no system Chromium (apt install chromium) to drive")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _page(browser, server, ta: str, question: str):
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    page = context.new_page()
    base, token = server.urls[ta]
    page.goto(f"{base}?token={token}")
    page.wait_for_selector("#items li")
    page.select_option("#questions", question)
    page.wait_for_function(f"document.querySelector('#qtitle').textContent.startsWith('{question}')")
    page.wait_for_selector("#code:not(:empty)")
    return page


def _answers(server, question, ta="alice") -> list[dict]:
    return json.loads(server.get(f"/api/questions/{question}/answers", server.token(ta))[1])


# --- rubrics in the masters ------------------------------------------------------------------------------------
def test_every_written_question_of_the_four_sheets_has_a_rubric_worth_its_points():
    for master in sorted((ROOT / "notebooks").glob("0*.ipynb")):
        for q in mf.questions(json.loads(master.read_text())["cells"]):
            if q.manual:
                assert q.rubric, f"{master.name}: {q.name} has no rubric"
                assert sum(i.points for i in q.rubric if i.points > 0) == q.points
                assert all(i.explanation for i in q.rubric)


def test_a_bad_rubric_is_refused_with_the_question_and_item_named():
    cell = {"cell_type": "raw", "source": "# BEGIN QUESTION\nname: qx\npoints: 2\nmanual: true\nrubric:\n"
                                            "- points: 1\n  explanation: fine\n- points: 0\n  explanation: nothing"}
    with pytest.raises(ValueError, match=r"qx: rubric item 2: points must be a non-zero"):
        mf.questions([cell])
    cell["source"] = "# BEGIN QUESTION\nname: qx\npoints: 2\nmanual: true\nrubric:\n- points: 1\n  explanation: one"
    with pytest.raises(ValueError, match="add up to 1 points, the question is worth 2"):
        mf.questions([cell])


def test_assign_carries_the_rubric_to_the_autograder_and_never_to_students(dist):
    data = json.loads((dist / "autograder" / "03_mlp_cnn_studies.json").read_text())
    ranking = next(q for q in data["questions"] if q["name"] == "q7_6_1")
    assert len(ranking["rubric"]) >= 3 and ranking["refers"] == [1, 2]
    student = (dist / "student" / SHEET).read_text()
    assert ranking["rubric"][0]["explanation"] not in student and '"rubric"' not in student


# --- the server ------------------------------------------------------------------------------------------------
def test_without_a_valid_token_every_request_gets_401_and_no_data(server):
    paths = ["/", "/api/questions", "/api/questions/q7_6_1", "/api/answers/1", "/static/app.js", "/mathjax/MathJax.js"]
    codes = [a["code"] for a in _answers(server, "q7_6_1")]
    for path in paths:
        for token in (None, "not-a-token"):
            status, body = server.get(path, token)
            assert status == 401, path
            assert "student0" not in body and not any(code in body for code in codes) and "q7_6_1" not in body
    assert server.get("/api/questions", server.token("alice"))[0] == 200
    refused = subprocess.run([sys.executable, "-m", "helpers.marking", "--host", "0.0.0.0"], cwd=ROOT,
                             capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert refused.returncode == 2 and "--tas" in refused.stderr


@needs_browser
def test_three_answers_marked_with_the_keyboard_only(server, browser):
    page = _page(browser, server, "alice", "q7_6_1")
    order = [a["id"] for a in _answers(server, "q7_6_1")]
    page.keyboard.press("1")
    page.wait_for_selector("#saved:has-text('saved')")
    page.keyboard.press("n")
    page.wait_for_function("document.querySelector('#count').textContent.includes('answer 2 of')")
    page.keyboard.press("2")
    page.keyboard.press("3")
    page.wait_for_function("document.querySelector('#score').textContent.startsWith('2 of')")
    page.keyboard.press("c")
    page.keyboard.type("Name the worst run as well.")
    page.keyboard.press("Escape")
    page.wait_for_function("document.querySelector('#saved').textContent.includes('saved')")
    page.keyboard.press("n")
    page.wait_for_function("document.querySelector('#count').textContent.includes('answer 3 of')")
    page.keyboard.press("0")
    page.wait_for_function("document.querySelector('#count').textContent.startsWith('3 of 12 marked')")
    page.keyboard.press("c")
    page.keyboard.type("worst")  # a comment given before is offered
    page.wait_for_selector("#suggest li:has-text('Name the worst run as well.')")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ROOT / "docs" / "marking.png"), full_page=True)
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#comment').value === 'Name the worst run as well.'")
    page.keyboard.press("Escape")
    page.wait_for_function("document.querySelector('#saved').textContent.includes('saved')")
    marks = {a["id"]: a for a in _answers(server, "q7_6_1")}
    assert [marks[i]["score"] for i in order[:3]] == [1, 2, 0] and not marks[order[3]]["marked"]
    third = lambda: json.loads(server.get(f"/api/answers/{order[2]}", server.token("bob"))[1])["mark"]  # noqa: E731
    for _ in range(50):  # the comment is saved when the box is left; wait for that save, not for an earlier one
        if third()["comment"] == "Name the worst run as well.":
            break
        time.sleep(0.1)
    assert third()["comment"] == "Name the worst run as well." and third()["score"] == 0
    second = json.loads(server.get(f"/api/answers/{order[1]}", server.token("bob"))[1])
    assert second["mark"]["comment"] == "Name the worst run as well." and second["mark"]["by"] == "alice"
    assert (ROOT / "docs" / "marking.png").stat().st_size < 150_000


@needs_browser
def test_editing_a_rubric_item_rescores_every_answer_that_has_it(server, browser):
    token = server.token("alice")
    question = json.loads(server.get("/api/questions/q7_6_1", token)[1])
    first = question["items"][0]["id"]
    ids = [a["id"] for a in question["answers"]]
    for answer in ids[:5]:
        assert server.put(f"/api/answers/{answer}/mark", {"items": [first], "comment": "", "version": 0}, token)[0] == 200
    server.put(f"/api/answers/{ids[5]}/mark", {"items": [question["items"][1]["id"]], "comment": "", "version": 0}, token)
    page = _page(browser, server, "alice", "q7_6_1")
    answers = iter(["0.5", "Reports the best two runs of each baseline (half of it)."])
    page.on("dialog", lambda dialog: dialog.accept(next(answers)))
    page.click("#items li:first-child button.edit")
    page.wait_for_selector("#items li:first-child:has-text('(half of it)')")
    page.wait_for_selector(f"#strip a[href$='/{ids[0]}'][title='score 0.5']")  # the page shows the new scores
    scores = {a["id"]: a["score"] for a in _answers(server, "q7_6_1")}
    assert [scores[i] for i in ids[:6]] == [0.5] * 5 + [1]
    assert "(half of it)" in page.inner_text("#items li:first-child")
    page.click("#additem summary")  # a TA adds an item; --export-rubrics writes it for the master
    page.fill("#newpoints", "-0.5")
    page.fill("#newexpl", "States a ranking the table does not show.")
    page.click("#addbtn")
    page.wait_for_selector("#items li:nth-child(4):has-text('States a ranking')")
    page.keyboard.press("4")
    page.wait_for_selector("#saved:has-text('saved')")
    added = json.loads(server.get("/api/questions/q7_6_1", token)[1])["items"][3]
    assert added["points"] == -0.5 and added["origin"] == "alice"


@needs_browser
def test_two_tas_on_one_answer_the_second_is_shown_the_first_mark(server, browser):
    alice = _page(browser, server, "alice", "q7_6_1")
    bob = _page(browser, server, "bob", "q7_6_1")
    assert alice.inner_text("#code") == bob.inner_text("#code")
    alice.keyboard.press("1")
    alice.wait_for_selector("#saved:has-text('saved')")
    bob.keyboard.press("2")   # Bob's page still shows the answer unmarked
    bob.wait_for_selector("#conflict:not([hidden])")
    text = bob.inner_text("#conflict")
    assert "alice marked this answer meanwhile" in text and "score 1" in text and "not saved" in text
    answer = json.loads(server.get(f"/api/answers/{_answers(server, 'q7_6_1')[0]['id']}", server.token("bob"))[1])
    assert answer["mark"]["by"] == "alice" and answer["mark"]["score"] == 1


def test_an_acknowledged_mark_survives_kill_9_and_a_restart(server):
    token = server.token("alice")
    ids = [a["id"] for a in _answers(server, "q6_2_1")]
    items = [i["id"] for i in json.loads(server.get("/api/questions/q6_2_1", token)[1])["items"]]
    acked = {}
    for n, answer in enumerate(ids):
        status, mark = server.put(f"/api/answers/{answer}/mark", {"items": items[: n % 3], "comment": f"c{n}", "version": 0}, token)
        assert status == 200
        acked[answer] = mark["score"]
    server.kill(signal.SIGKILL)
    server.start()
    assert {a["id"]: a["score"] for a in _answers(server, "q6_2_1")} == acked
    assert server.token("alice") == token  # tokens are kept in the store across restarts


# --- regrades, CSV, gradebook (in process) ---------------------------------------------------------------------
def _mark_all(store, score_items=lambda n: n % 2):
    for answer in store.table():
        items = [i["id"] for i in store.rubrics()[answer["question"]]]
        store.set_mark(answer["answer"], items[: score_items(answer["answer"])], "", 0, "tester")


def test_a_regrade_keeps_marks_of_unchanged_answers_and_reopens_changed_ones(grades, dist):
    store, _ = cli.open_store(grades, dist)
    _mark_all(store)
    entry = json.loads((grades / "gradebook.json").read_text())[0]
    nb = json.loads((grades / entry["notebook"]).read_text())
    changed = next(c for c in nb["cells"] if "otter_answer_cell" in c["metadata"].get("tags", [])
                   and c["cell_type"] == "markdown")
    changed["source"] = "A corrected answer, handed in late."
    (grades / entry["notebook"]).write_text(json.dumps(nb))
    store.close()
    store, counts = cli.open_store(grades, dist)
    assert counts["changed"] == 1 and counts["unchanged"] == 12 * 11 - 1
    unmarked = [a for a in store.table() if not a["marked"]]
    assert [(a["submission"], a["text"]) for a in unmarked] == [(entry["submission"], "A corrected answer, handed in late.")]
    assert any(e["kind"] == "answer changed" for e in store.audit(unmarked[0]["answer"]))
    store.close()


def test_csv_round_trip_and_a_bad_row_leaves_the_store_unchanged(grades, dist, tmp_path):
    store, _ = cli.open_store(grades, dist)
    out = tmp_path / "marks.csv"
    assert transfer.export_csv(store, out) == 12 * 11
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert set(rows[0]) == set(transfer.COLUMNS) and all(r["score"] == "" for r in rows)
    for r in rows[:4]:
        r["items"], r["comment"] = "1;2", "good"
    edited = tmp_path / "edited.csv"
    _write(edited, rows)
    assert transfer.import_csv(store, edited) == 4
    marked = [a for a in store.table() if a["marked"]]
    assert len(marked) == 4 and all(a["comment"] == "good" and len(a["items"]) == 2 for a in marked)
    before = store.table()
    for bad, message in ((dict(code="ZZZZZZ"), "row 7 .*no submission with code 'ZZZZZZ'"),
                         (dict(score="9", items="1"), "row 7 .*outside 0\\.\\.\\d"),
                         (dict(question="q_nowhere"), "row 7 .*no written question")):
        broken = [dict(r) for r in rows]
        broken[4]["items"] = "1"
        broken[5].update(bad)
        _write(edited, broken)
        with pytest.raises(transfer.ImportRefused, match=message):
            transfer.import_csv(store, edited)
        assert store.table() == before
    store.close()


def _write(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=transfer.COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def test_merged_gradebook_totals_are_code_plus_rubric_scores_and_feedback_names_items(grades, dist):
    store, _ = cli.open_store(grades, dist)
    _mark_all(store, score_items=lambda n: n % 3)
    last = store.table()[-1]
    store.reopen(last["answer"], "tester")
    kinds = [(e["kind"], e["who"]) for e in store.audit(last["answer"])]
    assert kinds == [("mark", "tester"), ("reopen", "tester")]
    assert store.audit(last["answer"])[0]["after"]["score"] == last["score"]  # the audit log keeps the old mark
    merge.merge(grades, store, cli.sheet_points(dist))
    rows = list(csv.DictReader(io.StringIO((grades / "gradebook.csv").read_text())))
    table = store.table()
    for row in rows:
        written = [a for a in table if a["submission"] == row["submission"]]
        for a in written:
            assert row[a["question"]] == ("unmarked" if not a["marked"] else f"{a['score']:g}")
        if row["submission"] == last["submission"]:
            assert row["total"] == row["written"] == "" and row["marking"] == f"1 unmarked: {last['question']}"
            continue
        assert row["marking"] == "complete" and row["total possible"] == "44"
        assert float(row["written"]) == pytest.approx(sum(a["score"] for a in written))
        assert float(row["total"]) == pytest.approx(float(row["autograded"]) + sum(a["score"] for a in written))
    assert list(rows[0])[-2:] == ["note", "sandbox"]
    some = next(a for a in table if a["items"])
    entry = next(e for e in json.loads((grades / "gradebook.json").read_text()) if e["submission"] == some["submission"])
    text = (grades / "feedback" / f"{Path(entry['notebook']).stem}.md").read_text()
    assert some["items"][0]["explanation"] in text and "failed" in text or "All tests passed" in text
    assert (grades / "feedback" / f"{Path(entry['notebook']).stem}.html").read_text().startswith("<!doctype html>")
    rubric_text = transfer.export_rubrics(store)
    assert "# q7_6_1\nrubric:\n- points: 1\n" in rubric_text
    store.close()


def test_an_answer_is_shown_as_written_and_nothing_of_the_student_runs():
    from helpers.marking import render
    shown = render.markdown("Loss $a_i * b_j$ and <script>alert(1)</script> ![x](attachment:p.png) ![y](http://e/x.png)"
                            "\n\n$$\\sum_k w_{kj}$$", {"p.png": {"image/png": "AAAA"}})
    assert "$a_i * b_j$" in shown and "$$\\sum_k w_{kj}$$" in shown   # math left whole for MathJax
    assert "<script>" not in shown and "&lt;script&gt;" in shown
    assert 'src="data:image/png;base64,AAAA"' in shown and "http://e/x.png" not in shown
    table = render.outputs([{"output_type": "display_data", "data": {"text/html": "<table><script>x()</script></table>"}}])
    assert table.startswith('<iframe class="out" sandbox=""') and "<script>" not in table


def test_the_masters_rubric_is_reloaded_until_someone_marks_with_it(grades, dist):
    from helpers.marking.answers import graded_answers, written_questions
    store, _ = cli.open_store(grades, dist)
    questions = written_questions(dist)
    changed = dict(questions)
    q = questions["q6_2_2"]
    changed["q6_2_2"] = type(q)(**{**q.__dict__, "rubric": ({"points": 2.0, "explanation": "All of it.", "note": ""},)})
    store.sync(changed, graded_answers(grades, changed))
    assert [i["explanation"] for i in store.rubrics()["q6_2_2"]] == ["All of it."]
    answer = next(a for a in store.table() if a["question"] == "q6_2_2")
    store.set_mark(answer["answer"], [store.rubrics()["q6_2_2"][0]["id"]], "", 0, "tester")
    store.sync(questions, graded_answers(grades, questions))  # marked with it: the store's rubric stays
    assert [i["explanation"] for i in store.rubrics()["q6_2_2"]] == ["All of it."]
    store.close()

"""``make similarity``: answers that look alike, per question, ranked, with the alike parts marked side by side.

Read from a grades folder (``gradebook.json`` names each graded notebook), the student versions (``dist/student``,
whose answer cells are the *starter code*) and the masters (``notebooks/``, whose solutions are what a leaked
solution looks like).

- **Code answers** are compared with copydetect (MOSS-style winnowing over Pygments tokens, with variable,
  function and string tokens replaced by one letter each, so renaming hides nothing). The starter code's
  fingerprints are removed as boilerplate, so two students who leave the question as given share nothing.
  A pair's score is the mean of copydetect's two similarities (the share of each answer's tokens that the
  other one has too). To stay fast with hundreds of submissions, copydetect compares in full only the pairs
  with the most fingerprints in common (``CANDIDATES`` per question; the others share too little to rank).
- **Written answers** are compared by word 3-gram Jaccard (shared 3-grams / all 3-grams of the two), after
  removing the 3-grams of the given prompt text.
- An answer that matches the **master's solution** is flagged: the solution has leaked.

A high score is a reason to look at the two answers, not a verdict: short answers, a formula the course gives,
or a hint in the sheet can make honest answers alike.
"""
from __future__ import annotations

import html
import io
import json
import re
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np

from .. import store
from .answers import answer_text, master_solutions
from .grade import DETAILS, GRADED, TAMPERED, load_sheets

NOISE = 25           # copydetect's k: tokens (characters of filtered code) per fingerprint (its default noise_t)
WINDOW = 1           # winnowing window (guarantee_t - noise_t + 1 with copydetect's defaults)
NGRAM = 3            # words per shingle of a written answer
CANDIDATES = 60      # code pairs per question compared in full by copydetect
SHOWN = 5            # pairs per question shown side by side
LISTED = 15          # pairs per question in the ranking table
LEAK = 0.6           # an answer this alike to the master's solution is flagged as a leaked solution
VERDICT = ("A high score is a reason to look at the two answers, not a verdict: short answers, formulas and code "
           "the sheet gives, and hints in the text make honest answers alike. Read both before you decide anything.")


@dataclass
class Pair:
    """Two submissions' answers to one question and how alike they are."""

    a: str
    b: str
    score: float
    detail: str                      # "82% / 79%" for code (each side's share), "Jaccard" for text
    marked: tuple[str, str] = ("", "")  # the two answers as HTML, alike parts in <mark>


@dataclass
class QuestionResult:
    """One question's ranking, and the answers that match the master's solution."""

    question: str
    kind: str                          # "code" or "written"
    answered: int
    pairs: list[Pair] = field(default_factory=list)
    leaks: list[tuple[str, float]] = field(default_factory=list)


# --- code: copydetect ------------------------------------------------------------------------------
@dataclass
class _Print:
    """What copydetect's ``compare_files`` reads of a ``CodeFingerprint``, built from code tokenized elsewhere."""

    raw_code: str
    filtered_code: str
    offsets: np.ndarray
    hashes: set
    hash_idx: dict
    k: int
    token_coverage: float


def tokenized(texts: list[str]) -> list[tuple[str, np.ndarray]]:
    """copydetect's filtered form of each code text (names as V/F/O, strings as S) and its offsets."""
    from copydetect.utils import filter_code

    return [filter_code(text, "answer.py", "python") for text in texts]


def tokenize_all(texts: set[str]) -> dict[str, tuple[str, np.ndarray]]:
    """Tokenize each distinct code text once (Pygments is the slow part; many answers are the same text).

    Tokenizing in worker processes was slower here (spawning, sending the texts) than this, on 300 submissions.
    """
    unique = sorted(texts)
    return dict(zip(unique, tokenized(unique)))


def _fingerprint(text: str, boilerplate: np.ndarray | None = None,
                 tokens: dict[str, tuple[str, np.ndarray]] | None = None, window: int = WINDOW) -> _Print:
    from copydetect.utils import get_document_fingerprints, get_token_coverage

    filtered, offsets = tokens[text] if tokens and text in tokens else tokenized([text])[0]
    hashes, idx = get_document_fingerprints(filtered, NOISE, window, boilerplate)
    return _Print(text, filtered, offsets, hashes, idx, NOISE, get_token_coverage(idx, NOISE, len(filtered)))


def _compare(fa, fb) -> tuple[float, str, tuple[str, str]]:
    from copydetect import compare_files
    from copydetect.utils import highlight_overlap

    _, (sa, sb), (slices_a, slices_b) = compare_files(fa, fb)
    marked = []
    for fp, slices in ((fa, slices_a), (fb, slices_b)):
        if len(slices) and np.size(slices[0]):
            text, _ = highlight_overlap(fp.raw_code, np.asarray(slices), "<mark>", "</mark>", escape_html=True)
        else:
            text = html.escape(fp.raw_code)
        marked.append(text)
    return float((sa + sb) / 2), f"{sa:.0%} / {sb:.0%}", (marked[0], marked[1])


def code_pairs(answers: dict[str, str], starter: str, solution: str | None,
               tokens: dict[str, tuple[str, np.ndarray]] | None = None) -> QuestionResult:
    """Rank every pair of code answers by copydetect's similarity, the starter code removed as boilerplate."""
    # every k-gram of the starter code is boilerplate (window 1, as copydetect does for its boilerplate files)
    boiler = _fingerprint(starter, tokens=tokens, window=1).hashes if starter.strip() else set()
    boilerplate = np.array(sorted(boiler)) if boiler else None
    distinct = {text: _fingerprint(text, boilerplate, tokens) for text in set(answers.values())}
    prints = {sid: distinct[text] for sid, text in answers.items()}
    prints = {sid: fp for sid, fp in prints.items() if fp.hashes}   # left as given: nothing of their own
    result = QuestionResult("", "code", len(prints))
    quick = []
    for a, b in combinations(sorted(prints), 2):
        shared = len(prints[a].hashes & prints[b].hashes)
        if shared:
            quick.append((shared / min(len(prints[a].hashes), len(prints[b].hashes)), a, b))
    quick.sort(reverse=True)
    for _, a, b in quick[:CANDIDATES]:
        score, detail, marked = _compare(prints[a], prints[b])
        result.pairs.append(Pair(a, b, score, detail, marked))
    result.pairs.sort(key=lambda p: -p.score)
    if solution and solution.strip():
        from copydetect import compare_files

        master = _fingerprint(solution, boilerplate, tokens)
        for sid, fp in prints.items():
            if fp.hashes & master.hashes:
                score = float(np.mean(compare_files(fp, master)[1]))
                if score >= LEAK:
                    result.leaks.append((sid, score))
    result.leaks.sort(key=lambda x: -x[1])
    return result


# --- written answers: word n-gram Jaccard -----------------------------------------------------------
def words(text: str) -> list[str]:
    """The words of a written answer, lower-cased (markdown and LaTeX punctuation dropped)."""
    return re.findall(r"[a-z0-9]+", text.lower())


def shingles(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    """The word n-grams of a text."""
    w = words(text)
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


def jaccard(a: set, b: set) -> float:
    """|a ∩ b| / |a ∪ b| (0 for two empty sets)."""
    return len(a & b) / len(a | b) if a or b else 0.0


def _mark_words(text: str, shared: set[tuple[str, ...]], n: int = NGRAM) -> str:
    """The text as HTML with every word that belongs to a shared n-gram in <mark>."""
    tokens = list(re.finditer(r"[A-Za-z0-9]+", text))
    lowered = [t.group(0).lower() for t in tokens]
    hit = [False] * len(tokens)
    for i in range(len(tokens) - n + 1):
        if tuple(lowered[i:i + n]) in shared:
            for j in range(i, i + n):
                hit[j] = True
    out, pos = [], 0
    for token, marked in zip(tokens, hit):
        out.append(html.escape(text[pos:token.start()]))
        word = html.escape(token.group(0))
        out.append(f"<mark>{word}</mark>" if marked else word)
        pos = token.end()
    out.append(html.escape(text[pos:]))
    return "".join(out).replace("</mark> <mark>", " ")


def text_pairs(answers: dict[str, str], starter: str, solution: str | None) -> QuestionResult:
    """Rank every pair of written answers by word 3-gram Jaccard, the prompt's 3-grams removed."""
    given = shingles(starter)
    sets = {sid: shingles(text) - given for sid, text in answers.items()}
    sets = {sid: s for sid, s in sets.items() if s}
    result = QuestionResult("", "written", len(sets))
    for a, b in combinations(sorted(sets), 2):
        shared = sets[a] & sets[b]
        if shared:
            score = len(shared) / len(sets[a] | sets[b])
            result.pairs.append(Pair(a, b, score, f"{len(shared)} shared 3-grams"))
    result.pairs.sort(key=lambda p: -p.score)
    del result.pairs[max(CANDIDATES, LISTED):]
    for p in result.pairs[:SHOWN]:
        shared = sets[p.a] & sets[p.b]
        p.marked = (_mark_words(answers[p.a], shared), _mark_words(answers[p.b], shared))
    if solution and solution.strip():
        master = shingles(solution) - given
        result.leaks = sorted(((sid, jaccard(s, master)) for sid, s in sets.items() if jaccard(s, master) >= LEAK),
                              key=lambda x: -x[1])
    return result


# --- a grades folder ------------------------------------------------------------------------------
def compare_sheet(notebooks: dict[str, dict], student: dict, master_cells: list[dict],
                  questions: tuple[dict, ...]) -> list[QuestionResult]:
    """Every question of one sheet: its pairs ranked, and the answers matching the master's solution."""
    texts = {sid: answer_text(nb) for sid, nb in notebooks.items()}
    starter = answer_text(student)
    solutions = master_solutions(master_cells)
    code = {q["name"] for q in questions if not q["manual"]}
    tokens = tokenize_all({t[name] for t in [*texts.values(), starter, solutions] for name in code
                           if t.get(name, "").strip()})
    results = []
    for q in questions:
        name = q["name"]
        answers = {sid: t[name] for sid, t in texts.items() if t.get(name, "").strip()}
        if q["manual"]:
            result = text_pairs(answers, starter.get(name, ""), solutions.get(name))
        else:
            result = code_pairs(answers, starter.get(name, ""), solutions.get(name), tokens)
        result.question = name
        results.append(result)
    return results


def similarity(grades: Path, autograders: Path, students: Path, masters: Path) -> dict[str, list[QuestionResult]]:
    """Each sheet's questions compared, from a grades folder (see the module's notes)."""
    grades = Path(grades)
    details = store.read_json(grades / DETAILS)
    if not isinstance(details, list):
        raise FileNotFoundError(f"No {grades / DETAILS}: run `make grade SUBMISSIONS=<folder>` first.")
    sheets = load_sheets(autograders)
    out = {}
    for sheet in sheets.values():
        rows = [d for d in details if d["row"].get("sheet") == sheet.assignment and d.get("notebook")
                and d["row"].get("status") in (GRADED, TAMPERED, "timeout", "error")]
        if not rows:
            continue
        for path, what in ((Path(students) / sheet.notebook, "student version"), (Path(masters) / sheet.notebook, "master")):
            if not path.is_file():
                raise FileNotFoundError(f"No {what} {path}: run `make assign` (student versions are in dist/student/, "
                                        "masters in notebooks/).")
        notebooks = {d["submission"]: json.loads((grades / d["notebook"]).read_text(encoding="utf-8")) for d in rows}
        student = json.loads((Path(students) / sheet.notebook).read_text(encoding="utf-8"))
        master_cells = json.loads((Path(masters) / sheet.notebook).read_text(encoding="utf-8"))["cells"]
        out[sheet.assignment] = compare_sheet(notebooks, student, master_cells, sheet.questions)
    return out


CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; font-size: 14px; color: #222; }
.verdict { border-left: 4px solid #E69F00; background: #fff7e6; padding: .6em 1em; }
table { border-collapse: collapse; margin: .5em 0; } td, th { border: 1px solid #ccc; padding: 2px 8px; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 10px; margin: .5em 0 1.5em; }
.pair pre { background: #f7f7f7; padding: 8px; overflow-x: auto; font-size: 12px; white-space: pre-wrap; margin: 0; }
.pair h4 { margin: 0 0 4px; font-size: 13px; } mark { background: #ffd27f; } .leak { color: #D55E00; font-weight: 600; }
"""


def render(results: dict[str, list[QuestionResult]], students: dict[str, str] | None = None) -> str:
    """The similarity page: per sheet and question, the ranking, the top pairs side by side, leaked solutions.

    ``students`` names each submission's student (from the roster step), where known.
    """
    def who(sid: str) -> str:
        return html.escape(f"{sid} ({students[sid]})" if students and students.get(sid) else sid)

    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Similarity</title><style>{CSS}</style>"
             f"</head><body><h1>Answers that look alike</h1><p class='verdict'>{html.escape(VERDICT)}</p>",
             f"<p>Code: copydetect (winnowing over tokens, k = {NOISE}), the starter code removed; score = mean of "
             f"the two sides' shares. Written answers: word {NGRAM}-gram Jaccard, the prompt removed. "
             f"Matches with the master's solution at ≥ {LEAK:.0%} are flagged as a leaked solution.</p>"]
    for sheet, questions in results.items():
        parts.append(f"<h2>{html.escape(sheet)}</h2>")
        for r in questions:
            leaked = {sid for sid, _ in r.leaks}
            parts.append(f"<h3 id='{html.escape(sheet)}-{html.escape(r.question)}'>{html.escape(r.question)} "
                         f"({r.kind}, {r.answered} answers compared)</h3>")
            if r.leaks:
                parts.append("<p class='leak'>Matches the master's solution (leaked solution?): " + ", ".join(
                    f"{who(sid)} {score:.0%}" for sid, score in r.leaks) + "</p>")
            if not r.pairs:
                parts.append("<p>No two answers share anything beyond the given text.</p>")
                continue
            rows = "".join(f"<tr><td>{i}</td><td>{who(p.a)}</td><td>{who(p.b)}</td>"
                           f"<td>{p.score:.2f}</td><td>{html.escape(p.detail)}</td>"
                           f"<td>{'leaked solution' if p.a in leaked and p.b in leaked else ''}</td></tr>"
                           for i, p in enumerate(r.pairs[:LISTED], 1))
            parts.append("<table><tr><th>#</th><th>submission</th><th>submission</th><th>score</th><th>detail</th>"
                         f"<th>note</th></tr>{rows}</table>")
            for i, p in enumerate(r.pairs[:SHOWN], 1):
                if not (p.marked[0] or p.marked[1]):
                    continue
                parts.append(f"<div class='pair'><div><h4>#{i} {who(p.a)} — score {p.score:.2f}</h4>"
                             f"<pre>{p.marked[0]}</pre></div><div><h4>{who(p.b)}</h4>"
                             f"<pre>{p.marked[1]}</pre></div></div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def to_json(results: dict[str, list[QuestionResult]]) -> list[dict]:
    """The rankings as plain data (for scripts): sheet, question, kind, pairs (a, b, score), leaks."""
    return [{"sheet": sheet, "question": r.question, "kind": r.kind, "answered": r.answered,
             "pairs": [{"a": p.a, "b": p.b, "score": round(p.score, 4)} for p in r.pairs[:LISTED]],
             "leaks": [{"submission": s, "score": round(x, 4)} for s, x in r.leaks]}
            for sheet, questions in results.items() for r in questions]


def write(grades: Path, autograders: Path, students: Path, masters: Path) -> Path:
    """Write ``similarity.html`` and ``similarity.json`` into the grades folder; return the page."""
    results = similarity(grades, autograders, students, masters)
    store.write_json(Path(grades) / "similarity.json", to_json(results), indent=1)
    found = store.read_json(Path(grades) / "roster.json")  # make grade ROSTER=...: who handed in which file
    names = {}
    if isinstance(found, dict):
        people = {p["id"]: p.get("name", "") for p in found.get("roster", [])}
        names = {r["submission"]: f"{r['student']}, {people.get(r['student'], '')}".rstrip(", ")
                 for r in found.get("rows", []) if r.get("student")}
    return store.write_text(Path(grades) / "similarity.html", render(results, names))

"""A generated class: many submissions of one sheet, with known copies, and made-up grades for them.

For the report, roster and similarity tests and benchmarks (``tests/test_similarity.py``, ``benchmarks/report.py``):
each student's notebook is the student version with, per question, one of

- nothing (the starter code left as it is),
- an answer of their own: the starter code with a generated body where it says ``raise NotImplementedError``
  (code), or generated sentences (written answers),
- the master's solution, pasted (``samples.pasted``) verbatim, with renamed variables, reordered lines or
  added comments (a leaked solution),
- a planted copy of another student's answer (verbatim with comments, renamed variables, or reordered lines).

The grades are made up too (``outcomes``): real test names from the master, passes drawn at random, so a report
has something to show without running a kernel.
"""
from __future__ import annotations

import ast
import copy
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import master_format as mf
from .answers import ANSWER_TAG, master_solutions, question_of, source
from .grade import GRADED, Sheet, Submission, write_gradebook
from .samples import pasted

WORDS = ("acc", "grad", "delta", "layer", "out", "val", "step", "res", "tmp", "node", "w", "total", "item", "cur",
         "prev", "acts", "buf", "part", "err", "scale", "mean", "var", "row", "col", "k", "z", "h", "g", "u")
PROSE = ("the", "loss", "network", "gradient", "falls", "because", "each", "layer", "rate", "weights", "larger",
         "smaller", "training", "validation", "points", "data", "fits", "over", "under", "curve", "epoch", "steps",
         "noise", "seed", "model", "width", "depth", "units", "output", "error", "signal", "flows", "back",
         "through", "chain", "rule", "which", "shows", "that", "when", "more", "less", "stays", "close", "high",
         "low", "so", "it", "a", "of", "in", "and", "not", "but", "after", "before", "until", "while")
STARTER_STUB = re.compile(r"^(?P<indent>[ \t]*)(raise NotImplementedError\(.*\)|\.\.\.)\s*$", re.MULTILINE)


def _name(rng: random.Random) -> str:
    return f"{rng.choice(WORDS)}{rng.randrange(10) if rng.random() < 0.5 else ''}"


def _expr(rng: random.Random, names: list[str], depth: int = 0) -> str:
    roll = rng.random()
    if depth > 1 or roll < 0.3:
        return rng.choice(names) if names and rng.random() < 0.7 else str(rng.choice([0, 1, 2, 0.5, 3, 10, -1]))
    if roll < 0.55:
        return f"{_expr(rng, names, depth + 1)} {rng.choice('+-*/')} {_expr(rng, names, depth + 1)}"
    if roll < 0.75:
        fn = rng.choice(["sum", "max", "min", "len", "abs", "np.tanh", "np.exp", "np.sqrt", "float", "np.mean"])
        return f"{fn}({_expr(rng, names, depth + 1)})"
    if roll < 0.9:
        return f"[{_expr(rng, names, depth + 1)} for {rng.choice('ijk')} in range({rng.randrange(2, 9)})]"
    return f"{rng.choice(names) if names else 'x'}[{rng.randrange(4)}]"


def own_body(indent: str, rng: random.Random, args: list[str]) -> str:
    """A generated function body, different for each student: plain statements, a loop, an if, a return."""
    names, lines = list(args) or ["x"], []
    for _ in range(rng.randrange(5, 11)):
        kind, target = rng.random(), _name(rng)
        if kind < 0.6:
            lines.append(f"{indent}{target} = {_expr(rng, names)}")
        elif kind < 0.8:
            lines.append(f"{indent}for {rng.choice('ijk')} in range({rng.randrange(1, 6)}):")
            lines.append(f"{indent}    {target} = {_expr(rng, names)}")
        else:
            lines.append(f"{indent}if {rng.choice(names)} {rng.choice(['>', '<', '=='])} {rng.randrange(5)}:")
            lines.append(f"{indent}    {target} = {_expr(rng, names)}")
        names.append(target)
    lines.append(f"{indent}return {_expr(rng, names)}")
    return "\n".join(lines)


def own_code(starter: str, rng: random.Random) -> str:
    """The starter code with a student's own generated body wherever it says ``raise NotImplementedError``."""
    def body(match: re.Match) -> str:
        before = starter[:match.start()]
        header = re.findall(r"def \w+\(([^)]*)\)", before)
        args = [a.split("=")[0].strip() for a in header[-1].split(",")] if header else []
        return own_body(match.group("indent"), rng, [a for a in args if a and a not in ("self", "*")])
    return STARTER_STUB.sub(body, starter)


def own_prose(rng: random.Random, sentences: int = 4) -> str:
    """A written answer of the student's own: generated sentences."""
    return " ".join(" ".join(rng.choice(PROSE) for _ in range(rng.randrange(8, 16))).capitalize() + "."
                    for _ in range(sentences))


def _bound_names(code: str) -> list[str]:
    """Names a piece of code binds (arguments, assignment and loop targets), not functions or classes."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    found = {a.arg for a in ast.walk(tree) if isinstance(a, ast.arg)}
    found |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return sorted(found - {"self", "cls"})


def renamed(code: str, rng: random.Random) -> str:
    """The code with its variables renamed, as a student hiding a copy would."""
    mapping = {name: f"{rng.choice(WORDS)}_{name[:2]}{rng.randrange(100)}" for name in _bound_names(code)}
    if not mapping:
        return code
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(mapping, key=len, reverse=True))) + r")\b")
    return pattern.sub(lambda m: mapping[m.group(1)], code)


def commented(code: str, rng: random.Random) -> str:
    """The code with comment lines added, each indented as the line below it."""
    lines, out = code.splitlines(), []
    for line in lines:
        if line.strip() and rng.random() < 0.35:
            indent = line[:len(line) - len(line.lstrip())]
            out.append(f"{indent}# {' '.join(rng.choice(PROSE) for _ in range(rng.randrange(3, 7)))}")
        out.append(line)
    return "\n".join(out)


def reordered(code: str, rng: random.Random) -> str:
    """The code with some pairs of neighbouring simple statements (same indentation) swapped."""
    lines = code.splitlines()
    simple = [i for i in range(len(lines) - 1) if _simple(lines[i]) and _simple(lines[i + 1])
              and _indent(lines[i]) == _indent(lines[i + 1])]
    for i in rng.sample(simple, k=min(len(simple), 2)):
        if _simple(lines[i]) and _simple(lines[i + 1]) and _indent(lines[i]) == _indent(lines[i + 1]):
            lines[i], lines[i + 1] = lines[i + 1], lines[i]
    return "\n".join(lines)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _simple(line: str) -> bool:
    text = line.strip()
    return bool(text) and not text.endswith((":", "(", "[", ",", "\\")) and not text.startswith(
        ("def ", "class ", "return", "for ", "if ", "elif", "else", "while", "#", '"""', "@", ")", "]"))


DISGUISES = {"verbatim": lambda code, rng: code, "renamed": renamed, "reordered": reordered, "commented": commented}


@dataclass
class GeneratedClass:
    """Notebooks by file name, and what was planted in them."""

    notebooks: dict[str, dict] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)           # file name -> student id
    copies: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)  # question -> (file, file, how)
    leaked: dict[str, list[str]] = field(default_factory=dict)  # question -> files holding the master's solution
    untouched: dict[str, list[str]] = field(default_factory=dict)  # question -> files that left it as given
    kinds: dict[tuple[str, str], str] = field(default_factory=dict)  # (file, question) -> own/master/copy/untouched


def _set_answer(nb: dict, qname: str, texts: list[str]) -> None:
    """Put ``texts`` into question ``qname``'s answer cells, in order."""
    cells, current, k = nb["cells"], None, 0
    for cell in cells:
        question = question_of(cell)
        if question is not None:
            current = question["name"]
        if current == qname and ANSWER_TAG in (cell.get("metadata") or {}).get("tags", []):
            cell["source"] = texts[k] if k < len(texts) else ""
            k += 1


def _answer_cells(nb: dict, qname: str) -> list[str]:
    current, out = None, []
    for cell in nb["cells"]:
        question = question_of(cell)
        if question is not None:
            current = question["name"]
        if current == qname and ANSWER_TAG in (cell.get("metadata") or {}).get("tags", []):
            out.append(source(cell))
    return out


def with_student_id(nb: dict, sid: str) -> dict:
    """The notebook with ``STUDENT_ID = "<sid>"`` filled in (the line the setup cell carries; added if absent)."""
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        if cell.get("cell_type") == "code":
            text = source(cell)
            if re.search(r"^STUDENT_ID\s*=", text, re.MULTILINE):
                cell["source"] = re.sub(r"^STUDENT_ID\s*=.*$", f'STUDENT_ID = "{sid}"', text, count=1, flags=re.MULTILINE)
            else:
                cell["source"] = f'STUDENT_ID = "{sid}"\n' + text
            return nb
    return nb


def generate(student: dict, master_cells: list[dict], n: int, *, seed: int = 0, planted: str | None = None,
             planted_written: str | None = None, leak_share: float = 0.15) -> GeneratedClass:
    """``n`` submissions of one sheet (see the module's notes); three copy pairs planted in question ``planted``.

    In ``planted`` no one pastes the master, so the planted pairs are the only copies there; ``planted_written``
    gets one copied pair of written answers. Files are named ``<student id>_<sheet stem>.ipynb``.
    """
    rng = random.Random(seed)
    solutions = master_solutions(master_cells)
    questions = [q for q in mf.questions(master_cells)]
    out = GeneratedClass()
    files = [f"s{1000001 + i}" for i in range(n)]
    for i, sid in enumerate(files):
        out.ids[sid] = sid
    notebooks = {sid: with_student_id(student, sid) for sid in files}
    for q in questions:
        starter = _answer_cells(student, q.name)
        if not starter:
            continue
        for sid in files:
            nb = notebooks[sid]
            roll = rng.random()
            if roll < 0.15:
                out.untouched.setdefault(q.name, []).append(sid)
                out.kinds[(sid, q.name)] = "untouched"
                continue
            if q.name != planted and roll < 0.15 + leak_share:
                how = rng.choice(list(DISGUISES))
                if q.manual:
                    texts = [solutions[q.name]]
                else:
                    texts = _answer_cells(pasted(nb, master_cells, q.name), q.name)
                    texts = [DISGUISES[how](t, rng) for t in texts]
                _set_answer(nb, q.name, texts)
                out.leaked.setdefault(q.name, []).append(sid)
                out.kinds[(sid, q.name)] = "master"
                continue
            texts = [own_prose(rng) if q.manual else own_code(s, rng) for s in starter]
            _set_answer(nb, q.name, texts)
            out.kinds[(sid, q.name)] = "own"
    # Planted copies: the second of each pair takes the first's answer, disguised.
    owners = [sid for sid in files if out.kinds.get((sid, planted)) == "own"] if planted else []
    for (a, b), how in zip(zip(owners[0::2], owners[1::2]), ("commented", "renamed", "reordered")):
        texts = [DISGUISES[how](t, rng) for t in _answer_cells(notebooks[a], planted)]
        _set_answer(notebooks[b], planted, texts)
        out.copies.setdefault(planted, []).append((a, b, how))
        out.kinds[(b, planted)] = "copy"
    if planted_written:
        owners = [sid for sid in files if out.kinds.get((sid, planted_written)) == "own"]
        a, b = owners[-2], owners[-1]
        _set_answer(notebooks[b], planted_written, _answer_cells(notebooks[a], planted_written))
        out.copies.setdefault(planted_written, []).append((a, b, "verbatim"))
        out.kinds[(b, planted_written)] = "copy"
    stem = Path((student.get("metadata") or {}).get("otter", {}).get("assignment_name", "sheet")).name
    out.notebooks = {f"{sid}_{stem}.ipynb": notebooks[sid] for sid in files}
    out.ids = {f"{sid}_{stem}.ipynb": sid for sid in files}
    for mapping in (out.leaked, out.untouched):
        for q in mapping:
            mapping[q] = [f"{sid}_{stem}.ipynb" for sid in mapping[q]]
    out.copies = {q: [(f"{a}_{stem}.ipynb", f"{b}_{stem}.ipynb", how) for a, b, how in pairs]
                  for q, pairs in out.copies.items()}
    out.kinds = {(f"{sid}_{stem}.ipynb", q): k for (sid, q), k in out.kinds.items()}
    return out


def master_tests(master_cells: list[dict]) -> dict[str, list[tuple[str, bool]]]:
    """Each question's tests in a master: (function name, hidden), in order."""
    found: dict[str, list[tuple[str, bool]]] = {q.name: [] for q in mf.questions(master_cells)}
    for test in mf.question_tests(master_cells):
        found[test.question].append((test.name, test.hidden))
    return found


def outcome(sheet: Sheet, tests: dict[str, list[tuple[str, bool]]], kinds: dict[str, str],
            rng: random.Random) -> dict:
    """A made-up graded outcome: untouched answers fail every test, the master's pass, own answers at random."""
    questions = {}
    for q in sheet.questions:
        if q["manual"]:
            continue
        kind = kinds.get(q["name"], "own")
        results = []
        for name, hidden in tests.get(q["name"], []):
            if kind == "untouched":
                passed, message = False, f"NotImplementedError: {q['name']}: write it"
            elif kind == "master":
                passed, message = True, ""
            else:
                passed = rng.random() < (0.55 if hidden else 0.8)
                message = "" if passed else rng.choice([
                    f"AssertionError: {name}: expected 8.0, got 7.5", f"AssertionError: {name}: wrong shape (4, 2)",
                    "TypeError: unsupported operand type(s) for +: 'Var' and 'list'"])
            results.append({"name": name, "hidden": hidden, "passed": passed, "message": message})
        share = sum(t["passed"] for t in results) / len(results) if results else 0.0
        questions[q["name"]] = {"score": round(q["points"] * share, 3), "possible": q["points"], "tests": results}
    return {"status": GRADED, "questions": questions, "errors": []}


def write_graded(klass: GeneratedClass, sheet: Sheet, master_cells: list[dict], folder: Path, out: Path,
                 *, seed: int = 0, collected: float = 1.7e9) -> Path:
    """Write the class's notebooks into ``folder`` and a gradebook of made-up outcomes into ``out``."""
    import json

    rng = random.Random(seed)
    tests = master_tests(master_cells)
    subs, outcomes = [], {}
    for k, (name, nb) in enumerate(klass.notebooks.items()):
        data = json.dumps(nb).encode()
        path = Path(folder) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        sub = Submission(name, notebook=data, collected=collected + k, sheet=sheet)
        subs.append(sub)
        kinds = {q: kind for (file, q), kind in klass.kinds.items() if file == name}
        outcomes[name] = outcome(sheet, tests, kinds, rng)
    return write_gradebook(subs, outcomes, {sheet.assignment: sheet}, out)

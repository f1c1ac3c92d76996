"""otter-grader's master-notebook format, read: questions, solution blocks, tests, and a solution's printed form.

Each sheet in ``notebooks/`` is a master notebook (otter-grader 7, ``otter assign``): raw cells mark
its blocks (``# ASSIGNMENT CONFIG``, ``# BEGIN QUESTION`` with a YAML config, ``# BEGIN SOLUTION``,
``# BEGIN TESTS`` and their ``# END …``), and inside code cells ``# BEGIN SOLUTION`` … ``# END SOLUTION``
lines, lines ending in ``# SOLUTION``, and ``\"\"\" # BEGIN PROMPT`` … ``\"\"\" # END PROMPT`` strings
mark what the student writes and what the student sees instead. ``otter assign`` turns a master into
the student notebook and the autograder; this module only reads the format:

- ``questions``: each question's name, points, kind and heading, and a written question's rubric;
- ``solution_lines`` / ``given_lines``: the code a student writes, and the code a student is given;
- ``printed_form``: a solution cell as the solved sheet prints it, without markers and prompts, and
  ``printed_solution_lines``: which of its lines a student writes;
- ``is_boundary`` / ``test_cells``: the cells the solved sheet's PDF leaves out;
- ``question_tests``: each test function with its question (the grader runs them as probes).
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ASSIGNMENT_CONFIG = "# ASSIGNMENT CONFIG"
BOUNDARY = re.compile(r"^\s*#\s*(ASSIGNMENT CONFIG|(BEGIN|END) (QUESTION|SOLUTION|TESTS|PROMPT))\b")
# Line markers inside code cells, as otter's solution removal reads them (otter.assign.solutions).
_BLOCK_START = re.compile(r"^\s*# BEGIN SOLUTION( NO PROMPT)?\s*$")
_BLOCK_END = re.compile(r"^\s*# END SOLUTION\s*$")
_PROMPT_START = re.compile(r"^\s*(\"\"\"|''') # BEGIN PROMPT\s*$")
_PROMPT_END = re.compile(r"^\s*(\"\"\"|''');? # END PROMPT\s*$")
_LINE_MARK = re.compile(r"\s*# (SOLUTION NO PROMPT|SOLUTION|SEED)\s*$")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")


def _source(cell: Mapping[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def is_boundary(cell: Mapping[str, Any]) -> bool:
    """True for otter's raw block cells (assignment config, question/solution/test/prompt boundaries)."""
    first = _source(cell).lstrip().splitlines()[:1]
    return cell.get("cell_type") == "raw" and bool(first) and bool(BOUNDARY.match(first[0]))


def _kind(cell: Mapping[str, Any]) -> str | None:
    """'BEGIN QUESTION', 'END TESTS', … for a boundary cell, else None."""
    if not is_boundary(cell):
        return None
    return BOUNDARY.match(_source(cell).lstrip().splitlines()[0]).group(1)


@dataclass(frozen=True)
class RubricItem:
    """One rubric item of a written question: points (negative deducts), what the student reads, a grader-only note."""

    points: float
    explanation: str
    note: str = ""


@dataclass(frozen=True)
class Question:
    """One question of a master: its otter name, points, whether a TA grades it by hand, its heading."""

    name: str
    points: float
    manual: bool
    heading: str   # the first heading inside the question ('2b — `Var`: …'), or '' if it has none
    first_cell: int  # index of the first cell after the BEGIN QUESTION boundary
    # A written question's mark scheme and the question's code cells (counted from 1) whose outputs the answer
    # discusses; both are keys of the BEGIN QUESTION config, which otter assign ignores (fica drops unknown keys).
    rubric: tuple[RubricItem, ...] = ()
    refers: tuple[int, ...] = ()


def rubric_of(config: Mapping[str, Any], points: float) -> tuple[RubricItem, ...]:
    """The ``rubric`` key of a question's config, checked; a ValueError says which item is wrong and how."""
    items = config.get("rubric")
    if items is None:
        return ()
    name = config.get("name")
    if not config.get("manual"):
        raise ValueError(f"{name}: a rubric is for written questions (manual: true); the tests grade this one.")
    if not isinstance(items, list) or not items:
        raise ValueError(f"{name}: rubric must be a list of items, each with points and an explanation.")
    found = []
    for number, item in enumerate(items, 1):
        where = f"{name}: rubric item {number}"
        if not isinstance(item, dict) or set(item) - {"points", "explanation", "note"}:
            raise ValueError(f"{where} must be a mapping of points, explanation and (optional) note; got {item!r}")
        value, text, note = item.get("points"), item.get("explanation"), item.get("note") or ""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value == 0:
            raise ValueError(f"{where}: points must be a non-zero number (negative deducts); got {value!r}")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{where}: the explanation (what the student reads) is missing")
        if not isinstance(note, str):
            raise ValueError(f"{where}: the grader note must be text; got {note!r}")
        found.append(RubricItem(float(value), text.strip(), note.strip()))
    earned = sum(item.points for item in found if item.points > 0)
    if abs(earned - points) > 1e-9:
        raise ValueError(f"{name}: the rubric's positive items add up to {earned:g} points, the question is worth "
                         f"{points:g}; a complete answer must be able to earn exactly the question's points.")
    return tuple(found)


def _refers(config: Mapping[str, Any]) -> tuple[int, ...]:
    """The ``refers`` key: the question's code cells (from 1) whose outputs a marker sees beside the answer."""
    value = config.get("refers", [])
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise ValueError(f"{config.get('name')}: refers must be a list of code-cell numbers inside the question "
                         f"(1 = its first code cell); got {value!r}")
    return tuple(value)


def _config(cell: Mapping[str, Any]) -> dict[str, Any]:
    """The YAML of a BEGIN QUESTION / ASSIGNMENT CONFIG cell."""
    import yaml  # otter-grader depends on PyYAML

    text = "\n".join(_source(cell).splitlines()[1:])
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError(f"The config under {_source(cell).splitlines()[0]!r} is not a YAML mapping: {text!r}")
    return data


def assignment_config(cells: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The master's own ASSIGNMENT CONFIG (its first cell), as a mapping; empty if it has none."""
    if cells and _kind(cells[0]) == "ASSIGNMENT CONFIG":
        return _config(cells[0])
    return {}


def questions(cells: Sequence[Mapping[str, Any]]) -> list[Question]:
    """Every question of a master notebook's cells, in order."""
    found, open_at = [], None
    for index, cell in enumerate(cells):
        kind = _kind(cell)
        if kind == "BEGIN QUESTION":
            if open_at is not None:
                raise ValueError(f"cell {index + 1}: BEGIN QUESTION inside the question opened at cell {open_at + 1}")
            open_at, config = index, _config(cell)
            if not config.get("name"):
                raise ValueError(f"cell {index + 1}: a question needs a name (name: q1j)")
            inside = []
            for later in cells[index + 1:]:
                if _kind(later) == "END QUESTION":
                    break
                inside.append(later)
            heading = next((h for c in inside if c.get("cell_type") == "markdown" for h in _headings(_source(c))), "")
            points = config.get("points", 0)
            total = sum(points) if isinstance(points, list) else float(points or 0)
            try:
                rubric, refers = rubric_of(config, float(total)), _refers(config)
            except ValueError as error:
                raise ValueError(f"cell {index + 1}: {error}") from None
            found.append(Question(str(config["name"]), float(total), bool(config.get("manual", False)),
                                  heading, index + 1, rubric, refers))
        elif kind == "END QUESTION":
            open_at = None
    return found


def _headings(text: str) -> Iterator[str]:
    for line in text.splitlines():
        match = _HEADING.match(line)
        if match and not line.lstrip().startswith("#!"):
            yield match.group(1)


def blocks(cells: Sequence[Mapping[str, Any]]) -> Iterator[tuple[int, str]]:
    """(index, block) for every non-boundary cell: block is 'solution', 'tests', 'prompt' or ''."""
    current = ""
    for index, cell in enumerate(cells):
        kind = _kind(cell)
        if kind is not None:
            verb, _, what = kind.partition(" ")
            if what in ("SOLUTION", "TESTS", "PROMPT"):
                current = what.lower() if verb == "BEGIN" else ""
            continue
        yield index, current


def test_cells(cells: Sequence[Mapping[str, Any]]) -> set[int]:
    """Indices of the test cells (between BEGIN TESTS and END TESTS)."""
    return {index for index, block in blocks(cells) if block == "tests"}


def is_hidden_test(cell: Mapping[str, Any]) -> bool:
    """Whether a test cell is hidden: its first line is ``# HIDDEN``, or its test config says ``hidden: true``."""
    text = _source(cell).lstrip()
    if text.upper().startswith("# HIDDEN"):
        return True
    config = text.split("# END TEST CONFIG")[0] if "# BEGIN TEST CONFIG" in text else ""
    return bool(re.search(r"^\s*hidden:\s*true\s*$", config, re.MULTILINE))


@dataclass(frozen=True)
class Test:
    """One test function of a master: its question, its function's name, whether it is hidden, its source."""

    question: str
    name: str
    hidden: bool
    source: str


_TEST_DEF = re.compile(r"^def (test_\w+)\(", re.MULTILINE)


def question_tests(cells: Sequence[Mapping[str, Any]]) -> list[Test]:
    """Every test function of a master, in order, with its question (exception-based tests: one per cell)."""
    found, question = [], None
    tests = test_cells(cells)
    for index, cell in enumerate(cells):
        kind = _kind(cell)
        if kind == "BEGIN QUESTION":
            question = str(_config(cell)["name"])
        elif kind == "END QUESTION":
            question = None
        elif index in tests and question is not None:
            text = _source(cell)
            names = _TEST_DEF.findall(text)
            if len(names) != 1:
                raise ValueError(f"cell {index + 1} ({question}): a test cell holds exactly one 'def test_…(…)' "
                                 f"function; found {len(names)}")
            body = "\n".join(line for line in text.splitlines() if not line.strip().upper().startswith("# HIDDEN"))
            found.append(Test(question, names[0], is_hidden_test(cell), body))
    return found


def _split_lines(cells: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """(solution lines, given lines) of a master's code cells other than tests, stripped and without markers."""
    solution, given = [], []
    for index, block in blocks(cells):
        if cells[index].get("cell_type") != "code" or block == "tests":
            continue
        inside = in_prompt = False
        for line in _source(cells[index]).splitlines():
            if _BLOCK_START.match(line) or _BLOCK_END.match(line):
                inside = bool(_BLOCK_START.match(line))
            elif _PROMPT_START.match(line) or _PROMPT_END.match(line):
                in_prompt = bool(_PROMPT_START.match(line))
            else:
                mark = _LINE_MARK.search(line)
                target = solution if inside or (mark and mark.group(1) != "SEED") else given
                target.append(_LINE_MARK.sub("", line).strip())
    return [line for line in solution if line], [line for line in given if line]


def solution_lines(cells: Sequence[Mapping[str, Any]]) -> list[str]:
    """The code lines a student writes (inside in-cell solution blocks, or ending in ``# SOLUTION``), stripped."""
    return _split_lines(cells)[0]


def given_lines(cells: Sequence[Mapping[str, Any]]) -> list[str]:
    """The code lines a student is given: everything but the solutions, the prompts' stubs included."""
    return _split_lines(cells)[1]


def _printed(source: str) -> Iterator[tuple[str, bool]]:
    """Each line the solved sheet prints, as written (markers still on it), and whether a solution block holds it."""
    inside = in_prompt = False
    for line in source.splitlines():
        if in_prompt:
            in_prompt = not _PROMPT_END.match(line)
            continue
        if _PROMPT_START.match(line):
            in_prompt = True
            continue
        if _BLOCK_START.match(line) or _BLOCK_END.match(line):
            inside = bool(_BLOCK_START.match(line))
            continue
        yield line, inside


def printed_solution_lines(source: str) -> set[int]:
    """Line numbers (from 1) of ``printed_form(source)`` that hold code a student writes."""
    out = set()
    for number, (line, inside) in enumerate(_printed(source), 1):
        mark = _LINE_MARK.search(line)
        if inside or (mark and mark.group(1) != "SEED"):
            out.add(number)
    return out


def printed_form(source: str) -> str:
    """A solution cell as the solved sheet shows it: the solution kept, markers and prompts dropped."""
    return "\n".join(_LINE_MARK.sub("", line) for line, _ in _printed(source))

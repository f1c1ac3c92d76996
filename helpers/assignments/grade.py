"""``make grade``: a folder of submissions becomes ``gradebook.csv`` and one feedback file per submission.

Every file under the submissions folder is one row, whatever it is:

- a notebook (``.ipynb``), or a kit submission zip (``make submit``: notebook, PDF, manifest), whose
  integrity is verified first (``helpers.export.bundle.open_bundle``); a zip that fails is graded all
  the same and its row says *tampered* and why;
- anything else gets a row saying why it cannot be graded.

The sheet a notebook belongs to comes from its otter metadata (``assignment_name``), else its file name.
Each notebook is graded by ``otter run`` (otter-grader's grading without containers) in a process of its
own, in the smoke profile with a fresh results cache, several at a time: on this machine, or on the workers
of a Dask cluster when ``KIT_SCHEDULER`` names one (``helpers.cluster``); the kit's otter plugin grades
every question on the notebook's final state and gives each cell a time budget. A submission that runs
past ``timeout`` seconds, or whose kernel dies, gets a row saying so; the run goes on. Nothing the
student's code wrote is unpickled here: the grading process reports as JSON.

Each finished submission is kept in ``<out>/results/`` under a key of its bytes, its autograder and the
settings, so an interrupted run resumes without grading anything twice.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import queue
import re
import shutil
import zipfile
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import cluster, store
from ..export.bundle import MANIFEST, open_bundle
from . import grading_run, sandbox, tamper

GRADEBOOK = "gradebook.csv"
DETAILS = "gradebook.json"  # the same rows with every test's outcome, for scripts
NOTEBOOKS = "notebooks"     # <out>/notebooks/<safe name>.ipynb: the notebook each row graded
GRADED, TAMPERED, TIMEOUT, ERROR, NOT_GRADABLE = "graded", "tampered", "timeout", "error", "not gradable"
DEFAULT_TIMEOUT = 900
DEFAULT_CELL_TIMEOUT = 300
MAX_BYTES = 200_000_000  # a handed-in file larger than this is no sheet (a video, a data set): not read
CHECK_CALL = re.compile(r"""grader\.check\(\s*["']([^"']+)["']\s*\)""")


@dataclass(frozen=True)
class Sheet:
    """One sheet's autograder: otter's zip and the questions (written by ``make assign``)."""

    assignment: str
    notebook: str          # the student notebook's file name, e.g. 01_backprop_autodiff.ipynb
    zip: Path
    questions: tuple[dict, ...]  # {"name", "points", "manual"} in the sheet's order
    grading: Path | None = None  # <sheet>.grading.json: probes, skipped lesson cells, the master's values
    kit: Path | None = None      # kit.zip: the student kit each sandbox mounts


def load_sheets(autograders: Path) -> dict[str, Sheet]:
    """The sheets ``make assign`` left in ``autograders`` (``<sheet>.json`` beside ``<sheet>.zip``), by name."""
    sheets = {}
    for info in sorted(Path(autograders).glob("*.json")):
        data = store.read_json(info)
        if not isinstance(data, dict) or "assignment" not in data:
            continue
        grading, kit = info.with_name(data.get("grading") or f"{info.stem}.grading.json"), info.with_name("kit.zip")
        sheets[data["assignment"]] = Sheet(data["assignment"], data["notebook"], info.with_name(data["zip"]),
                                           tuple(data["questions"]), grading if grading.is_file() else None,
                                           kit if kit.is_file() else None)
    if not sheets:
        raise FileNotFoundError(f"No autograders in {autograders}: run `make assign` first (it writes "
                                "<sheet>.zip and <sheet>.json there).")
    return sheets


@dataclass
class Submission:
    """One file handed in, read: the notebook in it (if any), its sheet, and what is wrong with it."""

    id: str                      # its path inside the submissions folder
    notebook: bytes | None = None
    sheet: Sheet | None = None
    problem: str | None = None   # why it cannot be graded
    tampered: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    collected: float = 0.0       # the handed-in file's modification time (when it was collected), epoch seconds


def discover(folder: Path) -> list[Path]:
    """Every file under ``folder`` (hidden files and macOS zip debris left out), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"SUBMISSIONS={folder} is not a folder: point it at the folder of handed-in "
                                 "notebooks or submission zips (one per student, subfolders allowed).")
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and not any(part.startswith(".") or part == "__MACOSX" for part in p.relative_to(folder).parts))


def read_submission(path: Path, root: Path, sheets: dict[str, Sheet]) -> Submission:
    """Open one handed-in file: a notebook, a kit bundle (verified) or a zip holding one notebook."""
    sub = Submission(str(path.relative_to(root)), collected=path.stat().st_mtime)
    if path.stat().st_size > MAX_BYTES:
        sub.problem = f"too large to be a sheet ({path.stat().st_size / 1e6:.0f} MB; a notebook is far below {MAX_BYTES / 1e6:.0f} MB)"
        return sub
    data = path.read_bytes()
    if path.suffix.lower() == ".zip":
        data = _notebook_from_zip(path, sub)
        if data is None:
            return sub
    elif path.suffix.lower() != ".ipynb":
        sub.problem = f"not a notebook: {path.name} is neither a .ipynb nor a submission .zip"
        return sub
    try:
        nb = json.loads(data)
        cells = nb["cells"]
        if not isinstance(cells, list):
            raise TypeError("'cells' is not a list")
    except (ValueError, KeyError, TypeError) as error:
        sub.problem = f"not a valid notebook ({type(error).__name__}: {str(error)[:120]})"
        return sub
    sub.sheet = _sheet_of(nb, path.relative_to(root), sheets)
    if sub.sheet is None:
        sub.problem = (f"cannot tell which sheet this is (no otter assignment name, and neither its file name nor a "
                       f"folder's names one of {', '.join(s.notebook for s in sheets.values())})")
        return sub
    if not isinstance(nb.get("metadata"), dict):
        nb["metadata"] = {}
    if not isinstance(nb["metadata"].get("otter"), dict):
        nb["metadata"]["otter"] = {}
    otter_meta = nb["metadata"]["otter"]
    if otter_meta.get("assignment_name") != sub.sheet.assignment:
        # otter refuses a notebook without its sheet's name; the sheet was told from the file or folder name
        sub.notes.append(f"no otter assignment name in the notebook: graded as {sub.sheet.assignment} "
                         "by its file or folder name")
        otter_meta["assignment_name"] = sub.sheet.assignment
        data = json.dumps(nb).encode()
    sub.notebook = data
    sub.notes += _check_cell_notes(cells, sub.sheet) + tamper.notes(cells)
    return sub


def _notebook_from_zip(path: Path, sub: Submission) -> bytes | None:
    """The notebook inside a zip; a kit bundle is verified and its integrity problems noted."""
    try:
        with zipfile.ZipFile(path) as zf:
            expanded = sum(info.file_size for info in zf.infolist())
            if expanded > MAX_BYTES:  # a zip bomb, or a data set: never unpacked
                sub.problem = f"the zip expands to {expanded / 1e6:.0f} MB; a submission is far smaller"
                return None
            names = [n for n in zf.namelist() if not n.endswith("/")]
            if MANIFEST in names:
                opened = open_bundle(path)
                if opened.notebook is None:
                    sub.problem = "damaged submission zip: " + "; ".join(opened.problems)
                    return None
                sub.tampered = list(opened.problems)
                return opened.notebook
            notebooks = [n for n in names if n.lower().endswith(".ipynb") and "__MACOSX" not in n]
            if len(notebooks) != 1:
                sub.problem = f"a zip must hold exactly one notebook; {path.name} holds {len(notebooks)}"
                return None
            sub.notes.append("a plain zip, not a kit bundle: nothing to verify")
            return zf.read(notebooks[0])
    except (OSError, zipfile.BadZipFile) as error:
        sub.problem = f"not a readable zip: {error}"
        return None


def _sheet_of(nb: dict, where: Path, sheets: dict[str, Sheet]) -> Sheet | None:
    """The sheet named in the notebook's otter metadata, else the one whose name the file's name or folder holds."""
    meta = nb.get("metadata")
    otter_meta = meta.get("otter") if isinstance(meta, dict) else None
    name = otter_meta.get("assignment_name") if isinstance(otter_meta, dict) else None
    if isinstance(name, str) and name in sheets:
        return sheets[name]
    # a TA's folder per sheet (01_backprop_autodiff/alice.ipynb) names the sheet as well as a file name does
    for part in reversed(where.parts):
        stems = [s for s in sheets.values() if Path(s.notebook).stem in part]
        if len(stems) == 1:
            return stems[0]
    return None


def _check_cell_notes(cells: list, sheet: Sheet) -> list[str]:
    """Notes on deleted or duplicated ``grader.check`` cells (grading does not depend on them)."""
    counts: dict[str, int] = {}
    for cell in cells:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            src = cell.get("source", "")
            for name in CHECK_CALL.findall("".join(src) if isinstance(src, list) else str(src)):
                counts[name] = counts.get(name, 0) + 1
    notes = []
    for q in sheet.questions:
        if q["manual"]:
            continue
        n = counts.get(q["name"], 0)
        if n == 0:
            notes.append(f"no grader.check cell for {q['name']} (graded anyway)")
        elif n > 1:
            notes.append(f"grader.check cell for {q['name']} appears {n} times (graded once, at the end)")
    return notes


def _safe_name(submission_id: str) -> str:
    """A file name for a submission's feedback: readable, and distinct for distinct submissions."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", submission_id).strip("_")[:80] or "submission"
    return f"{readable}-{hashlib.sha256(submission_id.encode()).hexdigest()[:8]}"


# The modules that decide a grade (reports, marking and exports read grades; editing them regrades nothing)
GRADING_CODE = ("grade", "grading_run", "kernel_run", "probes", "verdict", "sandbox", "expected", "tamper")


def _grader_version() -> str:
    """Digest of the grading code (this package, the sandbox's runner, the verdict's comparisons): a kept grade
    must not outlive the code that gave it."""
    h = hashlib.sha256()
    here = Path(__file__).parent
    for path in [here / f"{name}.py" for name in GRADING_CODE] + [here.parent / "exercises.py"]:
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def _run_identity(sheets: dict[str, Sheet]) -> dict:
    """What every submission of a run shares in its key: the grading code, the sandbox, each sheet's grading file
    and kit (read and hashed once per run, not once per submission)."""
    def digest(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    return {"grader": _grader_version(), "sandbox": sandbox.unavailable() is None,
            "sheets": {s.assignment: {"grading": digest(s.grading), "kit": digest(s.kit)} for s in sheets.values()}}


def _key(sub: Submission, settings: dict, identity: dict) -> str:
    """What decides a submission's grade: its notebook, its sheet's grading file and kit, the grading code and
    settings, and whether it ran in a sandbox (``identity``: ``_run_identity``)."""
    return store.content_key({"notebook": hashlib.sha256(sub.notebook).hexdigest(),
                              **identity["sheets"][sub.sheet.assignment], "grader": identity["grader"],
                              "sandbox": identity["sandbox"], **settings})


def _crashed(error: BaseException, where: str = "") -> dict:
    """The row of a submission whose grading itself failed (a bug in the kit, a broken machine): this row only."""
    return {"status": ERROR, "note": f"grading failed{where} ({type(error).__name__}: {str(error)[:300]}); no "
                                     "question was graded, and the other submissions were graded as usual"}


def _task(sub: Submission, loaded: dict[str, tuple]) -> tuple:
    """What grading one submission needs, as plain data: notebook, its name, the sheet's grading file, the kit.

    ``loaded`` keeps each sheet's grading file and kit as read the first time, so a run reads them once per sheet.
    """
    if sub.sheet.assignment not in loaded:
        loaded[sub.sheet.assignment] = (store.read_json(sub.sheet.grading), sub.sheet.kit.read_bytes())
    return (sub.notebook, sub.sheet.notebook, *loaded[sub.sheet.assignment])


def grade_task(notebook: bytes, notebook_name: str, grading: dict, kit: bytes, **settings: Any) -> dict:
    """Grade one submission (``grading_run.grade_one``); anything raised becomes its row, never the run's end."""
    try:
        return grading_run.grade_one(notebook, notebook_name, grading, kit, **settings)
    except Exception as error:  # noqa: BLE001 - one submission's failure is its own row
        return _crashed(error)


Runner = Callable[[list[tuple[Submission, dict]]], Iterable[tuple[Submission, dict]]]


def local_runner(jobs: int, grader: Callable[..., dict] = grade_task) -> Runner:
    """Grade submissions in ``jobs`` sandboxes at a time on this machine; yield (submission, outcome) as they end.

    Each concurrent slot grades as a user id of its own (``sandbox.UID_BASE`` + slot, when grading as root), so a
    submission's process limit and files are its own.
    """
    def run(work: list[tuple[Submission, dict]]) -> Iterable[tuple[Submission, dict]]:
        loaded: dict[str, tuple] = {}
        slots: queue.Queue[int] = queue.Queue()
        for slot in range(max(1, jobs)):
            slots.put(slot)

        def one(sub: Submission, settings: dict) -> dict:
            slot = slots.get()
            try:
                return grader(*_task(sub, loaded), uid=sandbox.UID_BASE + slot, **settings)
            finally:
                slots.put(slot)

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = [(sub, pool.submit(one, sub, settings)) for sub, settings in work]
            for sub, future in futures:
                try:
                    outcome = future.result()
                except Exception as error:  # noqa: BLE001 - e.g. the grading file unreadable: this row only
                    outcome = _crashed(error)
                yield sub, outcome
    return run


def _dask_grade(notebook: bytes, notebook_name: str, grading: dict, kit: bytes, **settings: Any) -> dict:
    """``grade_task`` on a Dask worker: one task at a time per worker process, so its user id is its own."""
    return grade_task(notebook, notebook_name, grading, kit, uid=sandbox.UID_BASE + 1000 + os.getpid() % 3000,
                      **settings)


def dask_runner(client: Any, grader: Callable[..., dict] = _dask_grade) -> Runner:
    """Grade submissions as tasks on a Dask cluster; yield (submission, outcome) as they end.

    Each task is ``grader(notebook bytes, notebook name, grading file, kit bytes, **settings)`` and returns plain
    data, so a worker needs no shared folder, only the kit (``helpers`` importable) and bubblewrap. A worker that
    dies (its machine, or memory) has its task retried elsewhere, as Dask does; when that fails too, the
    submission's row says so and the others go on.
    """
    from distributed import as_completed

    def run(work: list[tuple[Submission, dict]]) -> Iterable[tuple[Submission, dict]]:
        if not work:
            return
        # The autograder's bytes travel inside each task (a zip of a few hundred kB), not as data shared on the
        # cluster: tasks with no dependency are handed to workers as they free up, where tasks depending on one
        # worker's data would all be sent to that worker, and die with it.
        loaded: dict[str, tuple] = {}
        futures = {client.submit(grader, *_task(sub, loaded), pure=False,
                                 key=f"grade-{_safe_name(sub.id)}-{os.urandom(4).hex()}", **settings): sub
                   for sub, settings in work}
        try:
            for future in as_completed(futures, loop=client.loop):  # (set_as_default=False: name its loop)
                try:
                    outcome = future.result()
                except Exception as error:  # KilledWorker, or the task itself raised: this row, not the run
                    outcome = {"status": ERROR, "note": f"grading failed on the Dask cluster ({type(error).__name__}: "
                                                        f"{str(error)[:300]}); no question was graded"}
                yield futures[future], outcome
        finally:
            client.cancel(list(futures))  # an interrupted run leaves no grading behind on the cluster
    return run


def usable_cores() -> int:
    """The cores this process may run on (its affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def grade(submissions: Path, autograders: Path, out: Path, *, jobs: int | None = None,
          timeout: int = DEFAULT_TIMEOUT, cell_timeout: int = DEFAULT_CELL_TIMEOUT, profile: str = "smoke",
          runner: Runner | None = None, scheduler: str | None = None,
          progress: Callable[[str], None] | None = print) -> Path:
    """Grade every file under ``submissions``; write the gradebook and feedback into ``out``; return the gradebook.

    Submissions are graded by ``runner``; by default on the Dask cluster of ``scheduler`` or ``KIT_SCHEDULER``
    when one is named (``dask_runner``), else in ``jobs`` local processes at a time (``local_runner``).
    """
    sheets = load_sheets(autograders)
    for sheet in sheets.values():
        if sheet.grading is None or sheet.kit is None:
            raise FileNotFoundError(f"{Path(autograders) / (Path(sheet.notebook).stem + '.json')} comes from an older "
                                    "make assign (no grading file or student kit beside it): run `make assign` again.")
    root, out = Path(submissions), Path(out)
    subs = [read_submission(p, root, sheets) for p in discover(root)]
    settings = {"timeout": int(timeout), "cell_timeout": int(cell_timeout), "profile": profile}
    outcomes: dict[str, dict] = {}
    work, keys, identity = [], {}, _run_identity(sheets)
    for sub in subs:
        if sub.problem is not None:
            outcomes[sub.id] = {"status": NOT_GRADABLE, "note": sub.problem}
            continue
        keys[sub.id] = _key(sub, settings, identity)
        kept = store.read_json(out / "results" / f"{keys[sub.id]}.json")
        if isinstance(kept, dict) and kept.get("status") in (GRADED, TIMEOUT, ERROR):
            outcomes[sub.id] = kept
        else:
            work.append((sub, settings))
    why_not = sandbox.unavailable()
    sandboxed = "bubblewrap" if why_not is None else f"none: {why_not}"
    if progress:
        progress("Each submission runs in a bubblewrap sandbox (no network, its own processes and folder, limits)."
                 if why_not is None else f"No sandbox: {why_not}. Submissions run as plain processes that can read "
                 "this machine's files (README: 'Grading without a sandbox').")
    where = f"{jobs or usable_cores()} at a time"
    if runner is None:
        dask = cluster.client(scheduler) if work else None
        if dask is not None:
            runner = dask_runner(dask)
            where = f"on the Dask cluster at {dask.scheduler.address}, {len(dask.scheduler_info()['workers'])} workers"
        else:
            runner = local_runner(jobs or usable_cores())
    if progress:
        progress(f"{len(subs)} submissions: {len(work)} to grade, {len(outcomes)} known ({where})")
    for sub, outcome in runner(work):
        store.write_json(out / "results" / f"{keys[sub.id]}.json", outcome)  # kept the moment it ends
        outcomes[sub.id] = outcome
        if progress:
            progress(f"  {sub.id}: {outcome['status']}")
    return write_gradebook(subs, outcomes, sheets, out, sandboxed=sandboxed)


def _row(sub: Submission, outcome: dict, sheets_questions: list[dict]) -> dict[str, Any]:
    """One gradebook row: who, which sheet, status, scores per question, total, notes."""
    status = outcome["status"]
    notes = list(sub.notes)
    if status == GRADED and sub.tampered:
        status = TAMPERED
        notes.insert(0, "bundle does not verify: " + "; ".join(sub.tampered))
    if outcome.get("note"):
        notes.insert(0, outcome["note"])
    notes[:0] = [f"limit: {limit}" for limit in outcome.get("limits", [])]
    errors = outcome.get("errors", [])
    if errors:
        notes.append("cells raised errors: " + "; ".join(f"code cell {e['code_cell']} ({e['error'][:80]})"
                                                       for e in errors[:5]) + (" …" if len(errors) > 5 else ""))
    row: dict[str, Any] = {"submission": sub.id, "sheet": sub.sheet.assignment if sub.sheet else "",
                           "status": status}
    graded = outcome.get("questions", {})
    total = possible = 0.0
    for q in sheets_questions:
        if sub.sheet is None or q not in sub.sheet.questions:
            row[q["name"]] = ""
        elif q["manual"]:
            row[q["name"]] = "manual"
        elif q["name"] in graded:
            score = float(graded[q["name"]]["score"])
            row[q["name"]] = _number(score)
            total, possible = total + score, possible + float(graded[q["name"]]["possible"])
        else:
            row[q["name"]] = ""
            if status in (GRADED, TAMPERED):
                notes.append(f"{q['name']} was not graded (its tests did not run)")
    scored = status in (GRADED, TAMPERED)
    row["autograded"] = _number(total) if scored else ""
    row["possible"] = _number(possible or sum(q["points"] for q in sub.sheet.questions if not q["manual"])) \
        if sub.sheet else ""
    row["note"] = " | ".join(notes)
    return row


def _number(x: float) -> str:
    """A score as the gradebook prints it: 3, 2.5, 1.333."""
    return f"{x:.3f}".rstrip("0").rstrip(".")


def write_gradebook(subs: list[Submission], outcomes: dict[str, dict], sheets: dict[str, Sheet], out: Path,
                    sandboxed: str = "") -> Path:
    """Write ``gradebook.csv`` (one row per submission), ``gradebook.json`` and one feedback file per submission.

    The last column, ``sandbox``, says how the submissions ran: ``bubblewrap``, or ``none: <why>``.
    """
    questions = [q for sheet in sheets.values() for q in sheet.questions]
    rows = [_row(sub, outcomes[sub.id], questions) for sub in subs]
    for row in rows:
        row["sandbox"] = sandboxed
    columns = ["submission", "sheet", "status", "autograded", "possible"] + [q["name"] for q in questions] + \
        ["note", "sandbox"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    gradebook = store.write_text(out / GRADEBOOK, buffer.getvalue())
    # Each graded notebook is kept beside the gradebook, so that marking and reports read exactly what was graded.
    kept = {}
    if (out / NOTEBOOKS).is_dir():
        shutil.rmtree(out / NOTEBOOKS)
    for sub in subs:
        if sub.notebook is not None:
            kept[sub.id] = f"{NOTEBOOKS}/{_safe_name(sub.id)}.ipynb"
            store.write_bytes(out / kept[sub.id], sub.notebook)
    store.write_json(out / DETAILS, [{"submission": sub.id, "row": row, "outcome": outcomes[sub.id],
                                      "notebook": kept.get(sub.id), "collected": sub.collected,
                                      "sha256": hashlib.sha256(sub.notebook).hexdigest() if sub.notebook else None}
                                     for sub, row in zip(subs, rows)], indent=1)
    feedback = out / "feedback"
    if feedback.is_dir():
        shutil.rmtree(feedback)  # feedback of submissions no longer in the folder must not linger
    for sub, row in zip(subs, rows):
        store.write_text(feedback / f"{_safe_name(sub.id)}.md", feedback_text(sub, outcomes[sub.id], row))
    return gradebook


def feedback_text(sub: Submission, outcome: dict, row: dict) -> str:
    """The feedback a student gets: status, score, and each failed test with its message."""
    lines = [f"# Feedback: {sub.id}", ""]
    sheet = sub.sheet.assignment if sub.sheet else "unknown sheet"
    lines.append(f"Sheet: {sheet}. Status: {row['status']}.")
    if row["autograded"] != "":
        lines.append(f"Autograded score: {row['autograded']} of {row['possible']} points.")
    if row["note"]:
        lines += ["", "Notes:"] + [f"- {n}" for n in row["note"].split(" | ")]
    manual = [q["name"] for q in (sub.sheet.questions if sub.sheet else ()) if q["manual"]]
    if manual:
        lines += ["", f"Written answers ({', '.join(manual)}) are graded by hand from your PDF."]
    for name, result in outcome.get("questions", {}).items():
        failed = [t for t in result["tests"] if not t["passed"]]
        lines += ["", f"## {name}: {_number(float(result['score']))} of {_number(float(result['possible']))}"]
        if not failed:
            lines.append("All tests passed.")
        for test in failed:
            kind = "hidden test" if test["hidden"] else "public test"
            message = test["message"].strip().splitlines()
            lines.append(f"- {test['name']} ({kind}) failed: " + (message[-1] if message else "no message"))
    return "\n".join(lines) + "\n"

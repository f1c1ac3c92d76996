"""Make executed outputs printable: what a grader needs, nothing of the machine it ran on.

A PDF cannot animate, and a grader reads answers, not progress bars, warnings or the student's
home folder.  The clean-ups, applied to a copy of the executed notebook just before it becomes HTML:

* jupyter-book's cell tags: ``remove-cell`` drops the cell, ``remove-input`` its code,
  ``remove-output`` its outputs (a sheet can show a figure without the code that draws it);
* progress bars are dropped: ipywidget bars (``tqdm.auto`` in a kernel) and the whole stderr
  stream (text-mode tqdm, warnings, logging); other widgets become text from their final state;
  ``Downloading …`` lines go too.  Bars stay live in JupyterLab; what they said (trained or
  cached) is in the run record;
* local paths (the cache, the repository, the home folder) print as ``<cache>``, ``<repo>``, ``~``;
* stream text rewritten with carriage returns keeps only each line's last state;
* stream and plain-text outputs longer than ``max_lines`` lines or ``max_chars`` characters keep
  their head and tail around a note ``[… N lines trimmed …]``;
* a PNG figure gets a display width of its true size (pixels / DPI), so its text prints at the
  point size it was drawn with (a wider figure is shrunk to the text width by the print CSS);
* every cell gets the id ``kit-cell-<number>``, so the preflight can name the cell it measured;
* a student notebook's questions (cells that ``make assign`` marked ``metadata.kit.question``) each open
  with a small heading, "Question q2b · 6 points", which is also their bookmark; with ``pagebreaks`` each
  of those starts a new page (Gradescope-style grading: one question, its own pages);
* a master notebook (otter-grader's format, ``helpers.master_format``) prints as the solved sheet:
  its raw block cells and its test cells are left out, and its solution cells show the solution
  without otter's markers and student prompts.

``title_block`` builds the box that opens each sheet's PDF (sheet, profile, date, device, CPU, version).
"""
from __future__ import annotations

import base64
import binascii
import copy
import datetime
import html
import json
import os
import re
import struct
from pathlib import Path

from nbformat import NotebookNode
from nbformat.v4 import new_markdown_cell, new_output

from .. import machine, master_format
from ..config import REPO_ROOT
from .provenance import kit_label

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
MAX_LINES = 60
MAX_CHARS = 10_000

REMOVE_CELL, REMOVE_INPUT, REMOVE_OUTPUT = "remove-cell", "remove-input", "remove-output"
TITLE_ID = "kit-title"
DOWNLOAD_LINE = re.compile(r"^\s*Downloading\b.*(\n|$)", re.MULTILINE)

_TAG = re.compile(r"<[^>]+>")


QUESTION_ID = "kit-question-"          # id prefix of a question's label cell
BREAK_ID = "kit-question-break-"       # … of one that starts a new page (PRINT_CSS breaks before it)
QUESTION_TITLE = "Question "           # the label's text starts so; bundle.question_pages finds the bookmarks


def question_label(meta: dict, pagebreak: bool) -> NotebookNode:
    """The small heading that opens a question in a student's PDF: 'Question q2b · 6 points (written answer)'."""
    name = str(meta.get("name", "?"))
    points = float(meta.get("points") or 0)
    kind = " (written answer, graded by hand)" if meta.get("manual") else ""
    text = f"{QUESTION_TITLE}{name} · {points:g} point{'s' if points != 1 else ''}{kind}"
    cell = new_markdown_cell(f'<h6 class="kit-question">{html.escape(text)}</h6>')
    cell["id"] = (BREAK_ID if pagebreak else QUESTION_ID) + re.sub(r"[^A-Za-z0-9_-]", "_", name)
    return cell


def tidy_notebook(nb: NotebookNode, max_lines: int = MAX_LINES, max_chars: int = MAX_CHARS,
                  pagebreaks: bool = False) -> NotebookNode:
    """Return a copy of ``nb`` fit for paper: tags honoured, noise dropped, paths hidden, long outputs trimmed."""
    nb = copy.deepcopy(nb)
    states = _widget_states(nb)
    prefixes = local_prefixes()
    # Cell numbers count the notebook's own cells, so the title block is left out of them.
    own = [cell for cell in nb.cells if cell.get("id") != TITLE_ID]
    master_only = {id(own[i]) for i in master_format.test_cells(own)} | {id(c) for c in own if master_format.is_boundary(c)}
    kept, number = [], 0
    for cell in nb.cells:
        if cell.get("id") == TITLE_ID:   # the export's title block is not one of the sheet's cells
            kept.append(cell)
            continue
        number += 1
        tags = set(cell.get("metadata", {}).get("tags", []))
        if REMOVE_CELL in tags or id(cell) in master_only:
            continue
        question = cell.get("metadata", {}).get("kit", {}).get("question")
        if isinstance(question, dict):
            kept.append(question_label(question, pagebreaks))
        cell["id"] = f"kit-cell-{number}"
        kept.append(cell)
        if cell.get("cell_type") != "code":
            continue
        if master_only:  # a master notebook: print its solutions as the solved sheet shows them
            cell.source = master_format.printed_form(cell.source)
        if REMOVE_INPUT in tags:
            # nbconvert's templates skip the input of a cell marked so (as its TagRemovePreprocessor does).
            cell.metadata.setdefault("transient", {})["remove_source"] = True
        outputs = [] if REMOVE_OUTPUT in tags else cell.get("outputs", [])
        outputs = [_widget_as_text(out, states) for out in outputs if not _is_noise(out, states)]
        outputs = _merge_streams([out for out in outputs if out is not None])
        outputs = [_true_size(_hide_paths(_drop_download_lines(out), prefixes)) for out in outputs]
        cell.outputs = [_trim_output(out, max_lines, max_chars) for out in outputs if not _is_empty(out)]
    nb.cells = kept
    # Widgets are text now; without this metadata the HTML also skips loading the widget
    # renderer from a CDN, which would fail (or hang) offline.
    nb.metadata.pop("widgets", None)
    return nb


def local_prefixes() -> list[tuple[str, str]]:
    """(local path, what to print instead), longest first: the cache, the repository, home, temp."""
    pairs = {}
    if os.environ.get("KIT_CACHE"):
        pairs[str(Path(os.environ["KIT_CACHE"]).expanduser().resolve())] = "<cache>"
    for variable in ("KIT_DATA", "KIT_SHARED_DATA"):
        if os.environ.get(variable):
            pairs.setdefault(str(Path(os.environ[variable]).expanduser().resolve()), "<data>")
    pairs.setdefault(str(REPO_ROOT / ".cache"), "<cache>")
    pairs.setdefault(str(REPO_ROOT), "<repo>")
    pairs.setdefault(str(Path.home()), "~")
    return sorted(pairs.items(), key=lambda pair: len(pair[0]), reverse=True)


def hide_paths(text: str, prefixes: list[tuple[str, str]] | None = None) -> str:
    """Replace local path prefixes in ``text`` (also inside URLs like ``sqlite:////home/…``)."""
    for local, shown in prefixes if prefixes is not None else local_prefixes():
        if len(local) > 1:   # never rewrite "/" itself
            text = text.replace(local, shown)
    return text


def title_block(sheet: str, profile: str, date: str, device: str, version: str,
                cpu: str = "not recorded", seed_offset: int = 0) -> NotebookNode:
    """The box that opens a sheet's PDF: which sheet, which profile (and seed offset, when not 0), when, on what
    (device, CPU), with which kit."""
    rows = [("Sheet", sheet), ("Run profile", profile)]
    if seed_offset:   # KIT_SEED: the sheet ran on other seeds than its own
        rows.append(("Seed offset", f"KIT_SEED={seed_offset}: every seed shifted by {seed_offset}"))
    rows += [("Date", date), ("Device", device), ("CPU", cpu), ("Kit version", version)]
    cells = "".join(f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(v)}</td></tr>" for k, v in rows)
    cell = new_markdown_cell(f'<div class="kit-title"><table>{cells}</table></div>')
    cell["id"] = TITLE_ID
    return cell


def with_title_block(nb: NotebookNode, path: Path, profile: str) -> NotebookNode:
    """A copy of ``nb`` opening with the title block: sheet, profile, date, device, CPU, kit version.

    The CPU line (model, torch threads, torch's CPU kernels) is the one the run recorded: a notebook printed
    from stored outputs without a run record says "not recorded" rather than name the printing machine."""
    # The device the kernel recorded wins; else the one the kit picks here (KIT_DEVICE, cuda, mps, cpu).
    device = nb.metadata.get("kit", {}).get("device")
    if not device:
        from ..device import get_device  # imports torch: only for notebooks that recorded no device
        device = get_device().type
    block = title_block(sheet=f"{sheet_title(path)} ({path.name})", profile=profile,
                        date=datetime.date.today().isoformat(), device=str(device), version=kit_label(),
                        cpu=machine.label(nb.metadata.get("kit", {}).get("record") or {}),
                        seed_offset=int((nb.metadata.get("kit", {}).get("record") or {}).get("seed_offset") or 0))
    nb = copy.deepcopy(nb)
    nb.cells.insert(0, block)
    return nb


def sheet_title(notebook: Path) -> str:
    """The notebook's first heading (its sheet title), else its file name."""
    try:
        cells = json.loads(Path(notebook).read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError):
        cells = []
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            source = "".join(cell.get("source", []))
            for line in source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return Path(notebook).stem


def collapse_carriage_returns(text: str) -> str:
    """Keep, for each line, only what was written after its last carriage return."""
    lines = []
    for line in text.split("\n"):
        # A trailing "\r" (tqdm's refresh) does not erase anything by itself.
        parts = line.rstrip("\r").split("\r")
        lines.append(parts[-1])
    return "\n".join(lines)


def trim_text(text: str, max_lines: int = MAX_LINES, max_chars: int = MAX_CHARS) -> str:
    """Shorten ``text`` to its head and tail with a note saying how much was left out."""
    # A final newline ends the last line rather than starting another one.
    ending = "\n" if text.endswith("\n") else ""
    lines = text.removesuffix("\n").split("\n")
    if len(lines) > max_lines:
        keep = max(max_lines // 2 - 1, 1)
        dropped = len(lines) - 2 * keep
        lines = lines[:keep] + [f"[… {dropped} lines trimmed …]"] + lines[-keep:]
    text = "\n".join(lines)
    if len(text) > max_chars:
        keep = max_chars // 2
        dropped = len(text) - 2 * keep
        text = f"{text[:keep]}\n[… {dropped} characters trimmed …]\n{text[-keep:]}"
    return text + ending


def widget_text(model_id: str, states: dict[str, dict]) -> str | None:
    """Render a widget's final state as one line of text, or None when it is hidden or unknown."""
    model = states.get(model_id)
    if model is None:
        return None
    state = model.get("state", {})
    if _hidden(state, states):
        return None
    name = model.get("model_name", "")
    if name.endswith("BoxModel"):
        parts = [widget_text(_ref(child), states) for child in state.get("children", [])]
        return "".join(part for part in parts if part)
    if "value" in state and isinstance(state["value"], str):
        # HTML/Label widgets; tqdm pads with figure spaces so the widget keeps its width.
        text = html.unescape(_TAG.sub("", state["value"]))
        return text.replace("\u2007", " ")
    description = state.get("description", "")
    value = state.get("value")
    return f"{description} {value}".strip() if value is not None else None


def _is_noise(output: NotebookNode, states: dict[str, dict]) -> bool:
    """Whether an output is a progress bar or stderr (warnings, logging, text-mode bars)."""
    if output.get("output_type") == "stream":
        return output.get("name") == "stderr"
    view = output.get("data", {}).get(WIDGET_VIEW)
    return view is not None and _has_progress(view.get("model_id", ""), states)


def _has_progress(model_id: str, states: dict[str, dict]) -> bool:
    """Whether a widget is, or contains, a progress bar."""
    model = states.get(model_id, {})
    if "Progress" in model.get("model_name", ""):
        return True
    return any(_has_progress(_ref(child), states) for child in model.get("state", {}).get("children", []))


def _drop_download_lines(output: NotebookNode) -> NotebookNode:
    """Remove 'Downloading …' lines from a stream (the data came; the URL is noise on paper)."""
    if output.get("output_type") == "stream":
        output["text"] = DOWNLOAD_LINE.sub("", output["text"])
    return output


def _hide_paths(output: NotebookNode, prefixes: list[tuple[str, str]]) -> NotebookNode:
    """Local paths out of a stream, a traceback or a result's text forms."""
    if output.get("output_type") == "stream":
        output["text"] = hide_paths(output["text"], prefixes)
    elif output.get("output_type") == "error":
        output["evalue"] = hide_paths(output.get("evalue", ""), prefixes)
        output["traceback"] = [hide_paths(line, prefixes) for line in output.get("traceback", [])]
    for kind in ("text/plain", "text/html", "text/markdown", "text/latex"):
        value = output.get("data", {}).get(kind)
        if value is not None:
            output["data"][kind] = hide_paths("".join(value) if isinstance(value, list) else value, prefixes)
    return output


def png_size_inches(data: bytes) -> tuple[float, float] | None:
    """(width, height) in inches from a PNG's header and its pHYs chunk; None without a DPI."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    at = 8
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        if kind == b"pHYs" and length == 9:
            per_x, per_y, unit = struct.unpack(">IIB", data[at + 8:at + 17])
            if unit == 1 and per_x > 0 and per_y > 0:   # pixels per metre
                return width / (per_x * 0.0254), height / (per_y * 0.0254)
            return None
        if kind in (b"IDAT", b"IEND"):   # pHYs must come before the image data
            return None
        at += 12 + length
    return None


def _true_size(output: NotebookNode) -> NotebookNode:
    """Give a PNG without an explicit size the display width of its true size (96 CSS px per inch)."""
    png = output.get("data", {}).get("image/png")
    if png is None:
        return output
    meta = output.setdefault("metadata", {}).setdefault("image/png", {})
    if "width" in meta:
        return output
    try:
        size = png_size_inches(base64.b64decode("".join(png) if isinstance(png, list) else png))
    except (binascii.Error, struct.error):
        size = None
    if size is not None:
        meta["width"] = round(size[0] * 96)
    return output


def _is_empty(output: NotebookNode) -> bool:
    """A stream left with nothing to print."""
    return output.get("output_type") == "stream" and not output.get("text", "").strip()


def _widget_states(nb: NotebookNode) -> dict[str, dict]:
    """The final widget models nbclient stored, by model id."""
    return nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})


def _widget_as_text(output: NotebookNode, states: dict[str, dict]) -> NotebookNode | None:
    """Replace a widget view by a text output of its final state (None: drop the output)."""
    view = output.get("data", {}).get(WIDGET_VIEW)
    if view is None:
        return output
    text = widget_text(view.get("model_id", ""), states)
    if text is None:
        # A widget closed or hidden by the end of the run (tqdm's leave=False) shows nothing.
        return None
    return new_output("display_data", data={"text/plain": text})


def _merge_streams(outputs: list[NotebookNode]) -> list[NotebookNode]:
    """Join consecutive outputs of the same stream, so "\\r" can overwrite across messages."""
    merged: list[NotebookNode] = []
    for out in outputs:
        previous = merged[-1] if merged else None
        if (out.get("output_type") == "stream" and previous is not None
                and previous.get("output_type") == "stream" and previous.get("name") == out.get("name")):
            previous["text"] = previous["text"] + out["text"]
        else:
            merged.append(copy.deepcopy(out))
    for out in merged:
        if out.get("output_type") == "stream":
            out["text"] = collapse_carriage_returns(out["text"])
    return merged


def _trim_output(output: NotebookNode, max_lines: int, max_chars: int) -> NotebookNode:
    """Trim a stream's text or a result's text/plain; other outputs pass unchanged."""
    if output.get("output_type") == "stream":
        output["text"] = trim_text(output["text"], max_lines, max_chars)
    elif "text/plain" in output.get("data", {}):
        plain = output["data"]["text/plain"]
        plain = "".join(plain) if isinstance(plain, list) else plain
        output["data"]["text/plain"] = trim_text(plain, max_lines, max_chars)
    return output


def _ref(value: str) -> str:
    """Model id from a child reference 'IPY_MODEL_<id>'."""
    return value.removeprefix("IPY_MODEL_")


def _hidden(state: dict, states: dict[str, dict]) -> bool:
    """Whether the widget's layout hides it (tqdm hides bars it closes)."""
    layout = states.get(_ref(state.get("layout") or ""), {}).get("state", {})
    return layout.get("visibility") == "hidden" or layout.get("display") == "none"

"""Make executed outputs printable: progress bars as their final state, huge outputs trimmed.

A PDF cannot animate, so a progress bar must appear once, as it ended, and a cell that printed
ten thousand lines must not turn into two hundred pages.  Three clean-ups, applied to a copy of
the executed notebook just before it is turned into HTML:

* ipywidget outputs (``tqdm.auto`` bars in a kernel) become plain text built from the widget
  state that nbclient stores in the notebook's metadata: ``desc: 100%|██████████| 100/100 [...]``;
* stream text rewritten with carriage returns (text-mode tqdm) keeps only each line's last state;
* stream and plain-text outputs longer than ``max_lines`` lines or ``max_chars`` characters keep
  their head and tail around a note ``[… N lines trimmed …]``.
"""
from __future__ import annotations

import copy
import html
import re

from nbformat import NotebookNode
from nbformat.v4 import new_output

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
MAX_LINES = 60
MAX_CHARS = 10_000
BAR_WIDTH = 10

_TAG = re.compile(r"<[^>]+>")


def tidy_notebook(nb: NotebookNode, max_lines: int = MAX_LINES, max_chars: int = MAX_CHARS) -> NotebookNode:
    """Return a copy of ``nb`` with widgets as text, progress bars collapsed and huge outputs trimmed."""
    nb = copy.deepcopy(nb)
    states = _widget_states(nb)
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        outputs = [_widget_as_text(out, states) for out in cell.get("outputs", [])]
        outputs = _merge_streams([out for out in outputs if out is not None])
        cell.outputs = [_trim_output(out, max_lines, max_chars) for out in outputs]
    # Widgets are text now; without this metadata the HTML also skips loading the widget
    # renderer from a CDN, which would fail (or hang) offline.
    nb.metadata.pop("widgets", None)
    return nb


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
    if "Progress" in name:
        return _bar(state)
    if "value" in state and isinstance(state["value"], str):
        # HTML/Label widgets; tqdm pads with figure spaces so the widget keeps its width.
        text = html.unescape(_TAG.sub("", state["value"]))
        return text.replace("\u2007", " ")
    description = state.get("description", "")
    value = state.get("value")
    return f"{description} {value}".strip() if value is not None else None


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


def _bar(state: dict) -> str:
    """A text progress bar like tqdm's: |██████    |."""
    low, high = float(state.get("min", 0)), float(state.get("max", 100))
    value = float(state.get("value", 0))
    fraction = 0.0 if high <= low else min(max((value - low) / (high - low), 0.0), 1.0)
    filled = round(fraction * BAR_WIDTH)
    return "|" + "█" * filled + " " * (BAR_WIDTH - filled) + "|"

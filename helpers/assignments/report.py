"""``make report``: what the class did, as one self-contained HTML page (every figure inline) and its PDF.

The numbers come from ``helpers.assignments.analysis`` (pandas and scipy); the figures are drawn in the kit's
style (``helpers.style``, as ``helpers.plotting`` draws them) and embedded as base64 PNG, so the page needs no
network and no other file. The PDF is the same page printed by the kit's export (``helpers.export.browser``:
the installed Chromium, offline). When the roster step ran (``make grade ROSTER=...``), its findings
(``roster.json``) are shown first.
"""
from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .. import store, style
from . import analysis
from .analysis import Graded

REPORT, REPORT_PDF = "report.html", "report.pdf"
COLUMNS = 4  # question histograms per row

CSS = """
body { font-family: system-ui, "DejaVu Sans", sans-serif; font-size: 13px; color: #222; max-width: 1000px; margin: 1em auto; padding: 0 1em; }
h1 { font-size: 22px; } h2 { font-size: 18px; border-bottom: 1px solid #ccc; margin-top: 1.6em; } h3 { font-size: 15px; }
table { border-collapse: collapse; margin: .4em 0 1em; font-size: 12px; max-width: 100%; }
td, th { border: 1px solid #ccc; padding: 2px 6px; overflow-wrap: anywhere; vertical-align: top; }
th { background: #f2f2f2; } td.num { text-align: right; } img { max-width: 100%; height: auto; display: block; margin: .3em 0; }
.note { color: #555; } .flag { color: #D55E00; font-weight: 600; } .hidden { color: #882255; }
"""


def figure_tag(fig: Figure, alt: str) -> str:
    """The figure as an inline PNG ``<img>`` (base64): the page needs no other file."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"<img class='figure' alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


def _figure(nrows: int, ncols: int, height: float) -> tuple[Figure, np.ndarray]:
    style.apply_style()
    fig = Figure(figsize=style.fit_figsize(style.MAX_WIDTH_IN, height * nrows), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def question_histograms(table: pd.DataFrame, questions: tuple[dict, ...]) -> Figure:
    """One small histogram of scores per question (written questions: the marks given so far)."""
    nrows = math.ceil(len(questions) / COLUMNS)
    fig, axes = _figure(nrows, COLUMNS, 1.7)
    for ax, q in zip(axes.flat, questions):
        s = table[q["name"]].dropna()
        bins = np.linspace(0, q["points"], min(int(q["points"] * 2), 12) + 2) if q["points"] else 5
        color = style.PALETTE[4] if q["manual"] else style.PALETTE[0]
        ax.hist(s, bins=bins, color=color, edgecolor="white")
        ax.set_title(f"{q['name']} ({'written' if q['manual'] else 'code'}, {q['points']:g} pt)", fontsize=8.5)
        ax.tick_params(labelsize=8)
        if s.empty:
            ax.text(0.5, 0.5, "no marks yet", ha="center", va="center", transform=ax.transAxes, fontsize=8)
            ax.set_yticks([])
            ax.set_xlim(0, q["points"] or 1)
    for ax in list(axes.flat)[len(questions):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("rows", fontsize=8)
    return fig


def totals_histogram(totals: pd.DataFrame) -> Figure:
    """The distribution of the autograded points and of the totals so far."""
    fig, axes = _figure(1, 1, 2.6)
    ax = axes[0, 0]
    top = float(totals["possible"].max()) if len(totals) else 1.0
    bins = np.linspace(0, top, min(int(top) + 1, 30) + 1)
    ax.hist([totals["autograded"], totals["total"]], bins=bins, label=["autograded", "total so far"],
            color=[style.PALETTE[0], style.PALETTE[1]])
    ax.set_xlabel(f"points (of {top:g})")
    ax.set_ylabel("rows")
    style.legend(ax, fontsize="small")
    return fig


def failure_bars(tests: pd.DataFrame) -> Figure:
    """The share of rows failing each test, public and hidden in two colours."""
    n = max(len(tests), 1)
    fig = Figure(figsize=style.fit_figsize(style.MAX_WIDTH_IN, min(0.22 * n + 0.8, style.MAX_HEIGHT_IN)),
                 layout="constrained")
    style.apply_style()
    ax = fig.subplots()
    labels = [f"{r.question}: {r.test}" for r in tests.itertuples()]
    colors = [style.PALETTE[7] if h else style.PALETTE[0] for h in tests["hidden"]]
    ax.barh(range(len(tests)), tests["share_failing"], color=colors)
    ax.set_yticks(range(len(tests)), labels, fontsize=7.5)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of graded rows failing (dark red: hidden test)")
    return fig


def _table(df: pd.DataFrame, formats: dict[str, str] | None = None) -> str:
    """A DataFrame as an HTML table, numbers formatted, text escaped."""
    if df.empty:
        return "<p class='note'>None.</p>"
    formats = formats or {}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in df.itertuples(index=False):
        cells = []
        for col, value in zip(df.columns, row):
            if col in formats and isinstance(value, (int, float, np.floating)) and not pd.isna(value):
                cells.append(f"<td class='num'>{formats[col].format(value)}</td>")
            elif isinstance(value, float) and pd.isna(value):
                cells.append("<td class='num'>—</td>")
            else:
                cells.append(f"<td>{html.escape(str(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _relabel(df: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """The same table with some columns relabelled (for the page)."""
    return df.set_axis([labels.get(c, c) for c in df.columns], axis=1)


def _messages(messages: list[tuple[str, int]]) -> str:
    return "; ".join(f"{text} (×{count})" for text, count in messages) or "—"


def sheet_section(g: Graded, sheet: str) -> str:
    """One sheet's part of the report: questions, tests, hidden-only failures, totals, rows waiting."""
    questions = g.sheets[sheet].questions
    table = analysis.scores(g, sheet)
    parts = [f"<h2>{html.escape(sheet)} ({len(table)} graded rows)</h2>"]
    if table.empty:
        return parts[0] + "<p class='note'>No graded row for this sheet.</p>"
    qt = analysis.questions(g, sheet)
    parts += ["<h3>Questions</h3>",
              "<p class='note'>Difficulty: mean / points (1: everyone got everything). Discrimination: point-biserial "
              "r (scipy) of the question's score with the rest of the total; for partial credit this is the "
              "item-rest Pearson correlation. Near 0 or negative: the question does not tell strong from weak "
              "work. — where the scores do not vary.</p>",
              _table(qt, {"points": "{:g}", "mean": "{:.2f}", "difficulty": "{:.2f}", "discrimination": "{:.2f}"}),
              figure_tag(question_histograms(table, questions), f"{sheet}: score distribution per question")]
    tests = analysis.tests(g, sheet)
    if not tests.empty:
        shown = tests.assign(kind=np.where(tests["hidden"], "hidden", "public"))
        shown = shown[["question", "test", "kind", "run", "failed", "share_failing", "flag"]]
        failing = [f"<li><b>{html.escape(r.question)}: {html.escape(r.test)}</b> — {html.escape(_messages(r.messages))}"
                   "</li>" for r in tests.itertuples() if r.failed]
        parts += ["<h3>Tests</h3>",
                  "<p class='note'>Share failing among graded rows; flags mark tests that no one or everyone passes "
                  "(a broken test, or instructions that mislead; or a test that checks nothing).</p>",
                  figure_tag(failure_bars(tests), f"{sheet}: share failing per test"),
                  _table(_relabel(shown, {"share_failing": "share failing"}), {"share failing": "{:.0%}"}),
                  "<h3>Commonest failure messages</h3><p class='note'>Per test, the three commonest last lines of "
                  "its failures, with how often each came.</p>",
                  f"<ul class='messages'>{''.join(failing)}</ul>" if failing else "<p class='note'>None.</p>"]
    hidden = analysis.hidden_only(g, sheet)
    parts += ["<h3>Passed every public test, failed a hidden one</h3>",
              "<p class='note'>These students saw all public checks pass and still lost points: worth a word in "
              "the feedback.</p>"]
    if hidden.empty:
        parts.append("<p class='note'>None.</p>")
    else:
        counts = hidden.groupby("question", sort=False).size().reset_index(name="rows")
        parts += [_table(counts), _table(hidden)]
    totals = analysis.totals(g, sheet)
    desc = totals[["autograded", "total"]].describe().T[["mean", "std", "min", "50%", "max"]].reset_index()
    parts += ["<h3>Totals</h3>", figure_tag(totals_histogram(totals), f"{sheet}: distribution of totals"),
              _table(_relabel(desc, {"index": "", "50%": "median"}),
                     {c: "{:.2f}" for c in ("mean", "std", "min", "median", "max")})]
    waiting = analysis.waiting(g, sheet)
    column = analysis.marking_column(g.book)
    parts += [f"<h3>Waiting for written marks ({len(waiting)} rows)</h3>",
              "<p class='note'>" + (f"From the marking status column <code>{html.escape(column)}</code> and the "
                                    "written questions without a mark." if column else
                                    "Written questions whose gradebook cell holds no mark yet (<code>manual</code>).")
              + "</p>", _table(waiting)]
    return "\n".join(parts)


def roster_section(data: dict) -> str:
    """The roster step's findings: students with no submission, submissions matching no one, several submissions."""
    parts = ["<h2>Roster</h2>", f"<p class='note'>{data.get('students', 0)} students on the roster; "
             f"{data.get('matched', 0)} submissions matched.</p>"]
    missing = pd.DataFrame(data.get("missing", []), columns=["sheet", "student", "name", "email"])
    unknown = pd.DataFrame(data.get("unknown", []), columns=["submission", "sheet", "why"])
    several = pd.DataFrame([{"sheet": s["sheet"], "student": s["student"], "counts": s["counted"],
                             "not counted": ", ".join(s["ignored"])} for s in data.get("several", [])],
                           columns=["sheet", "student", "counts", "not counted"])
    unreadable = pd.DataFrame(data.get("unreadable", []), columns=["submission", "student", "why"])
    parts += [f"<h3>Students with no submission ({len(missing)})</h3>", _table(missing)]
    if not unreadable.empty:
        parts += [f"<p class='note'>Files that name a student but are no notebook of a sheet ({len(unreadable)}):</p>",
                  _table(unreadable)]
    parts += [f"<h3>Submissions matching no student ({len(unknown)})</h3>", _table(unknown),
              f"<h3>Students with several submissions ({len(several)})</h3>",
              "<p class='note'>The newest by collection time counts.</p>", _table(several)]
    return "\n".join(parts)


def render(g: Graded) -> str:
    """The whole report as one HTML page."""
    counts = g.book["status"].value_counts()
    roster = store.read_json(g.folder / "roster.json")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Grading report</title><style>{CSS}</style>"
             "</head><body><h1>Grading report</h1>",
             f"<p class='note'>{len(g.book)} rows ({', '.join(f'{n} {s}' for s, n in counts.items())}); "
             f"written {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC from gradebook.csv and gradebook.json."
             "</p>"]
    if isinstance(roster, dict):
        parts.append(roster_section(roster))
    for sheet in g.sheets:
        if (g.book["sheet"] == sheet).any():
            parts.append(sheet_section(g, sheet))
    parts.append("</body></html>")
    return "\n".join(parts)


def print_pdf(page: str) -> bytes:
    """The page printed to PDF by the kit's export (installed Chromium, network blocked)."""
    from ..export.browser import KitWebPDFExporter

    return KitWebPDFExporter().print_html(page)


def write(grades: Path, autograders: Path, pdf: bool = True) -> list[Path]:
    """Write ``report.html`` (and ``report.pdf``) into the grades folder; return what was written."""
    g = analysis.load(grades, autograders)
    page = render(g)
    written = [store.write_text(Path(grades) / REPORT, page)]
    if pdf:
        written.append(store.write_bytes(Path(grades) / REPORT_PDF, print_pdf(page)))
    return written

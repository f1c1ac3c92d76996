"""Page layout: fit a notebook's HTML to an A4 page and measure what still does not fit (the preflight).

Paper has no scroll bar, so anything wider than the text width is lost at the right margin.
The browser loads the page in a window exactly as wide as the printed text, so MathJax breaks
long display equations at the print width, then runs ``FIT_JS``, which

* rebuilds every ``pre`` line by line with a hanging indent: a wrapped code line continues
  four columns to the right of where the line started, so Python's indentation stays readable
  (the words stay whole, so ``pdftotext`` still finds them);
* lets table headers wrap and shrinks a wide table's type step by step down to ``MIN_TABLE_PT``;
* scales a display equation that MathJax could not break down to ``MIN_MATH_SCALE``;
* keeps short code blocks and outputs (up to ``KEEP_LINES`` lines) on one page;
* marks markdown cells that end in a heading, so the heading is kept with what follows;

and returns, for every code block, output and equation still wider than the text, a finding:
cell number, kind and by how much (``Finding``).  ``PRINT_CSS`` holds the page's print rules.
"""
from __future__ import annotations

from dataclasses import dataclass

# The page's geometry is the kit's one text width (helpers.style), which the figures are sized to as well.
from ..style import MARGIN_MM, PAPER, TEXT_WIDTH_MM

CSS_PX_PER_MM = 96 / 25.4
TEXT_WIDTH_PX = round(TEXT_WIDTH_MM * CSS_PX_PER_MM)     # the window the page is laid out in
MIN_TABLE_PT = 7.0       # below this a table is hard to read on paper
MIN_MATH_SCALE = 0.75    # an equation shrunk further prints its indices below ~7 pt
KEEP_LINES = 15          # code or text up to this many lines is not split across pages
TOLERANCE_PX = 2.0       # sub-pixel rounding is not a finding

PRINT_CSS = f"@page {{ size: {PAPER}; }}\n" + """
html, body { margin: 0 !important; padding: 0 !important; }
body, .jp-Notebook { padding: 0 !important; overflow: visible !important; }
.jp-Notebook { --jp-code-font-size: 8.5pt; --jp-content-font-size1: 10pt; }
/* Prompts ("In [3]:") take a sixth of the width and tell a reader of a finished run nothing. */
.jp-InputPrompt, .jp-OutputPrompt { display: none !important; }
.jp-Cell { padding: 2px 0 !important; }
.jp-OutputArea-output, .jp-RenderedHTMLCommon { overflow: visible !important; max-width: 100%; }
.jp-RenderedHTMLCommon, .jp-RenderedMarkdown { overflow-wrap: anywhere; padding-right: 0 !important; }
/* Code and text outputs: wrap instead of running off the page; kit-line gets its indent from FIT_JS. */
pre { white-space: pre-wrap !important; overflow-wrap: anywhere; overflow: visible !important;
      font-size: 8.5pt !important; line-height: 1.3 !important; }
.kit-line { display: block; min-height: 1.3em; }
/* Figures never wider than the text; a figure, a table or an output is never split across pages. */
img, svg { max-width: 100% !important; height: auto !important; }
.jp-RenderedImage, table, .MathJax_Display, .MJXc-display, .kit-title, .kit-keep {
  break-inside: avoid; page-break-inside: avoid; }
table.dataframe, .jp-RenderedHTMLCommon table { table-layout: auto !important; margin-left: 0 !important;
  font-size: 9pt; }
.jp-RenderedHTMLCommon td, .jp-RenderedHTMLCommon th { padding: 0.2em 0.45em !important; }
/* Headers may wrap anywhere; data cells only at spaces, so a number is never cut in two. */
table th, table td { overflow-wrap: normal !important; word-break: normal !important; }
table.kit-wrap th { white-space: normal !important; }
table.kit-wrap td { white-space: nowrap !important; }
table.kit-tight th, table.kit-tight td { padding: 0.1em 0.2em !important; }
h1, h2, h3, h4, h5, h6 { break-after: avoid; page-break-after: avoid; }
.kit-keep-with-next { break-after: avoid; page-break-after: avoid; }
/* A question's label (student notebooks): a thin rule above it; with --pagebreaks, a new page. */
h6.kit-question { font-size: 9pt; color: #444; border-top: 1px solid #999; padding-top: 3px; margin: 10px 0 2px 0; }
.jp-Cell[id^="cell-id=kit-question-break-"] { break-before: page; page-break-before: always; }
.kit-title { border: 1px solid #999; padding: 6px 10px; margin: 0 0 10px 0; font-size: 9pt; }
.kit-title table { border: none; margin: 0 !important; font-size: 9pt; }
.kit-title td { text-align: left !important; padding: 1px 12px 1px 0 !important; border: none; }
"""

# Runs in the page once MathJax has finished; returns the findings as a list of plain objects.
FIT_JS = """(opts) => {
  const textRight = document.documentElement.clientWidth;
  const HANG = 4;  // columns a wrapped line continues to the right of its start

  // 1. Every pre, line by line: leading spaces become padding, continuation lines hang.
  for (const pre of document.querySelectorAll("pre")) {
    if (pre.dataset.kitLines) continue;
    pre.dataset.kitLines = "1";
    const segments = [];   // [className, text] in order, newlines inside the texts
    const walk = (node, cls) => {
      for (const child of Array.from(node.childNodes)) {
        if (child.nodeType === Node.TEXT_NODE) segments.push([cls, child.textContent]);
        else if (child.nodeType === Node.ELEMENT_NODE) walk(child, child.className ? (cls + " " + child.className).trim() : cls);
      }
    };
    walk(pre, "");
    const lines = [[]];
    for (const [cls, text] of segments) {
      const parts = text.split("\\n");
      parts.forEach((part, i) => {
        if (i > 0) lines.push([]);
        if (part) lines[lines.length - 1].push([cls, part]);
      });
    }
    if (lines.length > 1 && lines[lines.length - 1].length === 0) lines.pop();
    pre.textContent = "";
    for (const line of lines) {
      const span = document.createElement("span");
      span.className = "kit-line";
      let indent = 0, started = false;
      for (let [cls, text] of line) {
        if (!started) {
          const stripped = text.replace(/^[ ]+/, "");
          indent += text.length - stripped.length;
          text = stripped;
          if (!text) continue;
          started = true;
        }
        const piece = cls ? document.createElement("span") : document.createTextNode(text);
        if (cls) { piece.className = cls; piece.textContent = text; }
        span.appendChild(piece);
      }
      span.style.paddingLeft = (indent + HANG) + "ch";
      span.style.textIndent = (-HANG) + "ch";
      pre.appendChild(span);
    }
  }

  const overflow = (el) => {
    const rect = el.getBoundingClientRect();
    return Math.max(rect.right, rect.left + el.scrollWidth) - textRight;
  };

  // 2. Tables: wrap headers, then shrink the type until the table fits or reaches the floor.
  for (const table of document.querySelectorAll("table")) {
    if (table.closest(".kit-title") || overflow(table) <= opts.tolerance) continue;
    table.classList.add("kit-wrap");
    // Headers like "samples_per_update" may break after "_" or "/" (a <wbr>, no character added).
    for (const th of table.querySelectorAll("th")) {
      const walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
      const texts = [];
      while (walker.nextNode()) texts.push(walker.currentNode);
      for (const node of texts) {
        const parts = node.textContent.split(/(?<=[_/])/);
        if (parts.length < 2) continue;
        const frag = document.createDocumentFragment();
        parts.forEach((part, i) => {
          if (i > 0) frag.appendChild(document.createElement("wbr"));
          frag.appendChild(document.createTextNode(part));
        });
        node.replaceWith(frag);
      }
    }
    let size = parseFloat(getComputedStyle(table).fontSize) * 0.75;   // px to pt
    while (overflow(table) > opts.tolerance && size > opts.minTablePt) {
      size = Math.max(size - 0.5, opts.minTablePt);
      table.style.fontSize = size + "pt";
    }
    if (overflow(table) > opts.tolerance) table.classList.add("kit-tight");   // last resort: less padding
  }

  // 3. Display equations MathJax could not break: scale them down, not below the floor.
  const equations = document.querySelectorAll(".MathJax_Display, .MJXc-display, .MathJax_SVG_Display");
  for (const eq of equations) {
    const wide = overflow(eq);
    if (wide <= opts.tolerance) continue;
    const width = eq.scrollWidth;
    const scale = Math.max((width - wide) / width, opts.minMathScale);
    eq.style.zoom = scale;
  }

  // 4. Keep short code blocks and outputs on one page; long ones may break rather than leave half a page blank.
  for (const block of document.querySelectorAll(".jp-InputArea, .jp-OutputArea-output")) {
    if (block.querySelectorAll(".kit-line").length <= opts.keepLines) block.classList.add("kit-keep");
  }

  // 5. Keep a heading with what follows it, also across cells.
  for (const md of document.querySelectorAll(".jp-RenderedMarkdown")) {
    const last = md.lastElementChild;
    if (last && /^H[1-6]$/.test(last.tagName)) md.closest(".jp-Cell")?.classList.add("kit-keep-with-next");
  }

  // 6. Preflight: whatever is still wider than the text.
  const findings = [];
  const cellOf = (el) => {
    const cell = el.closest(".jp-Cell");
    const match = cell && /kit-cell-(\\d+)/.exec(cell.id || "");
    return match ? parseInt(match[1]) : null;
  };
  const report = (el, kind) => {
    const wide = overflow(el);
    if (wide <= opts.tolerance) return;
    const shown = (el.querySelector("table") || el).textContent || "";
    findings.push({cell: cellOf(el), kind, px: wide, text: shown.replace(/\\s+/g, " ").trim().slice(0, 50)});
  };
  document.querySelectorAll(".jp-InputArea pre").forEach((el) => report(el, "code"));
  for (const out of document.querySelectorAll(".jp-OutputArea-output")) {
    const table = out.querySelector("table");
    report(out, table ? "table" : out.querySelector("img, svg") ? "figure" : "output");
  }
  document.querySelectorAll(".jp-RenderedMarkdown table").forEach((el) => report(el, "table"));
  equations.forEach((el) => report(el, "equation"));
  for (const md of document.querySelectorAll(".jp-RenderedMarkdown")) {
    for (const el of md.querySelectorAll(":scope > p, :scope > ul, :scope > ol, :scope > pre")) report(el, "text");
  }
  return findings;
}"""


@dataclass(frozen=True)
class Finding:
    """Something still wider than the printed text: where, what, by how much."""

    notebook: str
    cell: int | None
    kind: str
    overflow_mm: float
    text: str = ""

    def __str__(self) -> str:
        where = f"cell {self.cell}" if self.cell else "page"
        excerpt = f": {self.text!r}" if self.text else ""
        return f"{self.notebook} {where}: {self.kind} {self.overflow_mm:.1f} mm wider than the text{excerpt}"


def fit_options() -> dict:
    """The limits FIT_JS works to (passed into the page)."""
    return {"tolerance": TOLERANCE_PX, "minTablePt": MIN_TABLE_PT, "minMathScale": MIN_MATH_SCALE,
            "keepLines": KEEP_LINES}


def findings_from(raw: list[dict], notebook: str) -> list[Finding]:
    """Turn FIT_JS's measurements into findings, one per element, in page order."""
    return [Finding(notebook, item.get("cell"), item["kind"], round(item["px"] / CSS_PX_PER_MM, 1),
                    item.get("text", "")) for item in raw]


def pdf_margins() -> dict[str, str]:
    """The page margins in the form playwright's ``page.pdf`` takes."""
    return {side: f"{mm}mm" for side, mm in MARGIN_MM.items()}

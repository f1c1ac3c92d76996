"""The kit's page and figure style: one text width for the PDF and the figures, text at 8 pt or more.

The printed page is A4 with 14 mm margins; its text width (``TEXT_WIDTH_MM``) is the one the PDF export
lays its page out at (``helpers.export.layout``) and the one every figure is sized to (``MAX_WIDTH_IN``).
The exported PDF prints a figure at its true size (pixels / DPI; ``helpers.export.tidy``), so a figure
at most ``MAX_WIDTH_IN`` wide prints its fonts at the point sizes set here; a wider one would be shrunk
to the text width and its text with it.

``apply_style()`` sets the matplotlib defaults; the figure modules (``helpers.plotting``,
``helpers.optim_demos``) call it when they are imported, so figures a notebook draws with plain
matplotlib get it too. This module imports matplotlib only inside its functions: the export reads the
page geometry without loading it.
"""
from __future__ import annotations

# The printed page. The export lays out its HTML exactly this wide, so MathJax and tables break there.
PAPER = "A4"
PAPER_WIDTH_MM = 210.0
MARGIN_MM = {"top": 14.0, "bottom": 14.0, "left": 14.0, "right": 14.0}
TEXT_WIDTH_MM = PAPER_WIDTH_MM - MARGIN_MM["left"] - MARGIN_MM["right"]   # 182 mm
TEXT_WIDTH_IN = TEXT_WIDTH_MM / 25.4                                          # 7.17 in

# Figures stay a little narrower than the text: the tight bounding box can grow a figure past its
# nominal size (a legend beside the axes, long tick labels).
BBOX_SLACK_IN = 0.85
MAX_WIDTH_IN = round(TEXT_WIDTH_IN - BBOX_SLACK_IN, 1)   # 6.3 in
MAX_HEIGHT_IN = 8.5
MIN_HEIGHT_SCALE = 0.6     # a shrunk row of panels keeps at least this share of its height
MAX_LEGEND_ENTRIES = 6     # more than this and the legend goes beside the axes, not over the data

# Okabe-Ito's colour-blind-safe colours (without yellow, too pale on paper) and three more; each
# colour has its own dash pattern as well, so ten lines stay apart even printed in grey.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7",
           "#56B4E9", "#000000", "#882255", "#999933", "#7F7F7F")
DASHES = ("-", "--", "-.", ":", "-", "--", "-.", ":", "-", "--")

RC = {
    "figure.figsize": (6.0, 3.6),
    "figure.dpi": 100,
    "savefig.dpi": "figure",
    "font.size": 10,            # "small" (legends) is then 8.3 pt
    "axes.titlesize": 10.5,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 8.5,
    "legend.title_fontsize": 9,
    "legend.framealpha": 0.85,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.6,
    "image.cmap": "viridis",
}


def apply_style() -> None:
    """Set the kit's matplotlib defaults (idempotent)."""
    import matplotlib as mpl
    from cycler import cycler

    mpl.rcParams.update({**RC, "axes.prop_cycle": cycler(color=list(PALETTE)) + cycler(linestyle=list(DASHES))})


def fit_figsize(width: float, height: float) -> tuple[float, float]:
    """Shrink a figure size to the printed text width, keeping rows tall enough to read."""
    if width <= MAX_WIDTH_IN:
        return width, min(height, MAX_HEIGHT_IN)
    scale = MAX_WIDTH_IN / width
    return MAX_WIDTH_IN, min(height * max(scale, MIN_HEIGHT_SCALE), MAX_HEIGHT_IN)


def colors(n: int) -> list:
    """``n`` colours told apart on paper: the kit palette up to ten, tab20 (and b, c) beyond."""
    if n <= len(PALETTE):
        return list(PALETTE[:n])
    import matplotlib as mpl

    names = ["tab20"] if n <= 20 else ["tab20", "tab20b", "tab20c"]
    palette = [c for name in names for c in mpl.colormaps[name].colors]
    return [palette[i % len(palette)] for i in range(n)]


def legend(ax, **kwargs) -> None:
    """A legend over the data when it is short, beside the axes when it has many entries."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    if len(handles) > MAX_LEGEND_ENTRIES:
        kwargs.setdefault("loc", "upper left")
        kwargs.setdefault("bbox_to_anchor", (1.01, 1.0))
        kwargs.setdefault("borderaxespad", 0.0)
    ax.legend(handles, labels, **kwargs)

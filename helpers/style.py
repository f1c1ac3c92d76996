"""The kit's figure style: sized for an A4 page, text at 8 pt or more, lines told apart in print.

Applied once when ``helpers.plotting`` (or this module) is imported, so figures a notebook draws
with plain matplotlib get it too.  The exported PDF prints a figure at its true size (pixels / DPI;
``helpers.export.tidy``), so a figure at most ``MAX_WIDTH_IN`` wide prints its fonts at the point
sizes set here; a wider one would be shrunk to the text width and its text with it.
"""
from __future__ import annotations

import matplotlib as mpl
from cycler import cycler

# A4's text width in the exported PDF is 7.1 in (210 mm less 2 x 14 mm margins); a little less
# leaves room for the tight bounding box, which can grow a figure past its nominal size.
MAX_WIDTH_IN = 6.3
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
    "axes.prop_cycle": cycler(color=list(PALETTE)) + cycler(linestyle=list(DASHES)),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.6,
    "image.cmap": "viridis",
}


def apply_style() -> None:
    """Set the kit's matplotlib defaults (idempotent)."""
    mpl.rcParams.update(RC)


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


apply_style()

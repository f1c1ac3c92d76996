"""The sheets' smoke PDFs, as `make smoke` exports them: figures legible, nothing lost on paper.

`make smoke` executes every sheet in the smoke profile, exports it with ``--strict`` (so any
preflight finding already failed that step) into ``build/smoke-pdf`` and runs this module with
``KIT_SMOKE_PDF`` pointing there.  Without that variable the module is skipped: executing four
sheets does not belong in the unit tests.
"""
from __future__ import annotations

import base64
import os
from pathlib import Path

import nbformat
import pytest

from helpers.export.coverage import missing_from_pdf
from helpers.style import TEXT_WIDTH_IN
from helpers.export.tidy import png_size_inches

FOLDER = os.environ.get("KIT_SMOKE_PDF")
pytestmark = pytest.mark.skipif(not FOLDER, reason="set KIT_SMOKE_PDF to the smoke export (make smoke does)")


def _sheets() -> list[Path]:
    notebooks = sorted(Path(FOLDER or ".").glob("[0-9]*.ipynb"))
    assert notebooks, f"no executed sheets in {FOLDER}; run make smoke"
    return notebooks


def test_every_figure_prints_no_wider_than_the_text():
    too_wide = []
    for notebook in _sheets():
        nb = nbformat.read(notebook, as_version=4)
        for number, cell in enumerate(nb.cells, 1):
            for output in cell.get("outputs", []):
                png = output.get("data", {}).get("image/png")
                if png is None:
                    continue
                size = png_size_inches(base64.b64decode(png))
                assert size is not None, f"{notebook.name} cell {number}: PNG without a DPI"
                if size[0] > TEXT_WIDTH_IN:
                    too_wide.append(f"{notebook.name} cell {number}: {size[0]:.1f} in "
                                    f"(its text would print at {100 * TEXT_WIDTH_IN / size[0]:.0f}% size)")
    assert not too_wide, f"figures wider than the {TEXT_WIDTH_IN:.1f} in text width:\n" + "\n".join(too_wide)


def test_every_code_word_and_table_cell_is_in_the_pdf():
    missing = {nb.name: missing_from_pdf(nb, nb.with_suffix(".pdf")) for nb in _sheets()}
    assert not any(missing.values()), {name: lines[:10] for name, lines in missing.items() if lines}

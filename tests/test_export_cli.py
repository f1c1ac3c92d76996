"""The export command's settings are checked before any notebook runs; submit and reproduce."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from helpers.export.cli import main
from helpers.export.reproduce import write_reproduction


def _run(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _marker_sheet(tmp_path: Path) -> tuple[Path, Path]:
    """A notebook that leaves a file behind when it runs."""
    marker = tmp_path / "ran.txt"
    sheet = tmp_path / "s.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(f"open({str(marker)!r}, 'w').write('ran')")]), sheet)
    return sheet, marker


def test_out_that_is_a_file_is_a_clear_error(tmp_path):
    sheet, marker = _marker_sheet(tmp_path)
    (tmp_path / "build").write_text("not a folder")
    code, _, err = _run([str(sheet), "--out", str(tmp_path / "build"), "--profile", "smoke"])
    assert code == 2
    assert "--out" in err and "is a file, not a folder" in err and "Traceback" not in err
    assert not marker.exists()


def test_bad_chromium_path_is_found_before_any_notebook_runs(tmp_path, monkeypatch):
    sheet, marker = _marker_sheet(tmp_path)
    monkeypatch.setenv("CHROMIUM_PATH", str(tmp_path / "no-such-chrome"))
    code, _, err = _run([str(sheet), "--out", str(tmp_path / "pdf"), "--profile", "smoke"])
    assert code == 2 and "CHROMIUM_PATH" in err
    assert not marker.exists()


def _record(profile: str, rows: list[dict]) -> dict:
    return {"profile": profile, "device": "cpu", "wall_s": 754.2, "executed_at": "2026-11-24T10:00:00+00:00",
            "runs": {"trained": 12, "cached": 3}, "checks": [{"claim": "c", "ok": True, "values": {}}],
            "reference": rows, "seeds": [0], "cpu": "AMD EPYC 7B13", "cpu_cores": 2, "torch_threads": 2,
            "cpu_capability": "AVX2"}


def test_reproduction_document_collects_each_sheets_reference_rows(tmp_path):
    row = {"task": "6.1 Q1", "quantity": "test accuracy | best", "course reference": "0.88", "this run": "0.87",
           "profile": "full", "verdict": "reproduced"}
    one, two = tmp_path / "01.run.json", tmp_path / "02.run.json"
    one.write_text(json.dumps(_record("full", [row])))
    two.write_text(json.dumps(_record("full", [])))
    doc = write_reproduction({"01_a": one, "02_b": two}, tmp_path / "REPRODUCTION.md")
    text = doc.read_text()
    assert "## 01_a" in text and "## 02_b" in text
    assert "profile **full** · 2026-11-24 · device cpu · wall time 12 min 34 s" in text
    assert "claim checks: 1 of 1 hold · CPU AMD EPYC 7B13, 2 cores; torch 2 threads, AVX2" in text
    assert "| 6.1 Q1 | test accuracy \\| best | 0.88 | 0.87 | full | reproduced |" in text
    assert "recorded no course-reference table" in text

    row["this run"] = "0.91"
    one.write_text(json.dumps(_record("full", [row])))
    text = write_reproduction({"01_a": one}, doc).read_text()
    assert "| 0.91 |" in text and "| 0.87 |" not in text and "## 02_b" in text    # only sheet 1 replaced
    assert text.count("## 01_a") == 1

"""Submission bundles: a clean one verifies; an altered PDF, notebook or manifest is named."""
from __future__ import annotations

import contextlib
import io
import json
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from pypdf import PdfReader, PdfWriter

from helpers.export import build
from helpers.export.bundle import MANIFEST, NOTEBOOK_HASH_KEY, describe, make_bundle, sha256, verify
from helpers.export.cli import main


def _blank_pdf(nb, path, via) -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A bundle of a small executed sheet (printed as a blank page: the bundle does not care)."""
    folder = tmp_path_factory.mktemp("bundle")
    sheet = folder / "05_sheet.ipynb"
    nbformat.write(new_notebook(cells=[
        new_markdown_cell("# Sheet 5"), new_code_cell("from helpers.checks import check\nx = 3"),
        new_code_cell('check("x is three", x == 3, x=x)')]), sheet)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KIT_CACHE", str(folder / "cache"))
        built = build.build_sheet(sheet, folder / "pdf", _blank_pdf, profile="smoke", timeout=120)
    return make_bundle(built.notebook, built.pdf, folder / "submit" / "05_sheet.zip")


def _altered(bundle: Path, tmp_path: Path, name: str, change) -> Path:
    """A copy of the bundle with member ``name`` replaced by change(old bytes)."""
    target = tmp_path / bundle.name
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            dst.writestr(item, change(data) if item == name else data)
    return target


def _problems(path: Path) -> str:
    return "\n".join(verify(path)[1])


def test_clean_bundle_verifies_and_reports_the_run(bundle):
    report, problems = verify(bundle)
    assert problems == []
    text = "\n".join(report)
    assert "profile smoke" in text and "ran top to bottom in one kernel (execution counts 1..3)" in text
    assert "no cell raised an error" in text and "claim checks: 1 of 1 hold" in text


def test_manifest_holds_hashes_versions_and_cell_durations(bundle):
    with zipfile.ZipFile(bundle) as zf:
        manifest = json.loads(zf.read(MANIFEST))
        nb_bytes, pdf_bytes = zf.read("05_sheet.ipynb"), zf.read("05_sheet.pdf")
    assert manifest["files"]["notebook"]["sha256"] == sha256(nb_bytes)
    assert manifest["files"]["pdf"]["sha256"] == sha256(pdf_bytes)
    assert PdfReader(io.BytesIO(pdf_bytes)).metadata[NOTEBOOK_HASH_KEY] == sha256(nb_bytes)
    assert manifest["versions"]["python"] and "torch" in manifest["versions"]
    assert set(manifest["git"]) == {"commit", "dirty"}
    assert manifest["profile"] == "smoke" and manifest["top_to_bottom"] and manifest["runs"] == {"trained": 0, "cached": 0}
    assert [c["execution_count"] for c in manifest["cells"]] == [1, 2, 3]
    assert all(c["duration_s"] is not None for c in manifest["cells"])


def test_altered_pdf_is_named(bundle, tmp_path):
    def retitled(pdf: bytes) -> bytes:
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
        writer.add_blank_page(width=595, height=842)
        out = io.BytesIO()
        writer.write(out)
        return out.getvalue()
    problems = _problems(_altered(bundle, tmp_path, "05_sheet.pdf", retitled))
    assert "PDF 05_sheet.pdf changed" in problems
    assert "notebook" not in problems.replace("does not belong to notebook", "")


def test_altered_notebook_is_named_and_no_longer_matches_its_pdf(bundle, tmp_path):
    problems = _problems(_altered(bundle, tmp_path, "05_sheet.ipynb", lambda b: b.replace(b"x = 3", b"x = 4")))
    assert "notebook 05_sheet.ipynb changed" in problems
    assert "PDF 05_sheet.pdf does not belong to notebook 05_sheet.ipynb" in problems


def test_notebook_swapped_with_a_matching_manifest_hash_is_caught_by_the_pdf(bundle, tmp_path):
    with zipfile.ZipFile(bundle) as zf:
        new_nb = zf.read("05_sheet.ipynb").replace(b"x = 3", b"x = 4")
    def rehash(manifest: bytes) -> bytes:
        data = json.loads(manifest)
        data["files"]["notebook"]["sha256"] = sha256(new_nb)
        return json.dumps(data).encode()
    rehashed = _altered(bundle, tmp_path, MANIFEST, rehash)
    (tmp_path / "b").mkdir()
    problems = _problems(_altered(rehashed, tmp_path / "b", "05_sheet.ipynb", lambda _: new_nb))
    assert "does not belong to notebook" in problems and "changed" not in problems


def test_altered_manifest_is_named(bundle, tmp_path):
    def promoted(manifest: bytes) -> bytes:
        data = json.loads(manifest)
        data["profile"], data["runs"]["cached"] = "full", 99
        return json.dumps(data).encode()
    problems = _problems(_altered(bundle, tmp_path, MANIFEST, promoted))
    assert "manifest field 'profile' does not match the notebook (manifest: full, notebook: smoke)" in problems
    assert "manifest field 'runs'" in problems


def test_verify_command_exits_nonzero_naming_the_mismatch(bundle, tmp_path):
    bad = _altered(bundle, tmp_path, "05_sheet.pdf", lambda b: b + b"%tampered\n")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["verify", str(bundle)]) == 0
        assert main(["verify", str(bad)]) == 1
    assert "MISMATCH PDF 05_sheet.pdf changed" in stdout.getvalue()


def test_out_of_order_or_failed_cells_are_reported():
    nb = {"cells": [{"cell_type": "code", "source": s, "execution_count": n, "metadata": {}, "outputs": out}
                    for s, n, out in [("a", 1, []), ("b", 3, []), ("c", 2, [{"output_type": "error"}])]],
          "metadata": {}}
    described = describe(nb)
    assert not described["top_to_bottom"] and described["errors"] == [3]


def test_make_bundle_refuses_a_pdf_of_another_notebook(bundle, tmp_path):
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(tmp_path)
    other = tmp_path / "other.ipynb"
    other.write_bytes((tmp_path / "05_sheet.ipynb").read_bytes().replace(b"x = 3", b"x = 5"))
    with pytest.raises(ValueError, match="was not printed from"):
        make_bundle(other, tmp_path / "05_sheet.pdf", tmp_path / "x.zip")

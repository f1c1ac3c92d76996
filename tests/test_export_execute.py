"""Executing a sheet: progress per cell, the run record, timeouts named, relative paths pinned."""
from __future__ import annotations

import io
from pathlib import Path

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from helpers import machine
from helpers.export.execute import NotebookFailed, execute_notebook, pin_kit_paths


def _write(path: Path, *cells) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=list(cells)), path)
    return path


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """One small sheet with a claim check, executed once with progress captured."""
    folder = tmp_path_factory.mktemp("sheet")
    path = _write(folder / "07_checks.ipynb",
                  new_markdown_cell("# Sheet 7"),
                  new_code_cell("from helpers.checks import check\nfrom helpers.config import seed_everything\n"
                                "import helpers.device  # sets torch's threads from KIT_THREADS"),
                  new_code_cell("seed_everything(3)\nx = 2 + 2"),
                  new_code_cell('check("two and two make four", x == 4, x=x)\ncheck("x is odd", x % 2 == 1, x=x)'))
    progress = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KIT_CACHE", str(folder / "cache"))
        mp.setenv("KIT_THREADS", "2")
        nb = execute_notebook(path, profile="smoke", timeout=120, progress=progress)
    return nb, progress.getvalue()


def test_progress_prints_one_line_per_code_cell_with_its_first_line(ran):
    _, progress = ran
    lines = progress.splitlines()
    assert len(lines) == 4, lines          # three code cells and the run record
    assert "07_checks  cell 2/4" in lines[0] and "from helpers.checks import check" in lines[0]
    assert "cell 3/4" in lines[1] and "seed_everything(3)" in lines[1]
    assert "cell 4/4" in lines[2] and "run record" in lines[3]
    assert all(line.split()[3].endswith("s") for line in lines)      # elapsed seconds


def test_each_cell_keeps_its_duration(ran):
    nb, _ = ran
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.metadata["kit"]["duration_s"] >= 0 for c in code)
    assert [c.execution_count for c in code] == [1, 2, 3, 4]


def test_run_record_is_shown_and_saved_in_the_notebook(ran):
    nb, _ = ran
    record = nb.metadata["kit"]["record"]
    assert record["profile"] == "smoke" and nb.metadata["kit"]["profile"] == "smoke"
    assert [(c["claim"], c["ok"]) for c in record["checks"]] == [("two and two make four", True), ("x is odd", False)]
    assert record["seeds"] == [3] and record["runs"] == {"trained": 0, "cached": 0}
    assert record["device"]
    # The machine, so that a number that differs between two machines can be traced.
    assert record["cpu"] == machine.cpu_model() and record["torch_threads"] == 2
    assert record["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    shown = "".join(str(o.get("data", {}).get("text/html", "")) for o in nb.cells[-1].outputs)
    assert "Run record" in shown and "two and two make four" in shown and "✗" in shown
    assert machine.label(record) in shown and "torch 2 threads" in shown
    assert nb.metadata["kit"]["environment"]["versions"]["python"]


def test_kernel_tcp_warning_is_not_shown(tmp_path, capfd):
    path = _write(tmp_path / "a.ipynb", new_code_cell("1 + 1"))
    execute_notebook(path, timeout=60, progress=None, record=False)
    assert "without encryption" not in capfd.readouterr().err


def test_timeout_names_the_cell_and_the_limit(tmp_path, capfd):
    path = _write(tmp_path / "slow.ipynb", new_markdown_cell("# slow"), new_code_cell("x = 1"),
                  new_code_cell("import time\ntime.sleep(60)"))
    with pytest.raises(NotebookFailed) as failed:
        execute_notebook(path, timeout=2, progress=None, record=False)
    message = str(failed.value)
    assert "slow.ipynb: cell 3 of 3 timed out after 2 s" in message
    assert "| time.sleep(60)" in message
    err = capfd.readouterr().err
    assert "KeyboardInterrupt" not in message and "ZMQError" not in err and "Traceback" not in err


def test_relative_kit_paths_are_resolved_against_the_starting_folder(tmp_path, monkeypatch):
    sheet = _write(tmp_path / "notebooks" / "env.ipynb",
                   new_code_cell("import os\nprint(os.environ['KIT_DATA'])\nprint(os.environ['KIT_CACHE'])"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KIT_DATA", "mydata")
    monkeypatch.setenv("KIT_CACHE", "mycache")
    nb = execute_notebook(sheet, timeout=60, progress=None, record=False)
    printed = nb.cells[0].outputs[0].text.split()
    assert printed == [str(tmp_path / "mydata"), str(tmp_path / "mycache")]


def test_pin_kit_paths_keeps_absolute_and_unset_ones():
    env = {"KIT_DATA": "/abs/data", "KIT_CACHE": "rel"}
    pin_kit_paths(env)
    assert env["KIT_DATA"] == "/abs/data" and Path(env["KIT_CACHE"]).is_absolute()
    assert "KIT_SHARED_DATA" not in env

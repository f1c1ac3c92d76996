"""Sweeps across processes: three `python -m helpers.sweeps worker` processes on one study, on a journal file and
on a real PostgreSQL server; the refusals and messages around them.

Each worker's objective waits at a gate (a file) until every worker holds a running trial, so the three really
work at once; the tests then check what the issue asks: a 12-point grid gets 12 distinct trials, each run once,
and a TPE study stops at its budget.
"""
from __future__ import annotations

import collections
import contextlib
import glob
import os
import shutil
import socket
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import optuna
import pytest

from helpers.sweep_storage import SweepStorageError, resolve
from helpers.sweeps import (Categorical, IntRange, LogUniform, ObjectiveNotImportableError, StudyMismatchError,
                            main, open_sweep, run_sweep)

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
GRID = {"width": Categorical([8, 16, 32]), "depth": IntRange(1, 4)}   # 12 points
OBJECTIVES = '''
"""Sweep objectives of the worker tests: a .py file beside the "notebook", as the README tells a course."""
import os
import time
from pathlib import Path

from helpers.history import History


def objective(params, number):
    """Tiny: the loss is a function of the point. Each call waits at SWEEP_GATE and logs itself to SWEEP_LOG."""
    gate = os.environ.get("SWEEP_GATE")
    deadline = time.monotonic() + 120
    while gate and not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    loss = sum(float(v) for v in params.values()) / 100
    with open(os.environ["SWEEP_LOG"], "a") as log:   # one short append per call: lines do not interleave
        log.write(f"{os.getpid()} {sorted(params.items())}\\n")
    history = History()
    history.append_epoch(epoch=1, train_loss=loss, val_loss=loss)
    return history
'''


@pytest.fixture
def objectives(tmp_path, monkeypatch):
    """The module ``sweep_objectives`` in a folder of its own, importable here and in the workers."""
    folder = tmp_path / "course"
    folder.mkdir()
    (folder / "sweep_objectives.py").write_text(OBJECTIVES)
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop("sweep_objectives", None)
    import sweep_objectives

    monkeypatch.setenv("SWEEP_LOG", str(tmp_path / "calls.log"))
    yield sweep_objectives
    sys.modules.pop("sweep_objectives", None)


def _postgres_bin() -> Path | None:
    """The folder of PostgreSQL's server programs: on PATH, else where Debian's postgresql package puts them."""
    found = shutil.which("pg_ctl")
    candidates = [found] if found else sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    for pg_ctl in candidates:
        if (Path(pg_ctl).parent / "initdb").is_file():
            return Path(pg_ctl).parent
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres_server():
    """Start a throw-away PostgreSQL server (initdb + pg_ctl in a temp folder, on a free localhost port); yield its URL."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL's server programs (initdb, pg_ctl) are not installed: apt-get install postgresql "
                    "(.ci/run installs it)")
    folder = Path(tempfile.mkdtemp(prefix="kit-pg-"))
    as_user: dict = {}
    if os.geteuid() == 0:  # the server refuses to run as root: run it as nobody, in a folder nobody owns
        import pwd

        nobody = pwd.getpwnam("nobody")
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
        as_user = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
    env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "LANG": "C"}
    port, data = _free_port(), folder / "data"

    def pg(*args: str) -> None:
        proc = subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=folder, env=env, capture_output=True,
                              text=True, timeout=120, **as_user)
        assert proc.returncode == 0, f"{args[0]} failed:\n{proc.stdout}\n{proc.stderr}"

    try:
        pg("initdb", "-D", str(data), "-U", "kit", "--auth=trust", "-E", "UTF8", "--no-sync")
        pg("pg_ctl", "-D", str(data), "-l", str(folder / "server.log"), "-w", "-t", "60", "-o",
           f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        yield f"postgresql://kit@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            pg("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres():
    """This module's PostgreSQL server; each test uses study names of its own."""
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["journal", "postgresql"])
def storage(request, tmp_path):
    """A storage several processes share: an optuna journal file, or a database on the PostgreSQL server."""
    if request.param == "journal":
        return str(tmp_path / "sweeps.journal")
    return request.getfixturevalue("postgres")


def calls(tmp_path: Path) -> list[tuple[str, str]]:
    """(process id, point) of every objective call."""
    lines = (tmp_path / "calls.log").read_text().splitlines()
    return [tuple(line.split(" ", 1)) for line in lines]


def start_workers(study: str, storage: str, gate: Path, n: int = 3) -> list[subprocess.Popen]:
    """``n`` worker processes, as a course starts them on its machines."""
    env = {**os.environ, "SWEEP_GATE": str(gate), "PYTHONPATH": str(REPO)}
    return [subprocess.Popen([sys.executable, "-m", "helpers.sweeps", "worker", study, "--storage", storage, "--quiet"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(n)]


def running(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))


def open_gate_when_running(study: optuna.Study, gate: Path, n: int, timeout: float = 120) -> None:
    """Wait until ``n`` trials run at once (every worker holds one), then let them all go on."""
    deadline = time.monotonic() + timeout
    while len(running(study)) < n:
        assert time.monotonic() < deadline, f"{n} workers never ran at once: {len(running(study))} running"
        time.sleep(0.05)
    gate.touch()


def finish(workers: list[subprocess.Popen]) -> list[str]:
    """Wait for the workers; each must end well. Their output, for messages."""
    outputs = []
    for proc in workers:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, f"worker exited with {proc.returncode}:\n{out}\n{err}"
        outputs.append(out)
    return outputs


def test_three_workers_visit_each_grid_point_once(objectives, storage, tmp_path):
    study = open_sweep(objectives.objective, GRID, n_trials=None, sampler="grid", storage=storage, study_name="grid12")
    gate = tmp_path / "gate"
    workers = start_workers("grid12", storage, gate)
    open_gate_when_running(study, gate, 3)
    outputs = finish(workers)
    trials = study.get_trials(deepcopy=False)
    points = [(t.params["width"], t.params["depth"]) for t in trials]
    assert len(trials) == 12 and len(set(points)) == 12, f"12 distinct trials, got {sorted(points)}"
    assert {t.state.name for t in trials} == {"COMPLETE"}
    made = calls(tmp_path)
    assert len(made) == 12 and len({point for _, point in made}) == 12, "each point's objective ran once"
    assert len({pid for pid, _ in made}) == 3, "all three workers ran trials"
    assert len({t.user_attrs["worker"] for t in trials}) == 3
    assert sum(int(out.split("ran ")[1].split()[0]) for out in outputs) == 12, outputs


def test_three_workers_stop_a_tpe_study_at_its_budget(objectives, storage, tmp_path):
    study = open_sweep(objectives.objective, {"lr": LogUniform(1e-4, 1.0), "width": IntRange(4, 64)}, n_trials=10,
                       sampler="tpe", storage=storage, study_name="tpe10")
    gate = tmp_path / "gate"
    workers = start_workers("tpe10", storage, gate)
    open_gate_when_running(study, gate, 3)
    finish(workers)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 10, "no trial past the budget is started"
    assert collections.Counter(t.state.name for t in trials) == {"COMPLETE": 10}
    assert len(calls(tmp_path)) == 10
    assert len({(t.params["lr"], t.params["width"]) for t in trials}) == 10, "workers draw distinct configurations"
    # Started again, a worker finds the budget met and runs nothing.
    again = start_workers("tpe10", storage, gate, n=1)
    assert "ran 0 trials; 10 of 10 finished" in finish(again)[0]


def test_a_killed_worker_loses_no_trial(objectives, tmp_path):
    """A worker killed mid-trial: another worker on the machine fails its trial and runs the point again."""
    storage = str(tmp_path / "sweeps.journal")
    study = open_sweep(objectives.objective, GRID, n_trials=None, sampler="grid", storage=storage, study_name="kill")
    gate = tmp_path / "gate"
    workers = start_workers("kill", storage, gate)
    deadline = time.monotonic() + 120
    while len(running(study)) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    victim_trial = running(study)[0]
    host, _, pid = victim_trial.user_attrs["worker"].rpartition(":")
    victim = next(p for p in workers if p.pid == int(pid))
    victim.send_signal(signal.SIGKILL)
    victim.wait()   # reaped: its process id is gone, as after a crash
    gate.touch()
    finish([p for p in workers if p is not victim])
    trials = study.get_trials(deepcopy=False)
    complete = [(t.params["width"], t.params["depth"]) for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 12 and len(set(complete)) == 12
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert [t.number for t in failed] == [victim_trial.number], "only the killed worker's trial failed"
    assert (failed[0].params["width"], failed[0].params["depth"]) in complete, "its point ran again"


def test_run_sweep_with_n_jobs_shares_the_grid_with_its_worker_processes(objectives, tmp_path, monkeypatch):
    storage = str(tmp_path / "sweeps.journal")
    gate = tmp_path / "gate"
    monkeypatch.setenv("SWEEP_GATE", str(gate))
    probe = open_sweep(objectives.objective, GRID, n_trials=None, sampler="grid", storage=storage, study_name="jobs")
    opener = threading.Thread(target=open_gate_when_running, args=(probe, gate, 3), daemon=True)
    opener.start()
    study = run_sweep(objectives.objective, GRID, n_trials=None, sampler="grid", storage=storage, study_name="jobs",
                      n_jobs=3, quiet=True)
    opener.join(timeout=5)
    points = [(t.params["width"], t.params["depth"]) for t in study.trials]
    assert len(points) == 12 and len(set(points)) == 12
    assert len({pid for pid, _ in calls(tmp_path)}) == 3, "this process and two worker processes"


# --- refusals: what goes wrong, which setting, how to fix it -------------------------------------------------
def test_parallel_workers_on_sqlite_are_refused_naming_the_journal_file(objectives, tmp_path):
    with pytest.raises(SweepStorageError, match=r"n_jobs=2 worker processes.*SQLite.*serves one process.*\.journal"):
        run_sweep(objectives.objective, GRID, n_trials=None, sampler="grid", study_name="s", n_jobs=2, quiet=True)
    with pytest.raises(SweepStorageError, match="memory"):
        run_sweep(objectives.objective, GRID, n_trials=None, sampler="grid", storage="memory", n_jobs=2, quiet=True)


def test_a_worker_on_sqlite_is_refused(objectives, capsys):
    open_sweep(objectives.objective, GRID, n_trials=None, sampler="grid", study_name="s")  # the default SQLite file
    assert main(["worker", "s"]) == 1
    err = capsys.readouterr().err
    assert "SQLite database" in err and "serves one process" in err and "KIT_SWEEP_STORAGE" in err


def test_kit_sweep_storage_names_the_storage_of_every_sweep(objectives, tmp_path, monkeypatch):
    monkeypatch.setenv("KIT_SWEEP_STORAGE", str(tmp_path / "all.journal"))
    study = run_sweep(objectives.objective, GRID, n_trials=2, sampler="grid", study_name="env", quiet=True)
    assert resolve(None, "env").kind == "journal" and (tmp_path / "all.journal").stat().st_size > 0
    assert len(study.trials) == 2


def test_an_objective_defined_in_the_notebook_names_the_fix(notebook, tmp_path, capsys):
    notebook.namespace["History"] = __import__("helpers.history", fromlist=["History"]).History
    notebook.run("def objective(params, number):\n    h = History()\n"
                 "    h.append_epoch(epoch=1, val_loss=params['width'])\n    return h\n")
    storage = str(tmp_path / "sweeps.journal")
    with pytest.raises(ObjectiveNotImportableError, match=r"defined in the notebook.*\.py file next to the notebook"):
        run_sweep(notebook["objective"], GRID, n_trials=2, sampler="grid", storage=storage, study_name="nb", n_jobs=2)
    run_sweep(notebook["objective"], GRID, n_trials=2, sampler="grid", storage=storage, study_name="nb", quiet=True)
    assert main(["worker", "nb", "--storage", storage]) == 1
    err = capsys.readouterr().err
    assert "cannot run in a worker process" in err and "defined in the notebook" in err and ".py file" in err


def test_a_worker_with_other_code_refuses_to_mix_its_trials_in(objectives, tmp_path):
    storage = str(tmp_path / "sweeps.journal")
    open_sweep(objectives.objective, GRID, n_trials=None, sampler="grid", storage=storage, study_name="v")
    module = Path(objectives.__file__)
    module.write_text(module.read_text().replace("/ 100", "/ 1000"))   # this machine's checkout differs
    proc = subprocess.run([sys.executable, "-m", "helpers.sweeps", "worker", "v", "--storage", storage],
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "This machine's code computes v@" in proc.stderr and "same commit" in proc.stderr
    assert not (tmp_path / "calls.log").exists()


def test_an_unknown_study_lists_what_the_storage_holds(objectives, tmp_path, capsys):
    storage = str(tmp_path / "sweeps.journal")
    open_sweep(objectives.objective, GRID, n_trials=None, sampler="grid", storage=storage, study_name="known")
    assert main(["worker", "unknown", "--storage", storage]) == 1
    err = capsys.readouterr().err
    assert "No sweep 'unknown'" in err and "known@" in err and "Start the sweep first" in err


def test_a_changed_space_is_refused_on_postgresql_too(objectives, postgres):
    open_sweep(objectives.objective, GRID, n_trials=None, sampler="grid", storage=postgres, study_name="fp")
    with pytest.raises(StudyMismatchError, match=r"'fp' in postgresql://kit@.*search space"):
        open_sweep(objectives.objective, {"width": Categorical([8, 16])}, n_trials=None, sampler="grid",
                   storage=postgres, study_name="fp")

"""A sandbox per submission, with bubblewrap: what the student's code may see, write, start and use.

Inside, the submission sees the Python environment and the student kit read-only, a private ``/tmp``, and
one writable folder of its own; not the network, not the instructor's masters or autograders, not the class's
other submissions, not home folders. It runs in its own PID namespace, so nothing it starts outlives it, as a
user id of its own (when grading as root), under limits on memory, processes and file size.

Where no sandbox can be had (macOS, Windows, no bubblewrap, user namespaces off), ``unavailable()`` says why,
and grading runs the submission as a plain process (``make grade`` says so at the start and in the gradebook).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

WORKDIR = "/submission"  # the submission's own folder, as it sees it
KIT = "/kit"             # the student kit (helpers/), on PYTHONPATH
UID_BASE = 61000         # grading as root: each slot runs as its own unprivileged user id from here


@dataclass(frozen=True)
class Limits:
    """What one submission may use."""

    memory_bytes: int = 4 * 1024 ** 3     # address space of each process
    processes: int = 256                  # processes and threads of its user id
    file_bytes: int = 64 * 1024 ** 2      # the largest file it may write
    output_bytes: int = 20 * 1024 ** 2    # what its cells may print, in all

    def describe(self, which: str) -> str:
        """The limit ``which`` (memory, processes, file, output) as a row's note says it."""
        return {"memory": f"out of memory (limit {self.memory_bytes / 1024 ** 3:g} GB)",
                "processes": f"too many processes (limit {self.processes})",
                "file": f"wrote a file past the size limit ({self.file_bytes / 1024 ** 2:g} MB)",
                "output": f"printed more than the output limit ({self.output_bytes / 1024 ** 2:g} MB)"}[which]


def _bwrap() -> str | None:
    return shutil.which("bwrap")


@lru_cache(maxsize=1)
def unavailable() -> str | None:
    """Why submissions cannot be sandboxed here (one sentence), or None when they can."""
    if not sys.platform.startswith("linux"):
        return f"no sandbox on {sys.platform} (bubblewrap is Linux only)"
    if _bwrap() is None:
        return "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    probe = subprocess.run(command(["true"], workdir=Path("/"), kit=None, uid=None, limits=Limits(), trial=True),
                           capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        return f"bubblewrap cannot create namespaces here ({probe.stderr.strip()[:160] or probe.returncode})"
    return None


def _ancestors(path: Path) -> list[str]:
    return [str(p) for p in reversed(path.parents) if str(p) != "/"]


def _ro_binds() -> list[tuple[str, str]]:
    """The read-only system paths: the OS's programs and libraries, and this Python and its environment."""
    paths = ["/usr", "/etc/ld.so.cache", "/etc/alternatives", "/etc/fonts", "/etc/localtime",
             sys.base_prefix, sys.prefix, os.path.realpath(sys.executable)]
    seen, binds = set(), []
    for p in paths:
        if os.path.exists(p) and p not in seen:
            seen.add(p)
            binds.append((p, p))
    return binds


def command(argv: list[str], *, workdir: Path, kit: Path | None, uid: int | None, limits: Limits,
            env: dict[str, str] | None = None, trial: bool = False) -> list[str]:
    """The command line that runs ``argv`` in a sandbox whose only writable folder is ``workdir``."""
    cmd = [_bwrap() or "bwrap", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
           "--unshare-cgroup-try", "--die-with-parent", "--new-session",
           "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    if os.geteuid() != 0:  # an ordinary user: a user namespace of its own maps it (root drops to a uid below)
        cmd.insert(1, "--unshare-user")
    dirs: list[str] = []
    binds = _ro_binds()
    for _, target in binds + ([(None, KIT)] if kit else []):
        dirs += [d for d in _ancestors(Path(target)) if d not in dirs]
    for d in dirs:
        cmd += ["--perms", "0755", "--dir", d]
    for source, target in binds:
        cmd += ["--ro-bind", source, target]
    for name in ("lib", "lib64", "bin", "sbin"):
        if os.path.islink(f"/{name}"):
            cmd += ["--symlink", os.readlink(f"/{name}"), f"/{name}"]
        elif os.path.isdir(f"/{name}"):
            cmd += ["--ro-bind", f"/{name}", f"/{name}"]
    if kit is not None:
        cmd += ["--ro-bind", str(kit), KIT]
    if trial:
        return cmd + ["--", *argv]
    passwd = Path(workdir).parent / "passwd"
    shown_uid = uid if uid is not None else os.getuid()
    passwd.write_text(f"student:x:{shown_uid}:{shown_uid}:student:{WORKDIR}:/bin/false\n", encoding="utf-8")
    cmd += ["--ro-bind", str(passwd), "/etc/passwd", "--bind", str(workdir), WORKDIR, "--chdir", WORKDIR,
            "--clearenv"]
    base_env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": WORKDIR, "TMPDIR": "/tmp",
                "PYTHONPATH": KIT if kit else "", "LANG": "C.UTF-8", "JUPYTER_RUNTIME_DIR": "/tmp/jupyter",
                "MPLCONFIGDIR": "/tmp/matplotlib", "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    for key, value in base_env.items():
        cmd += ["--setenv", key, value]
    cmd.append("--")
    # Limits first (as root they may be raised to any value), then the user id is dropped: they stay.
    processes = limits.processes if uid is not None or os.geteuid() == 0 else limits.processes + _own_processes()
    cmd += [shutil.which("prlimit") or "prlimit", f"--data={limits.memory_bytes}", f"--nproc={processes}",
            f"--fsize={limits.file_bytes}", "--core=0", "--"]
    if uid is not None and os.geteuid() == 0:
        cmd += [shutil.which("setpriv") or "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    return cmd + argv


def _own_processes() -> int:
    """Processes and threads this user runs now: an ordinary user's process limit counts them all."""
    count = 0
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and entry.stat().st_uid == os.getuid():
                count += len(list((entry / "task").iterdir()))
        except OSError:
            continue
    return count


def prepare(workdir: Path, uid: int | None) -> None:
    """Make ``workdir`` the submission's own: writable by its user id, closed to every other."""
    workdir.mkdir(parents=True, exist_ok=True)
    if uid is not None and os.geteuid() == 0:
        for path in [workdir, *workdir.rglob("*")]:
            os.chown(path, uid, uid, follow_symlinks=False)
    workdir.chmod(0o700)

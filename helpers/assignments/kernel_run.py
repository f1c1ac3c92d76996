"""Inside a submission's sandbox: run its notebook in a kernel, then the sheet's probes, and report as JSON.

    python -m helpers.assignments.kernel_run < job.json

The job (read from standard input, so the probes never lie on the sandbox's disk) names the notebook, the
lesson cells grading may skip (digests of their source), the probes, the time budget of a cell and the most
output a run may print. The notebook's code cells run in order in one kernel, except unchanged lesson cells
of the student version that no question needs (their experiments take time and grade nothing) and the
``grader.check`` cells (the student's own feedback). Outputs are counted and dropped; errors are kept.
Then one more cell runs every probe (``helpers.assignments.probes``), which writes ``probes.json``.
This process writes ``run.json``: the cells run and skipped, the errors, the limits hit, whether the kernel
lived. Everything it writes is the student's side of the story: the grader trusts none of it.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

CHECK_ONLY = re.compile(r"""^\s*grader\.check\(\s*["'][^"']+["']\s*\)\s*$""")
PROBES_FILE, RUN_FILE = "probes.json", "run.json"


def cell_digest(source: str) -> str:
    """A code cell's identity for skipping: the digest of its source, surrounding blank space ignored."""
    return hashlib.sha256(source.strip().encode("utf-8")).hexdigest()[:20]


def _client_class():
    from nbclient import NotebookClient

    class Client(NotebookClient):
        """nbclient's client, keeping error outputs only, and interrupting a cell past the output limit."""

        output_limit = 20_000_000
        output_bytes = 0
        limit_hit = False

        def output(self, outs: list, msg: dict[str, Any], display_id: str | None, cell_index: int) -> Any:
            content = msg.get("content", {})
            self.output_bytes += len(str(content.get("text", ""))) + len(str(content.get("data", "")))
            if self.output_bytes > self.output_limit and not self.limit_hit:
                self.limit_hit = True
                asyncio.ensure_future(self.km.interrupt_kernel())
            if msg.get("msg_type") == "error":
                outs.append({"output_type": "error", "ename": str(content.get("ename", ""))[:200],
                             "evalue": str(content.get("evalue", ""))[:500]})
            return None

    return Client


def run(job: dict) -> dict:
    """Run the job's notebook and probes; return the report written to run.json."""
    import nbformat
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    nb = nbformat.read(job["notebook"], as_version=4)
    skip = set(job.get("skip", []))
    cells, numbers, skipped = [], [], 0
    code = [c for c in nb.cells if c.get("cell_type") == "code"]
    for number, cell in enumerate(code, 1):
        source = cell.get("source", "")
        if number > 1 and (cell_digest(source) in skip or CHECK_ONLY.match(source)):
            skipped += 1
            continue
        cells.append(nbformat.v4.new_code_cell(source))
        numbers.append(number)
    probe = (f"import json as __kit_json\nfrom helpers.assignments.probes import run_probes as __kit_run_probes\n"
             f"__kit_run_probes(__kit_json.loads({json.dumps(json.dumps(job['tests']))}), globals(), "
             f"{PROBES_FILE!r})\n")
    cells.append(nbformat.v4.new_code_cell(probe))
    numbers.append(None)
    run_nb = nbformat.v4.new_notebook(cells=cells, metadata=nb.get("metadata", {}))
    client = _client_class()(run_nb, timeout=int(job.get("cell_timeout", 300)), allow_errors=True,
                             interrupt_on_timeout=True, kernel_name="python3",
                             resources={"metadata": {"path": str(Path.cwd())}})
    client.output_limit = int(job.get("output_limit", 20_000_000))
    report: dict[str, Any] = {"ran": len(cells) - 1, "skipped": skipped, "errors": [], "timeouts": [],
                              "kernel": "ok", "output_limit_hit": False, "probes_ran": False}
    with client.setup_kernel():
        for index, cell in enumerate(run_nb.cells):
            if numbers[index] is None:
                client.timeout = int(job.get("probe_timeout", 900))
            limit_before = client.limit_hit
            try:
                client.execute_cell(cell, index)
            except CellTimeoutError:
                report["timeouts"].append(numbers[index] or "probes")
            except DeadKernelError:
                report["kernel"] = "died"
                break
            for out in cell.get("outputs", []):
                if numbers[index] is None or out.get("output_type") != "error":
                    continue
                error = f"{out.get('ename')}: {out.get('evalue')}"[:300]
                if out.get("ename") == "KeyboardInterrupt":  # nbclient interrupted it: the time or output budget
                    if client.limit_hit and not limit_before:
                        error = "OutputLimit: interrupted after printing more than the output limit"
                    else:
                        report["timeouts"].append(numbers[index])
                        error = f"TimeoutError: interrupted after {client.timeout} s, the time budget of a cell"
                first = (cell.source.strip().splitlines() or [""])[0]
                report["errors"].append({"code_cell": numbers[index], "first_line": first[:120], "error": error})
            if numbers[index] is None:
                report["probes_ran"] = Path(PROBES_FILE).is_file()
    report["output_limit_hit"] = client.limit_hit
    report["output_bytes"] = client.output_bytes
    return report


def main() -> int:
    """Read the job from standard input, run it, write run.json."""
    job = json.loads(sys.stdin.read())
    report = run(job)
    import resource

    own, kernel = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    report["cpu_s"] = round(own.ru_utime + own.ru_stime + kernel.ru_utime + kernel.ru_stime, 2)
    from helpers import store

    store.write_text(RUN_FILE, json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())

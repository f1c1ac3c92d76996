"""Claim checks and the "course reference versus this run" table.

Two kinds of claim, each printed as ✓ or ✗ with the values it was judged on, neither ever raising:

- ``check``: a finding the sheet's text states ("batch norm doubles the accuracy"). A ✗ is a result
  worth discussing (noise, a quick profile, a bug), never a crash.
- ``invariant``: a fact of the code that must hold whatever the data (a gradient equals autograd's,
  a table has the course's iteration counts). In every profile, the export command (``make pdf``,
  ``make submit``) ends with exit code 1 naming each ✗ invariant of a sheet's run record (the PDF is
  still written), and ``python -m helpers.checks build/smoke-pdf`` says the same for saved records.

The course's reference numbers live in ``course_reference.toml`` beside this file.
"""
from __future__ import annotations

import math
import numbers
import os
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from . import machine, runlog
from . import store
from .config import get_profile, seed_offset, seeds_used

REFERENCE_FILE = Path(__file__).with_name("course_reference.toml")


def _fmt(value: Any) -> str:
    """Format one value for a check line or a table cell: short, and exact for integers."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        x = float(value)
        if math.isnan(x) or math.isinf(x):
            return str(x)
        return f"{x:.4g}" if x == 0 or 1e-3 <= abs(x) < 1e5 else f"{x:.3e}"
    return str(value)


def check(claim: str, ok: Any, **values: Any) -> bool:
    """Print ✓/✗ for a finding of the text with the values it was judged on; return whether it held."""
    return _judge(runlog.FINDING, claim, ok, values)


def invariant(claim: str, ok: Any, **values: Any) -> bool:
    """Print ✓/✗ for a fact of the code that must hold; return whether it held (the export fails on ✗)."""
    return _judge(runlog.INVARIANT, claim, ok, values)


def _judge(kind: str, claim: str, ok: Any, values: dict[str, Any]) -> bool:
    """Evaluate, print and note one claim of either kind."""
    try:
        held = bool(ok)
    except Exception:  # e.g. an ambiguous array truth value: a broken check is a failed check
        held = False
    shown = {k: _fmt(v) for k, v in values.items()}
    detail = ", ".join(f"{k}={v}" for k, v in shown.items())
    label = "invariant: " if kind == runlog.INVARIANT else ""
    print(f"{'✓' if held else '✗'} {label}{claim}" + (f"  ({detail})" if detail else ""))
    runlog.note_check(runlog.CheckResult(claim, held, shown, kind))
    return held


# Re-exported: the smoke run (main below), the export command and the tests all judge a record by it.
failed_invariants = runlog.failed_invariants


def load_reference(sheet: str, path: Path = REFERENCE_FILE) -> dict[str, Any]:
    """Return one sheet's section of the course-reference file (its source and its rows)."""
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    if sheet not in data:
        raise KeyError(f"No section [{sheet}] in {path.name}; sections: {', '.join(sorted(data))}.")
    section = data[sheet]
    keys = [row["key"] for row in section.get("rows", [])]
    if len(keys) != len(set(keys)):
        raise ValueError(f"Duplicate row keys in [{sheet}] of {path.name}: {keys}")
    return section


@dataclass
class _Result:
    value: str
    verdict: str


class CourseReference:
    """Collects this run's value for each reference row of a sheet and shows the closing table."""

    def __init__(self, sheet: str, profile: str | None = None, stand_in: bool | None = None):
        section = load_reference(sheet)
        self.sheet = sheet
        self.source = section.get("source", "")
        self.rows: list[dict[str, str]] = section.get("rows", [])
        self.profile = get_profile(profile)
        # Whether this run's data are generated stand-ins: by default, the smoke profile of a sheet on real data.
        self.stand_in = (self.profile == "smoke" and bool(section.get("stand_ins_in_smoke"))) \
            if stand_in is None else bool(stand_in)
        self._results: dict[str, _Result] = {}

    def record(self, key: str, value: Any, reproduced: bool, why: str = "") -> None:
        """Set this run's value for reference row ``key``; a differing row names its reason."""
        row = next((r for r in self.rows if r["key"] == key), None)
        if row is None:
            raise KeyError(f"{key!r} is not a row of [{self.sheet}] in {REFERENCE_FILE.name}.")
        if not reproduced and not why:
            raise ValueError(f"Row {key!r} differs from the course: say why (settings, data, hardware, noise).")
        if self.stand_in and row.get("data", True):
            # A number measured on generated stand-in data says nothing about the course's data either way.
            verdict = "not comparable: generated stand-in data"
        else:
            verdict = "reproduced" if reproduced else f"differs: {why}"
            if reproduced and why:
                verdict += f" ({why})"
        self._results[key] = _Result(_fmt(value), verdict)

    def frame(self) -> pd.DataFrame:
        """Return the table: task, quantity, course reference, this run, profile, verdict."""
        out = []
        for row in self.rows:
            res = self._results.get(row["key"])
            out.append({
                "task": row["task"],
                "quantity": row["quantity"],
                "course reference": row["reference"],
                "this run": res.value if res else "—",
                "profile": self.profile,
                # Never recorded: the profile skips it, or (in a student's sheet) an exercise it needs is unwritten.
                "verdict": res.verdict if res else "not run: skipped above",
            })
        return pd.DataFrame(out)

    def table(self):
        """Return the table styled for the notebook and note it for the run record."""
        df = self.frame()
        runlog.note_reference(df.to_dict("records"))
        return df.style.hide(axis="index").set_caption(f"Course reference ({self.source}) versus this run")


RECORD_ENV = "KIT_RUN_RECORD"


def run_record() -> None:
    """Show this run's record (profile, device, CPU and torch threads, wall time, runs, claim checks); save it
    for the exporter. The CPU and thread count trace a number that differs between machines (``helpers.machine``)."""
    from IPython.display import display

    record = {**runlog.snapshot(), "profile": get_profile(), "device": _device_name(), **machine.describe(),
              "seeds": seeds_used(), **({"seed_offset": seed_offset()} if seed_offset() else {})}
    if os.environ.get(RECORD_ENV):   # set by helpers.export: the bundle and `make reproduce` read it
        store.write_json(os.environ[RECORD_ENV], record, indent=1)
    runs = record["runs"]
    summary = pd.DataFrame({"this run": {
        "profile": record["profile"], **({"seed offset (KIT_SEED)": str(record["seed_offset"])}
                                         if record.get("seed_offset") else {}),
        "device": record["device"],
        "CPU": machine.label(record), "wall time": f"{record['wall_s']:.0f} s",
        "runs trained now": str(runs["trained"]), "runs from the cache": str(runs["cached"])}})
    display(summary.style.set_caption("Run record").set_properties(**{"text-align": "left"}))
    if not record["checks"]:
        print("No claim checks ran in this sheet.")
        return
    checks = pd.DataFrame([{"": "✓" if c["ok"] else "✗", "kind": c.get("kind", runlog.FINDING), "claim": c["claim"],
                            "values": ", ".join(f"{k}={v}" for k, v in c["values"].items())}
                           for c in record["checks"]])
    held = sum(c["ok"] for c in record["checks"])
    display(checks.style.hide(axis="index").set_properties(**{"text-align": "left"})
            .set_caption(f"Claim checks: {held} of {len(checks)} hold on this run"))


def _device_name() -> str:
    """The device experiments used; a sheet that never imported torch used none."""
    if "torch" not in sys.modules:
        return "cpu (no torch)"
    from .device import get_device

    return str(get_device())


def main(argv: list[str] | None = None) -> int:
    """``python -m helpers.checks FOLDER_OR_RUN_JSON...``: exit 1 naming every ✗ invariant of the run records."""
    import json

    paths = [Path(a) for a in (sys.argv[1:] if argv is None else argv)]
    files = sorted(f for p in paths for f in (p.glob("*.run.json") if p.is_dir() else [p] if p.is_file() else []))
    if not files:
        print(f"No run records (*.run.json) in {', '.join(map(str, paths)) or 'the arguments'}: export the sheets "
              "first (make pdf, or make smoke for the smoke profile).", file=sys.stderr)
        return 2
    failed = 0
    for file in files:
        for claim in failed_invariants(json.loads(file.read_text(encoding="utf-8"))):
            print(f"{file.name.removesuffix('.run.json')}: invariant does not hold: {claim}", file=sys.stderr)
            failed += 1
    print(f"{len(files)} run records, {failed} failed invariants.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""``make reproduce``: each sheet's "course reference versus this run" table, collected in one document.

The rows come from the run record the exporter saves beside each executed sheet
(``<sheet>.run.json``, see ``helpers.checks.run_record``), not from the PDF. Each sheet has its own
section in ``docs/REPRODUCTION.md`` with profile, date, device and wall time; a section is replaced
when its sheet runs again, the others stay.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .. import machine, store
from ..config import REPO_ROOT

REPRODUCTION = REPO_ROOT / "docs" / "REPRODUCTION.md"
HEADER = ("# Course reference versus this run\n\n"
          "Written by `make reproduce` (`python -m helpers.export reproduce`), which runs the sheets in the "
          "`full` profile; each sheet's section is replaced when it runs again.\n")
COLUMNS = ("task", "quantity", "course reference", "this run", "profile", "verdict")


def sheet_section(name: str, record: dict[str, Any] | None) -> str:
    """The markdown section of one sheet: its run line and its reference table."""
    if record is None:
        return f"## {name}\n\nNo run record: the sheet did not finish, or it ran without the exporter.\n"
    checks = record.get("checks", [])
    held = sum(bool(c.get("ok")) for c in checks)
    line = (f"profile **{record.get('profile')}** · {str(record.get('executed_at') or '')[:10]} · "
            f"device {record.get('device')} · wall time {_duration(record.get('wall_s'))} · "
            f"runs trained {record.get('runs', {}).get('trained')}, cached {record.get('runs', {}).get('cached')} · "
            f"claim checks: {held} of {len(checks)} hold" + (f" · CPU {machine.label(record)}" if record.get("cpu") else ""))
    rows = record.get("reference") or []
    if not rows:
        return f"## {name}\n\n{line}\n\nThis sheet recorded no course-reference table.\n"
    table = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    table += ["| " + " | ".join(_cell(row.get(c, "")) for c in COLUMNS) + " |" for row in rows]
    return f"## {name}\n\n{line}\n\n" + "\n".join(table) + "\n"


def write_reproduction(records: dict[str, Path], doc: Path = REPRODUCTION) -> Path:
    """Replace (or add) each sheet's section of ``doc`` from its run-record file."""
    doc = Path(doc)
    text = doc.read_text(encoding="utf-8") if doc.exists() else HEADER
    for name, path in sorted(records.items()):
        record = json.loads(Path(path).read_text(encoding="utf-8")) if Path(path).is_file() else None
        body = sheet_section(name, record)
        pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
        text = pattern.sub(lambda _: body + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + body
    return store.write_bytes(doc, text.encode("utf-8"))


def _cell(value: Any) -> str:
    """A table cell: one line, pipes escaped."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _duration(seconds: float | None) -> str:
    """'12 min 3 s' from seconds."""
    if seconds is None:
        return "?"
    minutes, rest = divmod(round(float(seconds)), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"

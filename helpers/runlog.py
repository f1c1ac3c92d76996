"""What this kernel did: claim checks, experiment runs (trained or cached) and reference rows.

A ground-floor module with no kit imports: ``checks`` writes claims and reference rows into it,
``experiments`` counts runs, and the exporter's run record at the end of a sheet reads it back.
``failed_invariants`` reads a saved record without pandas or torch: the export command judges every
sheet's record with it, a sheet served from its cache included.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

_STARTED = time.time()


FINDING, INVARIANT = "finding", "invariant"


@dataclass
class CheckResult:
    """One claim evaluated on this run's numbers: a finding of the text, or an invariant of the code."""

    claim: str
    ok: bool
    values: dict[str, str] = field(default_factory=dict)
    kind: str = FINDING


_CHECKS: list[CheckResult] = []
_RUNS = {"trained": 0, "cached": 0}
_REFERENCE: list[dict[str, str]] = []


def note_check(result: CheckResult) -> None:
    """Remember a claim check; a re-run cell replaces its earlier result of the same claim."""
    for i, old in enumerate(_CHECKS):
        if old.claim == result.claim:
            _CHECKS[i] = result
            return
    _CHECKS.append(result)


def note_runs(trained: int = 0, cached: int = 0) -> None:
    """Count experiment runs trained now and runs served from the cache."""
    _RUNS["trained"] += int(trained)
    _RUNS["cached"] += int(cached)


def note_reference(rows: list[dict[str, str]]) -> None:
    """Keep the latest "course reference versus this run" rows of this kernel."""
    _REFERENCE[:] = [dict(r) for r in rows]


def snapshot() -> dict[str, Any]:
    """Return everything noted so far as plain JSON-ready data."""
    return {
        "wall_s": round(time.time() - _STARTED, 1),
        "runs": dict(_RUNS),
        "checks": [asdict(c) for c in _CHECKS],
        "reference": [dict(r) for r in _REFERENCE],
    }


def failed_invariants(record: dict[str, Any]) -> list[str]:
    """The invariants a run record (a sheet's ``.run.json``) holds as ✗, each as 'claim  (name=value, ...)'."""
    return [c["claim"] + (f"  ({', '.join(f'{k}={v}' for k, v in c.get('values', {}).items())})"
                          if c.get("values") else "")
            for c in record.get("checks", []) if c.get("kind") == INVARIANT and not c.get("ok")]


def reset() -> None:
    """Forget everything (tests)."""
    global _STARTED
    _CHECKS.clear()
    _REFERENCE.clear()
    _RUNS.update(trained=0, cached=0)
    _STARTED = time.time()

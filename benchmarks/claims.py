"""Claims that survive another seed (issue 31): run the sheets once per ``KIT_SEED`` and count, for every claim
check in their run records (findings and invariants), in how many of the seeds it held.

Each seed runs every chosen sheet as ``make pdf`` executes it (``helpers.export.execute``: a fresh kernel, the
run record appended), with ``KIT_SEED`` set to the seed and a results cache (``KIT_CACHE``) of its own that starts
empty, so no run trained under one seed is read under another. No PDF is printed: only the run records count.
A finding the text states as fact should hold in every seed; one that does not is reworded to the spread.

    python -m benchmarks.claims --seeds 0 1 2                      # quick profile, every sheet (long: 3 cold runs)
    python -m benchmarks.claims --seeds 0 1 --profile smoke --sheets 01 --no-write

It writes a section "Claims across seeds (<profile>)" into benchmarks/RESULTS.md (with the CPU model, from
``helpers.machine``) and the same as JSON in ``build/claims/<profile>.json`` (``--json`` elsewhere);
``--no-write`` prints the table only.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from helpers import machine, store
from helpers.config import SEED_ENV, get_profile

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
DEFAULT_SEEDS = (0, 1, 2)

# execute(path, profile) -> the executed notebook, its run record in metadata["kit"]["record"]
Execute = Callable[[Path, str], Any]


def find_sheets(names: Sequence[str] | None, folder: Path = NOTEBOOKS) -> list[Path]:
    """The sheets named by number or file name ('01', '01_backprop_autodiff', a path); every sheet when none."""
    sheets = sorted(folder.glob("[0-9]*.ipynb"))
    if not names:
        return sheets
    chosen = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.is_file():
            chosen.append(path)
            continue
        hits = [s for s in sheets if s.stem == name or s.stem.startswith(f"{name}_")]
        if len(hits) != 1:
            known = ", ".join(s.stem for s in sheets) or f"none in {folder}"
            raise SystemExit(f"claims: no single sheet matches {name!r} (sheets: {known}). Give its number (01) or "
                             "its file name.")
        chosen.append(hits[0])
    return chosen


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set environment variables for the block (the kernel that executes a sheet inherits them)."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _execute(path: Path, profile: str) -> Any:
    """Execute a sheet as ``make pdf`` does (helpers.export), with progress lines on stderr."""
    from helpers.export.execute import execute_notebook

    return execute_notebook(path, profile=profile)


def run_seeds(sheets: Sequence[Path], seeds: Sequence[int], profile: str, cache_root: Path,
              execute: Execute = _execute) -> dict[str, dict[int, dict]]:
    """Run every sheet under each seed, each seed with a fresh cache; {sheet: {seed: run record or {"error"}}}."""
    results: dict[str, dict[int, dict]] = {sheet.stem: {} for sheet in sheets}
    for seed in seeds:
        cache = Path(cache_root) / f"seed-{seed}"
        cache.mkdir(parents=True, exist_ok=False)   # fresh: nothing trained under another seed is read
        with _environment(**{SEED_ENV: str(seed), "KIT_CACHE": str(cache)}):
            for sheet in sheets:
                print(f"claims: {sheet.stem}, KIT_SEED={seed}, profile {profile}", file=sys.stderr, flush=True)
                try:
                    nb = execute(sheet, profile)
                except Exception as err:   # one sheet's failure is a result of its own; the others still run
                    results[sheet.stem][seed] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"}
                    continue
                record = (nb.metadata.get("kit") or {}).get("record")
                results[sheet.stem][seed] = record or {"error": "the sheet ran but saved no run record"}
    return results


def _keyed_checks(record: dict) -> dict[tuple[str, str], dict]:
    """A record's checks by (kind, claim); a claim made twice in a sheet gets '(2nd)', '(3rd)', ... after it."""
    out: dict[tuple[str, str], dict] = {}
    for check in record.get("checks", []):
        kind, claim = check.get("kind", "finding"), check["claim"]
        n, key = 1, (kind, claim)
        while key in out:
            n += 1
            key = (kind, f"{claim} ({n}{ {2: 'nd', 3: 'rd'}.get(n, 'th') })")
        out[key] = check
    return out


def tally(results: dict[str, dict[int, dict]], seeds: Sequence[int]) -> list[dict]:
    """One row per check of every sheet: in how many seeds it held, of how many seeds the sheet ran in."""
    rows = []
    for sheet, by_seed in results.items():
        ran = [s for s in seeds if "error" not in by_seed.get(s, {"error": "not run"})]
        checks = {s: _keyed_checks(by_seed[s]) for s in ran}
        keys: list[tuple[str, str]] = []
        for s in ran:   # in the order the sheet makes them
            keys += [k for k in checks[s] if k not in keys]
        for kind, claim in keys:
            held = [s for s in ran if checks[s].get((kind, claim), {}).get("ok")]
            missing = [s for s in ran if (kind, claim) not in checks[s]]
            rows.append({"sheet": sheet, "kind": kind, "claim": claim, "held": len(held), "ran": len(ran),
                         "seeds": len(seeds), "failed_in": [s for s in ran if s not in held and s not in missing],
                         "missing_in": missing,
                         "values": {str(s): checks[s][(kind, claim)].get("values", {}) for s in ran
                                    if (kind, claim) in checks[s]}})
    return rows


def failures(results: dict[str, dict[int, dict]]) -> list[str]:
    """'sheet, KIT_SEED=s: error' for every sheet run that did not finish."""
    return [f"{sheet}, KIT_SEED={seed}: {rec['error']}" for sheet, by_seed in results.items()
            for seed, rec in sorted(by_seed.items()) if "error" in rec]


def cpu_models(results: dict[str, dict[int, dict]]) -> list[str]:
    """The CPUs the run records name (each once), else this machine's."""
    labels = [machine.label(rec) for by_seed in results.values() for rec in by_seed.values() if rec.get("cpu")]
    return sorted(set(labels)) or [machine.label(machine.describe())]


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(rows: list[dict], seeds: Sequence[int], profile: str, cpus: list[str], problems: list[str]) -> str:
    """The RESULTS.md section: per sheet, its checks that held in fewer than all seeds, and a count of the rest."""
    lines = [f"`python -m benchmarks.claims --seeds {' '.join(map(str, seeds))} --profile {profile}`: each seed runs "
             f"the sheets cold (`KIT_SEED`, a fresh `KIT_CACHE`). CPU: {'; '.join(cpus)}.", ""]
    sheets = list(dict.fromkeys(r["sheet"] for r in rows))
    lines += ["| sheet | checks | held in every seed | findings not in every seed | invariants not in every seed |",
              "|---|---|---|---|---|"]
    for sheet in sheets:
        mine = [r for r in rows if r["sheet"] == sheet]
        every = sum(r["held"] == r["seeds"] for r in mine)
        weak = {kind: sum(r["held"] < r["seeds"] for r in mine if r["kind"] == kind) for kind in ("finding", "invariant")}
        lines.append(f"| {sheet} | {len(mine)} | {every} | {weak['finding']} | {weak['invariant']} |")
    shaky = [r for r in rows if r["held"] < r["seeds"]]
    if shaky:
        lines += ["", "Checks that did not hold in every seed:", "",
                  "| sheet | kind | claim | held | failed in KIT_SEED | absent in |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['sheet']} | {r['kind']} | {_cell(r['claim'])} | {r['held']} of {r['seeds']} | "
                  f"{', '.join(map(str, r['failed_in'])) or '–'} | {', '.join(map(str, r['missing_in'])) or '–'} |"
                  for r in shaky]
    if problems:
        lines += ["", "Sheet runs that did not finish (their checks count as not held):", ""]
        lines += [f"- {_cell(p)}" for p in problems]
    return "\n".join(lines) + "\n"


def report(results: dict[str, dict[int, dict]], seeds: Sequence[int], profile: str) -> dict:
    """Everything the script writes, as JSON-ready data."""
    return {"profile": profile, "seeds": list(seeds), "cpu": cpu_models(results), "failures": failures(results),
            "checks": tally(results, seeds)}


def main(argv: Sequence[str] | None = None, execute: Execute = _execute) -> int:
    """Command line: run, tally, write RESULTS.md and the JSON file (or print only, with --no-write)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.claims", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS), help="KIT_SEED values (0 1 2)")
    parser.add_argument("--profile", default="quick", help="smoke | quick | full (default quick)")
    parser.add_argument("--sheets", nargs="+", default=None, help="sheet numbers or files (default: every sheet)")
    parser.add_argument("--json", type=Path, default=None, help="where the JSON goes (build/claims/<profile>.json)")
    parser.add_argument("--no-write", action="store_true", help="print the table; write neither RESULTS.md nor JSON")
    args = parser.parse_args(argv)
    if any(s < 0 for s in args.seeds) or len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds must be distinct whole numbers >= 0; got {args.seeds}")
    try:
        profile = get_profile(args.profile)
    except ValueError as err:
        parser.error(str(err))
    sheets = find_sheets(args.sheets)
    with tempfile.TemporaryDirectory(prefix="kit-claims-") as tmp:
        results = run_seeds(sheets, args.seeds, profile, Path(tmp), execute)
    data = report(results, args.seeds, profile)
    table = markdown(data["checks"], args.seeds, profile, data["cpu"], data["failures"])
    print(table)
    if not args.no_write:
        from benchmarks._results import write_section

        target = args.json or REPO / "build" / "claims" / f"{profile}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        store.write_json(target, data, indent=1)
        print(f"wrote {write_section(f'Claims across seeds ({profile})', table)} and {target}")
    return 1 if data["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())

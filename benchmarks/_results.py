"""Write one benchmark's section into benchmarks/RESULTS.md, keeping the others."""
from __future__ import annotations

import datetime as _dt
import platform
import re
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = "# Benchmark results\n\nWritten by the scripts in `benchmarks/` (`make bench`); each section is replaced when its script runs again.\n"


def machine_line() -> str:
    """Describe where a benchmark ran, in one line."""
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{_dt.date.today().isoformat()} · {platform.node() or 'host'} · {platform.processor() or platform.machine()} · "
            f"{torch.get_num_threads()} torch threads · torch {torch.__version__} · {dev}")


def write_section(title: str, markdown: str) -> Path:
    """Replace (or append) the section ``## title`` of RESULTS.md with ``markdown``."""
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    body = f"## {title}\n\n_{machine_line()}_\n\n{markdown.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: body + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + body
    RESULTS.write_text(text)
    return RESULTS

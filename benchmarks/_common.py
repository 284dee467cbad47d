"""Shared helpers for benchmark scripts: conditions record and markdown tables."""

from __future__ import annotations

import json
import os
import platform
import statistics
from pathlib import Path
from typing import Sequence

import torch

from slimvision.report import markdown_table  # noqa: F401  (re-exported for the benchmark scripts)

RESULTS = Path(__file__).resolve().parent / "results"


def conditions(threads: int) -> dict:
    cpu = "unknown"
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def conditions_markdown(cond: dict, seconds: float | None = None) -> list[str]:
    """The '## Conditions' section every results file ends with."""
    lines = ["## Conditions", "", *[f"- {k}: {v}" for k, v in cond.items()]]
    if seconds is not None:
        lines.append(f"- wall time: {seconds:.0f} s")
    return lines + [""]


def mean_std(values: Sequence[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def write_results(name: str, markdown: str, data: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text(markdown)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2, default=str))

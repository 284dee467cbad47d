"""Shared helpers for benchmark scripts: conditions record and markdown tables."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Sequence

import torch

from slimvision.report import markdown_table  # noqa: F401  (re-exported for the benchmark scripts)

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "unknown"


def conditions(threads: int) -> dict:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def conditions_markdown(cond: dict, seconds: float | None = None) -> list[str]:
    """The '## Conditions' section every results file ends with."""
    def shown(value) -> str:  # a mapping (runs by CPU) on one line
        return "; ".join(f"{name}: {count}" for name, count in value.items()) if isinstance(value, dict) else str(value)

    lines = ["## Conditions", "", *[f"- {k}: {shown(v)}" for k, v in cond.items()]]
    if seconds is not None:
        lines.append(f"- wall time: {seconds:.0f} s")
    return lines + [""]


def mean_std(values: Sequence[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def per_seed(values: Sequence[float]) -> str:
    """Every seed's value, so a mean hiding one failed seed shows it."""
    return " / ".join(f"{value:.4f}" for value in values)


def difference(values: Sequence[float], baseline: Sequence[float]) -> str:
    """mean(values) - mean(baseline) in points ± its standard error (Welch: each side's variance over its count; a
    single baseline run adds none)."""
    diff = statistics.mean(values) - statistics.mean(baseline)
    variance = sum(statistics.variance(side) / len(side) for side in (values, baseline) if len(side) > 1)
    return f"{100 * diff:+.2f} ± {100 * math.sqrt(variance):.2f}"


def command_line() -> str:
    """The command that is running, as a user would type it from the repository root."""
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(RESULTS.parent.parent)
    except ValueError:
        pass
    return " ".join(["python", str(script), *sys.argv[1:]])


def write_results(name: str, markdown: str, data: dict) -> None:
    """results/NAME.md and NAME.json; both name the script and command that wrote them (first line / "command")."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    command = command_line()
    lines = markdown.splitlines()
    header = f"Written by `{command}` (benchmarks/{Path(sys.argv[0]).name})."
    # keep the title first; the header goes right under it
    body = "\n".join([lines[0], "", header, *lines[1:]]) if lines and lines[0].startswith("#") else "\n".join([header, "", *lines])
    (RESULTS / f"{name}.md").write_text(body + ("\n" if markdown.endswith("\n") else ""))
    (RESULTS / f"{name}.json").write_text(json.dumps({"command": command, **data}, indent=2, default=str))


def work_dir(work: Path | None, prefix: str) -> Path:
    """`--work` (created if needed), or a fresh temporary directory when none is given."""
    import tempfile

    if work is None:
        return Path(tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    return work


def train_resumably(spec, out_dir: Path) -> dict:
    """train_run(spec) keeping a checkpoint every epoch and continuing from the newest one it finds, so a benchmark
    stopped in a long training (a teacher, a base model) loses at most one epoch. The result does not change: a
    resumed run restores the random state with the weights."""
    from dataclasses import replace

    from slimvision.train.checkpoint import checkpoint_dirs
    from slimvision.train.run import train_run

    return train_run(replace(spec, config=replace(spec.config, save_every=1)), out_dir, resume=bool(checkpoint_dirs(out_dir)))


def _recorded_entries(work: Path) -> list[dict]:
    """Every entry of work/finished.jsonl ({"key", "result", "cpu"}; older entries lack "cpu"), none before it exists."""
    record = work / "finished.jsonl"
    return [json.loads(line) for line in record.read_text().splitlines()] if record.is_file() else []


def _recorded_entry(work: Path, key: str) -> dict | None:
    """`key`'s entry in work/finished.jsonl, or None while it is not there."""
    return next((entry for entry in _recorded_entries(work) if entry["key"] == key), None)


def wait_for(work: Path, keys, poll_s: float = 30.0) -> None:
    """Block until every key in `keys` is recorded in work/finished.jsonl (by another process sharing --work)."""
    for key in keys:
        if _recorded_entry(work, key) is None:
            print(f"waiting for {key!r} (another process on this --work computes it)", flush=True)
        while _recorded_entry(work, key) is None:
            time.sleep(poll_s)


def run_shard(work: Path, runs, shard: str, describe=str) -> None:
    """For `shard` "i/k": compute every k-th of `runs` ((key, keys it needs recorded first, compute)) from the i-th,
    each once what it needs is in work/finished.jsonl (k processes share `work`), printing `describe(result)`."""
    index, count = (int(part) for part in shard.split("/"))
    for key, needs, compute in runs[index::count]:
        wait_for(work, needs)
        print(key, describe(resumable(work, key, compute)), flush=True)


def resumable(work: Path, key: str, compute):
    """compute()'s JSON-serialisable result, recorded in work/finished.jsonl under `key` with the CPU that computed
    it: a rerun with the same --work returns the recorded result instead of computing it again, so a stopped
    benchmark resumes, on this machine or another."""
    entry = _recorded_entry(work, key)
    if entry is not None:
        return entry["result"]
    result = compute()
    with (work / "finished.jsonl").open("a") as handle:
        handle.write(json.dumps({"key": key, "result": result, "cpu": cpu_model()}, default=lambda o: float(o) if hasattr(o, "__float__") else str(o)) + "\n")
    return result


def recorded_cpus(work: Path) -> dict[str, int]:
    """How many of the runs recorded in work/finished.jsonl each CPU computed (a study resumed on other machines
    mixes them; float results differ between CPUs' kernels, so a page says which)."""
    return dict(Counter(entry.get("cpu", "not recorded") for entry in _recorded_entries(work)))

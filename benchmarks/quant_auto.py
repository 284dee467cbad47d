"""How long `quantize --backend auto` takes and what it picks, with every candidate's verdict.

    python benchmarks/quant_auto.py --model runs/r20 --threads 2 --batch-sizes 32 1 --cli --out benchmarks/results/quant_auto
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from slimvision.io import atomic_write_bytes, atomic_write_json
from slimvision.quant import QuantConfig, quantize_artifact


def _rest_seconds(run: dict) -> float:
    """Wall time of one run outside export, quantization and selection."""
    seconds = run["conditions"]["seconds"]
    return run["wall_seconds"] - seconds["export"] - seconds["quantize_and_calibrate"] - run["summary"]["selection_seconds"]


def _time_cli(model: str, threads: int, batch_size: int) -> dict:
    """Wall time of `slimvision quantize --backend auto` in a new process, and what it chose."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "slimvision", "quantize", "--model", model, "--backend", "auto", "--threads", str(threads),
                   "--batch-size", str(batch_size), "--out", str(Path(tmp) / "q"), "--json"]
        load_before = os.getloadavg()
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - start
    summary = json.loads(done.stdout)
    chosen = next(c for c in summary["candidates"] if c["status"] == "chosen")
    shown = " ".join(["slimvision", *command[3:]]).replace(str(Path(tmp) / "q"), "OUT")
    return {"batch_size": batch_size, "wall_seconds": wall, "load_before": load_before, "load_after": os.getloadavg(),
            "deployment": summary["deployment"], "reason": chosen["reason"], "command": shown}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 1])
    parser.add_argument("--auto-torchao", action="store_true")
    parser.add_argument("--cli", action="store_true", help="also time the `slimvision quantize --backend auto` command end to end (a new process: imports included)")
    parser.add_argument("--out", required=True, help="path prefix for .json and .md")
    args = parser.parse_args()
    runs = []
    for batch_size in args.batch_sizes:
        config = QuantConfig(backend="auto", threads=args.threads, batch_size=batch_size, auto_torchao=args.auto_torchao)
        with tempfile.TemporaryDirectory() as tmp:
            load_before = os.getloadavg()
            start = time.perf_counter()
            summary = quantize_artifact(args.model, config, Path(tmp) / "q")
            wall = time.perf_counter() - start
            meta = json.loads((Path(tmp) / "q" / "meta.json").read_text())
            runs.append({"batch_size": batch_size, "wall_seconds": wall, "summary": summary, "conditions": meta["conditions"],
                         "load_before": load_before, "load_after": os.getloadavg()})
    cli_runs = [_time_cli(args.model, args.threads, batch_size) for batch_size in args.batch_sizes] if args.cli else []
    load = os.getloadavg()
    lines = [
        f"# `quantize --backend auto` on {args.model}", "",
        f"Command: `python benchmarks/quant_auto.py --model {args.model} --threads {args.threads} --batch-sizes {' '.join(map(str, args.batch_sizes))}"
        f"{' --auto-torchao' if args.auto_torchao else ''}{' --cli' if args.cli else ''} --out {args.out}`.",
        f"{args.threads} threads pinned; load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores "
        "(the machine was shared: other jobs ran at the same time, so absolute times are inflated and noisy).", "",
    ]
    for run in runs:
        s = run["summary"]
        lines += [
            f"## batch {run['batch_size']}: chose {s['deployment']} in {run['wall_seconds']:.1f} s "
            f"(export {run['conditions']['seconds']['export']:.1f} s, quantize + calibrate {run['conditions']['seconds']['quantize_and_calibrate']:.1f} s, "
            f"selection {s['selection_seconds']:.1f} s, the rest {_rest_seconds(run):.1f} s: loading the data and model, "
            "the first use of scikit-learn for the bundled digits data included, and saving)", "",
            f"Load average (1 / 5 / 15 min) before {' / '.join(f'{v:.1f}' for v in run['load_before'])}, "
            f"after {' / '.join(f'{v:.1f}' for v in run['load_after'])}.", "",
            "Selection time by phase: " + ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in s.get("selection_phases_seconds", {}).items()) + ".", "",
            f"fp32 top-1 {s['accuracy_fp32']:.4f}; chosen top-1 {s['accuracy']:.4f}; speed-up vs the fastest fp32: "
            + (f"{s['speedup_vs_fastest_fp32']:.2f}x ({s['speedup_basis']})" if s["speedup_vs_fastest_fp32"] else s["speedup_basis"]), "",
            f"Timing: {run['conditions']['latency']}.", "",
            "| candidate | status | top-1 | screening ms | rounds median ms | build + screen s | why |", "|---|---|---|---|---|---|---|",
        ]
        for c in s["candidates"]:
            fmt = lambda v, spec: format(v, spec) if v is not None else "-"  # noqa: E731
            rounds = fmt(c["latency_ms"], ".2f") if c["round_ms"] else "-"
            lines.append(f"| {c['name']} | {c['status']} | {fmt(c['accuracy'], '.4f')} | {fmt(c['screen_ms'], '.2f')} | {rounds} | {fmt(c['build_s'], '.1f')} | {c['reason']} |")
        lines.append("")
    if cli_runs:
        lines += ["## The command end to end (a new process each: Python start-up and imports included)", "",
                  "| batch | wall s | load before | load after | chosen | why |", "|---|---|---|---|---|---|"]
        for run in cli_runs:
            lines.append(f"| {run['batch_size']} | {run['wall_seconds']:.1f} | {' / '.join(f'{v:.1f}' for v in run['load_before'])} | "
                         f"{' / '.join(f'{v:.1f}' for v in run['load_after'])} | {run['deployment']} | {run['reason']} |")
        lines += ["", f"Command: `{cli_runs[0]['command']}` (and the same with each --batch-size).", ""]
    atomic_write_json(Path(args.out + ".json"), {"command": " ".join(["python benchmarks/quant_auto.py", *sys.argv[1:]]), "runs": runs, "cli_runs": cli_runs})
    atomic_write_bytes(Path(args.out + ".md"), "\n".join(lines).encode())
    print("\n".join(lines))


if __name__ == "__main__":
    main()

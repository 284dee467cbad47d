"""The demo recipe end to end: wall time, the final artifact's speed-up over the trained model at batch 32
(measured side by side in one process by the run's own report), its accuracy change, and a headless-Chromium
screenshot of report.html. Writes benchmarks/results/pipeline_demo.md.

    nice -n 10 python benchmarks/pipeline_demo.py --out runs/bench-demo [--threads 2] [--epochs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, conditions, conditions_markdown, markdown_table  # noqa: E402
from rich.console import Console  # noqa: E402

from slimvision.pipeline.demo import run_demo  # noqa: E402
from slimvision.report import table_cells  # noqa: E402

TARGET_SPEEDUP, MAX_DROP_POINTS = 3.0, 1.0


def screenshot(report: Path, path: Path) -> bool:
    """Render report.html in headless Chromium to `path`; False when Chromium is absent."""
    if shutil.which("chromium") is None:
        return False
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--screenshot={path}",
                    "--window-size=1000,2400", report.resolve().as_uri()], check=True, capture_output=True, timeout=300)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="runs/bench-demo")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--note", default="", help="Free text recorded with the results (e.g. how busy the machine was).")
    args = parser.parse_args()
    out = Path(args.out)
    start = time.perf_counter()
    rows = run_demo(out, epochs=args.epochs, threads=args.threads, console=Console(width=80))["rows"]
    seconds = time.perf_counter() - start
    stages = {p.name: json.loads((p / "stage.json").read_text()).get("seconds") for p in sorted(out.iterdir()) if (p / "stage.json").is_file()}
    first, last = rows[0], rows[-1]
    speedup, drop = last["speedup"]["32"], 100 * (first["accuracy"] - last["accuracy"])
    RESULTS.mkdir(exist_ok=True)
    shot = RESULTS / "pipeline_demo_report.png"
    has_shot = screenshot(out / "report.html", shot)
    verdict = "met" if speedup >= TARGET_SPEEDUP and drop <= MAX_DROP_POINTS else "NOT met"
    lines = [
        "# The demo recipe end to end", "",
        f"Command: `nice -n 10 python benchmarks/pipeline_demo.py --out {args.out}"
        + (f" --threads {args.threads}" if args.threads else "") + f" --epochs {args.epochs}`", "",
        markdown_table(["artifact", "runtime", "top-1", "params", "MACs", "size", "bs1 ms", "bs32 ms", "bs32 speed-up"], [table_cells(r) for r in rows]), "",
        f"Final artifact vs the trained model at batch 32: **{speedup:.2f}x** faster, top-1 {last['accuracy']:.4f} vs "
        f"{first['accuracy']:.4f} ({-drop:+.1f} points). Target >= {TARGET_SPEEDUP}x within {MAX_DROP_POINTS} point: **{verdict}**.", "",
        f"Wall time of the whole run (train, prune, distill, quantize, measuring, report): {seconds:.0f} s; per stage: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in stages.items() if v is not None) + ".", "",
        "Latencies are the run's own report: every artifact timed in the same process, interleaved rounds (see conditions.json).", "",
    ]
    if has_shot:
        lines += ["report.html rendered by headless Chromium:", "", f"![report.html]({shot.name})", ""]
    if args.note:
        lines += [f"Note: {args.note}", ""]
    lines += conditions_markdown({**conditions(int(json.loads((out / 'conditions.json').read_text())['threads'])), "load average at the end": os.getloadavg()}, seconds)
    (RESULTS / "pipeline_demo.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""`slimvision demo`: the built-in recipe (`recipes/demo.yaml`) run through `optimize` on the bundled digits data.

Every stage writes its artifact under `out/<stage>/`; rerunning reuses finished stages. All numbers
in the report are measured in this run, side by side in one process.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from slimvision.pipeline.console import stage_printer, summary_table
from slimvision.pipeline.recipe import Recipe, recipe_from_dict
from slimvision.pipeline.runner import run_recipe

DEMO_RECIPE = "demo.yaml"


def demo_recipe(epochs: int | None = None, seed: int | None = None, threads: int | None = None) -> Recipe:
    """The shipped demo recipe, with the train stage's epochs, the seed and the thread count overridden when given."""
    data = yaml.safe_load(resources.files("slimvision.pipeline").joinpath("recipes", DEMO_RECIPE).read_text())
    if epochs is not None:
        next(stage for stage in data["stages"] if stage["stage"] == "train")["epochs"] = epochs
    if seed is not None:
        data["seed"] = seed
    if threads is not None:
        data["threads"] = threads
    return recipe_from_dict(data, f"built-in {DEMO_RECIPE}")


def final_speedup_line(rows: list[dict[str, Any]]) -> str:
    """The last artifact against the first at batch 32: speed-up and accuracy change, as measured."""
    first, last = rows[0], rows[-1]
    drop = 100 * (first["accuracy"] - last["accuracy"])
    return (
        f"{last['label']} ({last['runtime']}) vs {first['label']}: {last['speedup']['32']:.2f}x faster at batch 32, "
        f"top-1 {last['accuracy']:.4f} vs {first['accuracy']:.4f} ({'-' if drop >= 0 else '+'}{abs(drop):.1f} points)"
    )


def run_demo(out: str | Path, epochs: int = 15, seed: int = 0, console: Console | None = None, threads: int | None = None) -> dict[str, Any]:
    """Run the demo recipe into `out` (resuming), print the summary table; returns the summary rows and report paths."""
    console = console or Console()
    out = Path(out)
    result = run_recipe(demo_recipe(epochs, seed, threads), out, on_stage=stage_printer(console))
    rows = result["summary"]
    console.print(summary_table(rows, "slimvision demo: digits test split, measured side by side"))
    console.print(final_speedup_line(rows))
    console.print(f"report: {out / 'report.html'} and {out / 'report.md'}")
    return {"rows": rows, "report": str(out / "report.md")}

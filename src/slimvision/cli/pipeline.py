"""`slimvision optimize` and `slimvision report`: run a recipe into a resumable run directory, and rebuild its report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from slimvision.cli.app import app, console, print_json
from slimvision.pipeline.console import stage_printer, summary_table


@app.command("optimize")
def optimize_command(
    recipe: Path = typer.Argument(..., help="Recipe YAML: model, data and an ordered list of stages (see docs/pipeline.md)."),
    out: Path = typer.Option(..., "--out", help="Run directory: one folder per stage, summary.json, report.md, report.html. Rerunning resumes."),
    force: Optional[str] = typer.Option(None, "--force", help="Redo this stage (and every stage after it) even if it is finished."),
    json_output: bool = typer.Option(False, "--json", help="Print summary.json's rows as JSON."),
) -> None:
    """Run a recipe (train, prune, distill, quantize, export, ckpt-compress) into a resumable run directory and report every artifact."""
    from slimvision.pipeline.runner import run_recipe

    result = run_recipe(recipe, out, force=force, on_stage=None if json_output else stage_printer(console))
    if json_output:
        print_json(result["summary"])
        return
    console.print(summary_table(result["summary"], f"{out}: measured side by side"))
    console.print(f"report: {out / 'report.html'} and {out / 'report.md'}; rows in {out / 'summary.json'}")


@app.command("report")
def report_command(
    run_dir: Path = typer.Argument(..., help="A run directory written by `slimvision optimize` (or `slimvision demo`)."),
    no_measure: bool = typer.Option(False, "--no-measure", help="Rebuild the report from summary.json instead of measuring again."),
    rounds: int = typer.Option(5, "--rounds", min=1, help="Interleaved latency rounds."),
    repeats: int = typer.Option(10, "--repeats", min=1, help="Timed runs per artifact, batch size and round."),
) -> None:
    """Measure a run's artifacts side by side again and rewrite summary.json, report.md and report.html."""
    from slimvision.pipeline.runner import report_run

    rows = report_run(run_dir, remeasure=not no_measure, rounds=rounds, repeats=repeats)
    console.print(summary_table(rows, f"{run_dir}"))
    console.print(f"report: {run_dir / 'report.html'} and {run_dir / 'report.md'}")

"""`slimvision optimize` and `slimvision report`: run a recipe into a resumable run directory, and rebuild its report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from slimvision.cli.app import MODEL_KWARGS_HELP, MODEL_SOURCE_HELP, WEIGHTS_HELP, app, console, print_json
from slimvision.pipeline.console import stage_printer, summary_table


@app.command("optimize")
def optimize_command(
    recipe: Optional[Path] = typer.Argument(None, help="Recipe YAML: model, data and an ordered list of stages (see docs/pipeline.md); or use --target."),
    out: Path = typer.Option(..., "--out", help="Run directory: one folder per stage, summary.json, report.md, report.html. Rerunning resumes."),
    force: Optional[str] = typer.Option(None, "--force", help="Redo this stage (and every stage after it) even if it is finished."),
    target: Optional[str] = typer.Option(None, "--target", help="Budget mode instead of a recipe: latency=2ms@bs1, macs=20M, params=100k or size=200KB (bytes on disk of the final artifact; needs --model and --data)."),
    model: Optional[str] = typer.Option(None, "--model", help=f"Budget mode: the trained model ({MODEL_SOURCE_HELP})."),
    model_kwargs: Optional[str] = typer.Option(None, "--model-kwargs", help=MODEL_KWARGS_HELP),
    weights: Optional[str] = typer.Option(None, "--weights", help=WEIGHTS_HELP),
    data: Optional[str] = typer.Option(None, "--data", help="Budget mode: dataset (digits | cifar10 | imagefolder | synthetic)."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Budget mode: local path for cifar10 / imagefolder."),
    image_size: Optional[int] = typer.Option(None, "--image-size", min=1, help="Budget mode: image size."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Budget mode: threads for every stage and measurement."),
    json_output: bool = typer.Option(False, "--json", help="Print summary.json's rows as JSON."),
) -> None:
    """Run a recipe (train, prune, distill, quantize, export, ckpt-compress, supernet, search, derive) into a resumable run directory and report every artifact."""
    from slimvision.errors import ConfigError
    from slimvision.pipeline.runner import run_recipe

    choice, parsed = None, None
    if target is not None:
        from slimvision.models.sources import parse_model_kwargs
        from slimvision.pipeline.budget import budget_recipe, parse_target

        if recipe is not None or model is None or data is None:
            raise ConfigError("--target builds its own recipe: pass --model and --data, and no RECIPE")
        parsed = parse_target(target)
        recipe, choice = budget_recipe(model, data, parsed, image_size, data_root, parse_model_kwargs(model_kwargs), weights, threads=threads)
        if not json_output:
            console.print(f"budget {target}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in choice.items()))
    elif recipe is None:
        raise ConfigError("give a RECIPE file, or --target with --model and --data")
    result = run_recipe(recipe, out, force=force, on_stage=None if json_output else stage_printer(console))
    if json_output:
        print_json(result["summary"])
        return
    console.print(summary_table(result["summary"], f"{out}: measured side by side"))
    if parsed is not None:
        console.print(budget_verdict(result["summary"][-1], parsed))
    console.print(f"report: {out / 'report.html'} and {out / 'report.md'}; rows in {out / 'summary.json'}")


def budget_verdict(row: dict, target) -> str:
    """Whether the final artifact meets the budget, in its measured numbers."""
    if target.kind == "latency":
        value, goal = row["latency_ms"][str(target.batch)] if str(target.batch) in row["latency_ms"] else None, target.value
        if value is None:
            return f"batch {target.batch} was not measured (the report times batch 1 and 32)"
        text = f"{value:.2f} ms at batch {target.batch} (budget {goal} ms)"
    elif target.kind == "size":
        value, goal = row["size_bytes"], target.value
        text = f"{value:,} bytes on disk (budget {goal:,.0f})"
    else:
        value, goal = row[target.kind], target.value
        text = f"{value:,} {target.kind} (budget {goal:,.0f})"
    return ("[green]budget met[/green]: " if value <= goal else "[red]budget NOT met[/red]: ") + text


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

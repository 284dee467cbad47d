"""`slimvision merge`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from slimvision.cli.app import app, console, print_json
from slimvision.cli.validate import OVERWRITE_HELP, finite_positive
from slimvision.errors import ConfigError


@app.command("merge")
def merge_command(
    models: list[str] = typer.Option(..., "--models", help="Model directories to merge (same architecture): --models A B C, or --models A --models B."),
    more_models: Optional[list[str]] = typer.Argument(None, help="More model directories (what follows --models A).", show_default=False),
    out: Path = typer.Option(..., "--out", help="Directory for the merged model artifact."),
    method: str = typer.Option("greedy", "--method", help="uniform | greedy (kept only if held-out accuracy improves) | learned (coefficients fitted on held-out data)."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset (default: the one recorded by the first model)."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Local path for cifar10 / imagefolder."),
    image_size: Optional[int] = typer.Option(None, "--image-size", min=1, help="Image size (default: the recorded one)."),
    bn_batches: int = typer.Option(8, "--bn-batches", min=0, help="Training batches (128 images) to re-estimate BatchNorm statistics after merging."),
    per_layer: bool = typer.Option(False, "--per-layer", help="learned: one coefficient per ingredient for every tensor (default: per model)."),
    learned_epochs: int = typer.Option(20, "--learned-epochs", min=1, help="learned: epochs over the held-out split."),
    learned_lr: float = typer.Option(0.05, "--learned-lr", callback=finite_positive, help="learned: Adam learning rate of the coefficient logits."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON (accuracy_merged, accuracy_ingredients on the test split)."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Merge fine-tuned models of one architecture into a weight soup (held-out = val split, reported = test split)."""
    from slimvision.io.paths import guard_output
    from slimvision.merge import MergeConfig, merge_artifacts

    dirs = [*models, *(more_models or [])]
    dirs = [part for item in dirs for part in item.split(",") if part]
    if len(dirs) < 2:
        raise ConfigError(f"--models needs at least 2 model directories, got {len(dirs)}")
    guard_output(out, [*dirs, data_root], overwrite)
    config = MergeConfig(method, bn_batches, per_layer, learned_epochs, learned_lr, seed)
    summary = merge_artifacts(dirs, config, out, data, image_size, data_root)
    if json_output:
        print_json(summary)
        return
    ingredients = ", ".join(f"{acc:.4f}" for acc in summary["accuracy_ingredients"])
    console.print(f"{method} soup of {len(dirs)} models -> {out}: test accuracy {summary['accuracy_merged']:.4f} "
                  f"(ingredients {ingredients}); kept {len(summary['kept'])}")

"""`slimvision prune`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from slimvision.cli.app import CHANNELS_LAST_HELP, MODEL_KWARGS_HELP, MODEL_SOURCE_HELP, WEIGHTS_HELP, app, console, model_source, print_json
from slimvision.cli.validate import OVERWRITE_HELP, finite_positive


@app.command("prune")
def prune_command(
    model: str = typer.Option(..., "--model", help=f"The model: {MODEL_SOURCE_HELP} (a builder starts from its initialization unless --weights)."),
    out: Path = typer.Option(..., "--out", help="Directory for the pruned model artifact."),
    model_kwargs: Optional[str] = typer.Option(None, "--model-kwargs", help=MODEL_KWARGS_HELP),
    weights: Optional[str] = typer.Option(None, "--weights", help=WEIGHTS_HELP),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset (default: the model's recorded one)."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Local path for cifar10 / imagefolder."),
    image_size: Optional[int] = typer.Option(None, "--image-size", min=1, help="Image size (default: the recorded one)."),
    method: str = typer.Option("l1", "--method", help="random | l1 | l2 | bn | taylor | chex | precrop."),
    macs_ratio: Optional[float] = typer.Option(None, "--macs-ratio", help="Keep this fraction of the MACs (0.4 = 2.5x fewer)."),
    params_ratio: Optional[float] = typer.Option(None, "--params-ratio", help="Keep this fraction of the parameters."),
    channel_ratio: Optional[float] = typer.Option(None, "--channel-ratio", help="Keep this fraction of every layer's channels."),
    global_pruning: bool = typer.Option(False, "--global/--uniform", help="Rank channels across layers, or the same ratio per layer."),
    iterative: int = typer.Option(1, "--iterative", min=1, help="Reach the budget in N steps, fine-tuning between them."),
    finetune_epochs: int = typer.Option(0, "--finetune-epochs", min=0, help="Fine-tuning epochs after pruning (and per iterative step)."),
    lr: float = typer.Option(0.01, "--lr", callback=finite_positive, help="Fine-tuning learning rate (SGD, cosine)."),
    channels_last: bool = typer.Option(False, "--channels-last", help=CHANNELS_LAST_HELP),
    ignore_layers: Optional[list[str]] = typer.Option(None, "--ignore-layers", help="Layer names to keep unpruned (repeatable)."),
    saliency: str = typer.Option("snip", "--saliency", help="precrop: snip or synflow."),
    sparsity_epochs: int = typer.Option(0, "--sparsity-epochs", min=0, help="bn: epochs of L1-on-BN-gamma training before pruning."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Threads for the latency measurement."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    json_output: bool = typer.Option(False, "--json", help="Print the before/after summary as JSON."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Remove channels physically to a MACs/params/channel budget, fine-tune, and measure before/after."""
    from slimvision.io.paths import guard_output
    from slimvision.prune import FinetuneConfig, PruneConfig, prune_artifact

    guard_output(out, [model, weights, data_root], overwrite)

    config = PruneConfig(
        method=method, macs_ratio=macs_ratio, params_ratio=params_ratio, channel_ratio=channel_ratio,
        global_pruning=global_pruning, iterative_steps=iterative, ignore_layers=tuple(ignore_layers or ()),
        seed=seed, saliency=saliency, sparsity_epochs=sparsity_epochs,
    )
    summary = prune_artifact(model_source(model, model_kwargs, weights), config, out, data, image_size, data_root, FinetuneConfig(epochs=finetune_epochs, lr=lr, seed=seed, channels_last=channels_last), threads)
    if not summary:  # a data-parallel rank other than 0
        return
    if json_output:
        print_json(summary)
        return
    table = Table(title=f"prune {model} with {method} -> {out}")
    for column in ("", "before", "after", "ratio"):
        table.add_column(column, justify="right")
    table.add_row("params", f"{summary['params_before']:,}", f"{summary['params_after']:,}", f"{summary['params_after'] / summary['params_before']:.3f}")
    table.add_row("MACs", f"{summary['macs_before'] / 1e6:.2f}M", f"{summary['macs_after'] / 1e6:.2f}M", f"{summary['macs_kept']:.3f}")
    for batch, speedup in summary["speedup"].items():
        table.add_row(f"latency bs{batch} (ms)", f"{summary['latency_ms_before'][batch]:.2f}", f"{summary['latency_ms_after'][batch]:.2f}", f"{speedup:.2f}x faster")
    pruned_acc = "n/a" if summary["accuracy_pruned"] is None else f"{summary['accuracy_pruned']:.4f}"
    table.add_row("accuracy (test)", f"{summary['accuracy_before']:.4f}", f"{summary['accuracy_after']:.4f}", f"right after pruning: {pruned_acc}")
    console.print(table)
    if summary["kept_layers"]:
        console.print("channels kept so the model still runs: " + "; ".join(summary["kept_layers"]))

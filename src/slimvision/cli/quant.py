"""`slimvision quantize` and `slimvision export`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from slimvision.cli.app import MODEL_KWARGS_HELP, MODEL_SOURCE_HELP, WEIGHTS_HELP, app, console, err_console, model_source, print_json
from slimvision.cli.validate import OVERWRITE_HELP
from slimvision.errors import ConfigError


@app.command("quantize")
def quantize_command(
    model: str = typer.Option(..., "--model", help=f"The fp32 model: {MODEL_SOURCE_HELP} (a builder needs --data)."),
    out: Path = typer.Option(..., "--out", help="Directory for the INT8 artifact (model.onnx or model.pt2 + meta.json)."),
    model_kwargs: Optional[str] = typer.Option(None, "--model-kwargs", help=MODEL_KWARGS_HELP),
    weights: Optional[str] = typer.Option(None, "--weights", help=WEIGHTS_HELP),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset (default: the model's recorded one)."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Local path for cifar10 / imagefolder."),
    image_size: Optional[int] = typer.Option(None, "--image-size", min=1, help="Image size (default: the recorded one)."),
    backend: str = typer.Option("onnxruntime", "--backend", help="onnxruntime | openvino | torchao | auto (fp32 and INT8 on each runtime; keeps the fastest at --batch-size within --accuracy-limit)."),
    mode: str = typer.Option("static", "--mode", help="static (calibrated PTQ) | dynamic (MatMul/Gemm weights) | qat (torchao)."),
    calib_samples: int = typer.Option(256, "--calib-samples", min=1, help="Training images used for calibration."),
    calib_method: str = typer.Option("minmax", "--calib-method", help="minmax | percentile | entropy."),
    keep_float: int = typer.Option(0, "--keep-float", min=0, help="Keep the K most sensitive layers in float (measured one by one)."),
    accuracy_limit: float = typer.Option(0.01, "--accuracy-limit", help="Largest accepted top-1 drop (0.01 = 1 point): auto keeps the fastest runtime within it; a run above it warns."),
    qat_epochs: int = typer.Option(3, "--qat-epochs", help="qat: fine-tuning epochs with fake quantization."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="auto: the batch size whose latency decides."),
    auto_torchao: bool = typer.Option(False, "--auto-torchao", help="auto: also compile a torchao INT8 candidate (torch.compile adds tens of seconds)."),
    block_search: bool = typer.Option(
        False, "--block-search",
        help="Measure, block by block (residual block, attention/MLP half, stage), whether INT8 pays on the target runtime "
             "at --batch-size: a block stays INT8 only if that is faster end to end (interleaved A/B timing, beyond the noise) "
             "and top-1 stays within --accuracy-limit. Costs up to --block-budget seconds per runtime; every decision is in --json.",
    ),
    block_budget: float = typer.Option(60.0, "--block-budget", help="--block-search: seconds it may spend per runtime (blocks not reached stay INT8)."),
    max_blocks: int = typer.Option(12, "--max-blocks", min=1, help="--block-search: the graph is split into at most this many blocks."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Threads for every runtime (pinned). With --backend auto a budget: each ONNX deployment is also timed on 1 thread, and the faster count is kept in the artifact."),
    seed: int = typer.Option(0, "--seed", help="Random seed (QAT)."),
    json_output: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """INT8 post-training quantization (or QAT) with speed-ups measured against fp32 on the same runtime."""
    from slimvision.io.paths import guard_output
    from slimvision.quant import QuantConfig, quantize_artifact
    from slimvision.quant.decisions import decision_tables

    guard_output(out, [model, weights, data_root], overwrite)

    config = QuantConfig(
        backend=backend, mode=mode, calib_samples=calib_samples, calib_method=calib_method, keep_float=keep_float,
        accuracy_limit=accuracy_limit, qat_epochs=qat_epochs, threads=threads, seed=seed, batch_size=batch_size, auto_torchao=auto_torchao,
        block_search=block_search, block_budget_s=block_budget, max_blocks=max_blocks,
    )
    summary = quantize_artifact(model_source(model, model_kwargs, weights), config, out, data, image_size, data_root)
    if not summary:  # a data-parallel rank other than 0
        return
    if not summary["within_accuracy_limit"]:
        drop = 100 * (summary["accuracy_fp32"] - summary["accuracy_int8"])
        err_console.print(f"[yellow]warning: {summary['backend']} INT8 top-1 is {drop:.1f} points below fp32, more than --accuracy-limit "
                          f"({100 * accuracy_limit:.1f}); no runtime tried met the limit[/yellow]")
    if json_output:
        print_json(summary)
        return
    for decision in decision_tables(summary, placement=False):
        _print_decisions(decision)
    if "candidates" in summary:
        return
    table = Table(title=f"quantize {model} -> {out}  (chosen: {summary['backend']}, {summary['mode']})")
    for column in ("runtime", "precision", "accuracy", "agreement", "bs1 ms", "bs32 ms"):
        table.add_column(column, justify="right")
    for row in summary["rows"]:
        table.add_row(row["runtime"], row["precision"], f"{row['accuracy']:.4f}", f"{row['agreement']:.4f}", f"{row['latency_ms']['1']:.2f}", f"{row['latency_ms']['32']:.2f}")
    console.print(table)
    console.print(
        f"speed-up vs the same runtime's fp32: {summary['speedup_bs1']:.2f}x (bs1), {summary['speedup_bs32']:.2f}x (bs32); "
        f"vs PyTorch eager fp32: {summary['speedup_vs_torch_eager_bs32']:.2f}x (bs32); size {summary['size_bytes_fp32']:,} -> {summary['size_bytes_int8']:,} bytes"
    )


def _print_decisions(decision) -> None:
    table = Table(title=decision.title)
    for column in decision.header:
        table.add_column(column, justify="right" if column in ("status", "top-1") or column.endswith(" ms") else "left")
    for row in decision.rows:
        table.add_row(*row)
    console.print(table)
    if decision.note:
        console.print(decision.note)


@app.command("export")
def export_command(
    model: str = typer.Option(..., "--model", help=f"The model: {MODEL_SOURCE_HELP}."),
    out: Path = typer.Option(..., "--out", help="Path of the .onnx file to write."),
    model_kwargs: Optional[str] = typer.Option(None, "--model-kwargs", help=MODEL_KWARGS_HELP),
    weights: Optional[str] = typer.Option(None, "--weights", help=WEIGHTS_HELP),
    input_size: Optional[tuple[int, int, int]] = typer.Option(None, "--input-size", help="C H W (default: the size the model directory records)."),
) -> None:
    """Export a model to ONNX (dynamic batch axis), checked against PyTorch outputs."""
    from slimvision.io import recorded_input_size, resolve_model
    from slimvision.quant import export_onnx

    module, _, meta = resolve_model(model_source(model, model_kwargs, weights))
    size = tuple(input_size) if input_size else recorded_input_size(meta)
    if size is None:
        raise ConfigError(f"{model} records no input size: pass --input-size C H W")
    if min(size) < 1:
        raise ConfigError(f"--input-size must be positive, got {size}")
    export_onnx(module, size, out)
    console.print(f"wrote {out}")

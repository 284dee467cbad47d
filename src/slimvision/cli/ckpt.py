"""`slimvision ckpt compress|restore|inspect`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from slimvision.cli.app import app, console, print_json
from slimvision.cli.validate import OVERWRITE_HELP, finite_non_negative

ckpt_app = typer.Typer(help="Compress training checkpoints (ExCP) and restore them to a trainable state.", no_args_is_help=True)
app.add_typer(ckpt_app, name="ckpt")


@ckpt_app.command("compress")
def compress_command(
    source: Path = typer.Argument(..., help="A training run directory (with checkpoints/), a checkpoint directory, or a directory of .safetensors/.pt state dicts."),
    out: Path = typer.Option(..., "--out", help="Archive file to write (.svckpt)."),
    rule: str = typer.Option("official", "--rule", help="Pruning rule: official (the ExCP code's rule and defaults)."),
    bits: int = typer.Option(4, "--bits", min=1, max=8, help="Bits per kept value (2^bits - 1 k-means levels plus an exact zero)."),
    lossless: bool = typer.Option(False, "--lossless", help="Residual (XOR) + zstd only: restores bit-exactly."),
    alpha: float = typer.Option(5e-5, "--alpha", callback=finite_non_negative, help="Weight threshold f * median |residual|, f = min(2.5, alpha / sqrt(mean Adam v)); larger alpha keeps fewer residuals."),
    beta: float = typer.Option(2.0, "--beta", callback=finite_non_negative, help="Momentum threshold in units of mean |momentum|."),
    base_bits: Optional[int] = typer.Option(None, "--base-bits", min=1, max=8, help="Quantize the first checkpoint's weights to this many bits (default: exact, the official reference)."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Compress every checkpoint of a run into one archive (streaming, one checkpoint in memory at a time)."""
    from slimvision.ckpt import CompressConfig, compress_run
    from slimvision.io.paths import guard_output

    guard_output(out, [source], overwrite)
    result = compress_run(source, out, CompressConfig(rule=rule, bits=bits, lossless=lossless, alpha=alpha, beta=beta, base_bits=base_bits))
    if json_output:
        print_json(result.to_dict())
    else:
        console.print(
            f"{result.n_checkpoints} checkpoints: {result.raw_bytes:,} bytes -> {result.compressed_bytes:,} ({result.ratio:.1f}x; "
            f"plain zstd {result.raw_bytes / result.zstd_bytes:.2f}x) in {result.seconds:.1f} s -> {out}"
        )


@ckpt_app.command("restore")
def restore_command(
    archive: Path = typer.Argument(..., help="A .svckpt archive."),
    out: Path = typer.Option(..., "--out", help="Directory to write (a run directory that `slimvision train --resume` accepts)."),
    index: Optional[int] = typer.Option(None, "--index", help="Checkpoint to restore, 0-based."),
    last: bool = typer.Option(False, "--last", help="Restore the last checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Restore one checkpoint of the chain to a standard checkpoint directory."""
    from slimvision.ckpt import restore
    from slimvision.errors import ConfigError

    if (index is None) == (not last):
        raise ConfigError("give exactly one of --index K or --last")
    restore(archive, out, None if last else index, overwrite=overwrite)
    console.print(f"restored {'the last checkpoint' if last else f'checkpoint {index}'} -> {out}")


@ckpt_app.command("inspect")
def inspect_command(
    archive: Path = typer.Argument(..., help="A .svckpt archive."),
    json_output: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Per-checkpoint and per-tensor encodings, kept fractions and sizes (verifies every checksum)."""
    from slimvision.ckpt import inspect

    report = inspect(archive)
    if json_output:
        print_json(report)
        return
    console.print(f"{archive}: {report['n_checkpoints']} checkpoints, {report['compressed_bytes']:,} bytes, {report['ratio']:.1f}x vs raw tensors")
    last = report["checkpoints"][-1] if report["checkpoints"] else {"tensors": [], "name": "-"}
    table = Table(title=f"tensors of {last['name']}")
    for column in ("file", "tensor", "shape", "encoding", "kept"):
        table.add_column(column)
    for tensor in last["tensors"]:
        table.add_row(tensor["file"], tensor["key"], str(tuple(tensor["shape"])), tensor["encoding"], f"{tensor['kept']:.3f}")
    console.print(table)

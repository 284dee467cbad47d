"""Checkpoint compression benchmark: a resnet20 digits run with AdamW, 12 checkpoints, both ExCP rules over a sweep of alpha.

Reports the ratio vs raw safetensors and vs plain zstd, the accuracy of the restored final model,
the accuracy after resuming from the restored epoch-10 checkpoint for the 2 remaining epochs
(against the uncompressed run's own final accuracy), and compress/restore times. Writes
benchmarks/results/ckpt.md (+ .json).

    python benchmarks/ckpt.py [--epochs 12] [--run DIR]   # --run: reuse (or create) the training run there
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch

from _common import conditions, conditions_markdown, markdown_table, write_results
from slimvision.ckpt import CompressConfig, compress_run, restore
from slimvision.data import get_dataset
from slimvision.io import load_artifact, read_json
from slimvision.measure import accuracy
from slimvision.train import TrainConfig
from slimvision.train.run import RunSpec, load_run_spec, train_run

SWEEP = (
    ("official, alpha 5e-5 (default)", CompressConfig(rule="official")),
    ("official, alpha 5e-3", CompressConfig(rule="official", alpha=5e-3)),
    ("official, alpha 1 (f = 2.5 cap)", CompressConfig(rule="official", alpha=1.0)),
    ("official, alpha 1, 3-bit", CompressConfig(rule="official", alpha=1.0, bits=3)),
    ("adaptive, alpha 5", CompressConfig(rule="adaptive")),
    ("adaptive, alpha 20", CompressConfig(rule="adaptive", alpha=20.0)),
    ("adaptive, alpha 20, 3-bit", CompressConfig(rule="adaptive", alpha=20.0, bits=3)),
    ("adaptive, alpha 100", CompressConfig(rule="adaptive", alpha=100.0)),
    ("lossless (XOR residual + zstd)", CompressConfig(lossless=True)),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--run", type=Path, default=None, help="training run directory to reuse (trained there if missing)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="ckpt-bench-"))
    test = get_dataset("digits", "test", 32)
    run = args.run or work / "run"
    if not (run / "meta.json").is_file():
        spec = RunSpec("resnet20", "digits", 32, config=TrainConfig(epochs=args.epochs, optimizer="adamw", seed=0, progress=False))
        train_run(spec, run)
    original_accuracy = read_json(run / "meta.json")["metrics"]["accuracy"]
    resume_from = args.epochs - 2
    rows, data = [], {"original_accuracy": original_accuracy}
    for label, config in SWEEP:
        archive = work / "run.svckpt"
        result = compress_run(run, archive, config)
        start = time.perf_counter()
        restore(archive, work / "restored", None)
        restore_seconds = time.perf_counter() - start
        restored_accuracy = accuracy(load_artifact(work / "restored").model, test)
        restore(archive, work / "resumed", resume_from - 1)
        resumed_metrics = train_run(load_run_spec(work / "resumed"), work / "resumed", resume=True)
        drop_points = 100 * (original_accuracy - resumed_metrics["accuracy"])
        weights_kept = [t["kept"] for t in result.tensors[-1]["tensors"] if t["encoding"] == "weight"]
        rows.append([
            label, f"{result.compressed_bytes:,}", f"{result.ratio:.1f}x", f"{result.raw_bytes / result.zstd_bytes:.2f}x",
            f"{sum(weights_kept) / max(1, len(weights_kept)):.3f}" if weights_kept else "1.000",
            f"{restored_accuracy:.4f}", f"{resumed_metrics['accuracy']:.4f}", f"{drop_points:+.2f}", f"{result.seconds:.1f}", f"{restore_seconds:.2f}",
        ])
        data[label] = {**result.to_dict(), "config": config.__dict__, "restored_accuracy": restored_accuracy,
                       "resumed_accuracy": resumed_metrics["accuracy"], "drop_points": drop_points, "restore_seconds": restore_seconds}
        shutil.rmtree(work / "restored")
        shutil.rmtree(work / "resumed")
        print(label, rows[-1], flush=True)
    cond = conditions(args.threads)
    md = [
        "# Checkpoint compression (ExCP) on a real training run",
        "",
        f"resnet20 on digits 32x32, AdamW (lr 1e-3, wd 0.05, cosine), {args.epochs} epochs, a checkpoint every epoch "
        f"(weights + Adam exp_avg/exp_avg_sq + step + BN statistics), raw safetensors {data[SWEEP[0][0]]['raw_bytes']:,} bytes. "
        f"Uncompressed run: test accuracy **{original_accuracy:.4f}**.",
        f"'resumed' = restore checkpoint {resume_from} (epoch {resume_from}) from the archive, then `train --resume` for the remaining "
        "2 epochs; 'drop' = uncompressed final accuracy minus resumed accuracy, in points (the lossless row resumes bit-exactly). "
        "'weights kept' = mean kept fraction of the weight residuals in the last checkpoint. "
        "The machine was shared with other jobs (2 cores): the times are indicative only.",
        "",
        markdown_table(["rule / setting", "archive bytes", "ratio vs raw", "plain zstd ratio", "weights kept", "restored final acc.",
                        "resumed acc. (+2 epochs)", "drop (points)", "compress s", "restore s"], rows),
        "",
        *conditions_markdown(cond),
        "",
        f"Command: `nice -n 10 python benchmarks/ckpt.py --epochs {args.epochs}`",
    ]
    write_results("ckpt", "\n".join(md), data)
    print("\n".join(md))


if __name__ == "__main__":
    main()

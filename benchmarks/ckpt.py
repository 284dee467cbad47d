"""Checkpoint compression benchmark: a resnet20 digits run with AdamW, 12 checkpoints.

Reports the ratio vs raw safetensors and vs plain zstd, the accuracy of the restored final model,
the accuracy after resuming from the restored epoch-10 checkpoint for the 2 remaining epochs
(against the uncompressed run's own final accuracy), and compress/restore times. Writes
benchmarks/results/ckpt.md (+ .json).

    python benchmarks/ckpt.py [--epochs 12]
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
from slimvision.io import load_artifact
from slimvision.measure import accuracy
from slimvision.train import TrainConfig
from slimvision.train.run import RunSpec, load_run_spec, train_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="ckpt-bench-"))
    test = get_dataset("digits", "test", 32)
    run = work / "run"
    spec = RunSpec("resnet20", "digits", 32, config=TrainConfig(epochs=args.epochs, optimizer="adamw", seed=0, progress=False))
    metrics = train_run(spec, run)
    original_accuracy = metrics["accuracy"]
    resume_from = args.epochs - 2
    rows, data = [], {"original_accuracy": original_accuracy}
    for label, config in (("ExCP 4-bit (default)", CompressConfig()), ("ExCP 3-bit", CompressConfig(bits=3)), ("lossless (XOR residual + zstd)", CompressConfig(lossless=True))):
        archive = work / "run.svckpt"
        result = compress_run(run, archive, config)
        start = time.perf_counter()
        restore(archive, work / "restored", None)
        restore_seconds = time.perf_counter() - start
        restored_accuracy = accuracy(load_artifact(work / "restored").model, test)
        restore(archive, work / "resumed", resume_from - 1)
        resumed_metrics = train_run(load_run_spec(work / "resumed"), work / "resumed", resume=True)
        rows.append([
            label, f"{result.raw_bytes:,}", f"{result.compressed_bytes:,}", f"{result.ratio:.1f}x", f"{result.raw_bytes / result.zstd_bytes:.2f}x",
            f"{restored_accuracy:.4f}", f"{resumed_metrics['accuracy']:.4f}", f"{result.seconds:.1f}", f"{restore_seconds:.2f}",
        ])
        data[label] = {**result.to_dict(), "restored_accuracy": restored_accuracy, "resumed_accuracy": resumed_metrics["accuracy"], "restore_seconds": restore_seconds}
        shutil.rmtree(work / "restored")
        shutil.rmtree(work / "resumed")
        print(label, rows[-1], flush=True)
    cond = conditions(args.threads)
    md = [
        "# Checkpoint compression (ExCP) on a real training run",
        "",
        f"resnet20 on digits 32x32, AdamW (lr 1e-3, wd 0.05, cosine), {args.epochs} epochs, a checkpoint every epoch "
        f"(weights + Adam exp_avg/exp_avg_sq + step + BN statistics). Uncompressed run: test accuracy **{original_accuracy:.4f}**.",
        f"'resumed' = restore checkpoint {resume_from} (epoch {resume_from}) from the archive, then `train --resume` for the remaining 2 epochs; "
        "compare with the uncompressed run's final accuracy above.",
        "",
        markdown_table(["mode", "raw safetensors bytes", "archive bytes", "ratio vs raw", "plain zstd ratio", "restored final acc.", "resumed acc. (+2 epochs)", "compress s", "restore s"], rows),
        "",
        *conditions_markdown(cond),
    ]
    write_results("ckpt", "\n".join(md), data)
    print("\n".join(md))


if __name__ == "__main__":
    main()

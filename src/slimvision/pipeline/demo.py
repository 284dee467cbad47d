"""`slimvision demo`: train -> prune -> distill -> quantize on the bundled digits data, then a report.

Every stage writes a standard artifact under `out/`; a stage whose artifact already exists is
reused, so an interrupted demo continues where it stopped. All numbers in the report are
measured in this run, latencies in one process with the same thread count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from slimvision.data import get_dataset
from slimvision.distill import DistillConfig, distill_artifact
from slimvision.io import atomic_write_bytes, is_artifact_dir, load_artifact
from slimvision.measure import accuracy, count_macs, count_params, measure_latency, pinned_threads
from slimvision.prune import FinetuneConfig, PruneConfig, prune_artifact
from slimvision.quant import QuantConfig, quantize_artifact
from slimvision.quant.run import is_quantized_dir, load_quantized_runtime
from slimvision.quant.runtimes import runtime_latency_ms, runtime_predictions
from slimvision.report import markdown_table, tradeoff_plot
from slimvision.train import TrainConfig
from slimvision.train.run import RunSpec, train_run

DEMO_MODEL = "resnet20"
DEMO_IMAGE_SIZE = 32
MACS_RATIO = 0.5
REPEATS = 20


def _stage(console: Console, name: str, done: bool) -> bool:
    console.rule(f"{name}" + ("  (reused)" if done else ""))
    return not done


def _run_stages(console: Console, train_dir: Path, pruned_dir: Path, distilled_dir: Path, int8_dir: Path, epochs: int, seed: int, threads: int | None) -> None:
    """Run each stage whose artifact does not exist yet."""
    if _stage(console, "1/4 train resnet20 on digits (32x32)", is_artifact_dir(train_dir)):
        spec = RunSpec(DEMO_MODEL, "digits", DEMO_IMAGE_SIZE, config=TrainConfig(epochs=epochs, seed=seed, save_every=5))
        train_run(spec, train_dir, resume=(train_dir / "checkpoints").is_dir())
    if _stage(console, f"2/4 prune to {MACS_RATIO:.0%} of the MACs (L1, torch-pruning)", is_artifact_dir(pruned_dir)):
        prune_artifact(str(train_dir), PruneConfig(method="l1", macs_ratio=MACS_RATIO, seed=seed), pruned_dir, finetune_config=FinetuneConfig(epochs=0), threads=threads)
    if _stage(console, "3/4 recover accuracy: NKD distillation from the unpruned model", is_artifact_dir(distilled_dir)):
        distill_artifact(train_dir, str(pruned_dir), DistillConfig("nkd"), distilled_dir, TrainConfig(epochs=3, lr=0.01, warmup_epochs=0, seed=seed))
    if _stage(console, "4/4 INT8 post-training quantization (onnxruntime QDQ)", is_quantized_dir(int8_dir)):
        quantize_artifact(distilled_dir, QuantConfig(backend="onnxruntime", calib_samples=256, threads=threads, repeats=REPEATS), int8_dir)


def run_demo(out: str | Path, epochs: int = 15, seed: int = 0, console: Console | None = None, threads: int | None = None) -> dict[str, Any]:
    """Run the four stages into `out` and write `out/report.md` + `out/tradeoff.png`; returns the report rows."""
    console = console or Console()
    out = Path(out)
    input_size = (1, DEMO_IMAGE_SIZE, DEMO_IMAGE_SIZE)
    train_dir, pruned_dir, distilled_dir, int8_dir = out / "train", out / "pruned", out / "distilled", out / "int8"

    with pinned_threads(threads):
        _run_stages(console, train_dir, pruned_dir, distilled_dir, int8_dir, epochs, seed, threads)

    console.rule("measuring every stage in this process")
    test = get_dataset("digits", "test", DEMO_IMAGE_SIZE)
    rows = []
    with pinned_threads(threads) as used:
        for label, directory in (("trained fp32", train_dir), ("pruned (no fine-tune)", pruned_dir), ("pruned + NKD", distilled_dir)):
            model = load_artifact(directory).model
            rows.append({
                "stage": label, "runtime": "torch eager fp32", "accuracy": accuracy(model, test), "params": count_params(model),
                "macs": count_macs(model, input_size),
                "latency_ms": {str(b): measure_latency(model, input_size, b, 5, REPEATS).median_ms for b in (1, 32)},
            })
        runtime, meta = load_quantized_runtime(int8_dir, threads=threads)
        predictions = runtime_predictions(runtime, test.images)
        rows.append({
            "stage": "pruned + NKD + INT8", "runtime": "onnxruntime int8", "accuracy": float((predictions == test.labels.numpy()).mean()),
            "params": rows[-1]["params"], "macs": rows[-1]["macs"], "latency_ms": runtime_latency_ms(runtime, input_size, repeats=REPEATS),
        })
    base = rows[0]["latency_ms"]["32"]
    table_rows = [
        [r["stage"], r["runtime"], f"{r['accuracy']:.4f}", f"{r['params']:,}", f"{r['macs'] / 1e6:.2f}M", f"{r['latency_ms']['1']:.2f}", f"{r['latency_ms']['32']:.2f}", f"{base / r['latency_ms']['32']:.2f}x"]
        for r in rows
    ]
    header = ["stage", "runtime", "test top-1", "params", "MACs", "bs1 ms", "bs32 ms", "bs32 speed-up"]
    table = Table(title=f"slimvision demo — digits test split, {used} threads, median of {REPEATS} runs")
    for column in header:
        table.add_column(column, justify="left" if column in ("stage", "runtime") else "right")
    for row in table_rows:
        table.add_row(*row)
    console.print(table)
    plot = tradeoff_plot(
        [r["stage"] for r in rows], [r["latency_ms"]["32"] for r in rows], [r["accuracy"] for r in rows],
        out / "tradeoff.png", "latency at batch 32 (ms, CPU)", "test top-1", "slimvision demo: accuracy vs latency",
    )
    report = [
        "# slimvision demo report",
        "",
        "resnet20 trained on digits (1,797 real 8x8 images, upsampled to 32x32), pruned to half its MACs with L1 channel "
        "pruning (torch-pruning), recovered with NKD distillation from the unpruned model (3 epochs), and quantized to INT8 "
        "(onnxruntime static QDQ, 256 calibration images).",
        "",
        markdown_table(header, table_rows),
        "",
        f"Conditions: CPU, {used} threads pinned, median of {REPEATS} runs after 5 warm-up, every row measured in the same "
        f"process; accuracy on the {len(test)}-image test split; MACs per image (conv/linear via torch's flop counter, FLOPs/2). "
        "Speed-up is against the trained fp32 model in PyTorch eager mode.",
        "",
        f"![accuracy vs latency]({plot.name})",
        "",
    ]
    atomic_write_bytes(out / "report.md", "\n".join(report).encode())
    console.print(f"report written to {out / 'report.md'}")
    return {"rows": rows, "report": str(out / "report.md")}

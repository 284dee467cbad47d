"""`slimvision distill`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from slimvision.cli.app import app, console, print_json


@app.command("distill")
def distill_command(
    student: str = typer.Option(..., "--student", help="Student: zoo name (trained from scratch) or model directory (e.g. a pruned model)."),
    out: Path = typer.Option(..., "--out", help="Directory for the distilled student artifact."),
    teacher: Optional[Path] = typer.Option(None, "--teacher", help="Teacher model directory (not needed for uskd and ema)."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset (default: the recorded one)."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Local path for cifar10 / imagefolder."),
    image_size: Optional[int] = typer.Option(None, "--image-size", help="Image size (default: the recorded one)."),
    loss: str = typer.Option("kd", "--loss", help="none | kd | nkd | uskd | feature | ema."),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="Softening temperature (default: kd 4, nkd 1)."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="Loss weight (kd/ema: KD share vs CE, 0.9/0.5; nkd: gamma 1.5; feature: 1.0; uskd: 1.0)."),
    student_layer: Optional[str] = typer.Option(None, "--student-layer", help="feature/uskd: student layer name (e.g. layer3)."),
    teacher_layer: Optional[str] = typer.Option(None, "--teacher-layer", help="feature: teacher layer name."),
    epochs: int = typer.Option(10, "--epochs", help="Training epochs."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Learning rate (default: 0.1 from scratch, 0.01 for a model directory)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Train a student with a distillation loss (KD, NKD, USKD, feature, EMA teacher)."""
    from slimvision.distill import DistillConfig, distill_artifact
    from slimvision.io import is_artifact_dir
    from slimvision.train import TrainConfig

    config = DistillConfig(loss, temperature, alpha, student_layer, teacher_layer)
    default_lr = 0.01 if is_artifact_dir(student) else 0.1
    train_config = TrainConfig(epochs=epochs, lr=lr or default_lr, seed=seed, warmup_epochs=0 if is_artifact_dir(student) else 1)
    summary = distill_artifact(teacher, student, config, out, train_config, data, image_size, data_root)
    if not summary:  # a data-parallel rank other than 0
        return
    if json_output:
        print_json(summary)
    else:
        teacher_acc = "n/a" if summary["accuracy_teacher"] is None else f"{summary['accuracy_teacher']:.4f}"
        console.print(
            f"distilled ({loss}) -> {out}: student {summary['accuracy_student_before']:.4f} -> {summary['accuracy_student']:.4f}, teacher {teacher_acc}"
        )

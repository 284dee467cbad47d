"""`slimvision distill`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from slimvision.cli.app import CHANNELS_LAST_HELP, MODEL_SOURCE_HELP, app, console, model_source, print_json
from slimvision.cli.validate import OVERWRITE_HELP, finite_non_negative, finite_positive, fraction


@app.command("distill")
def distill_command(
    student: str = typer.Option(..., "--student", help=f"Student: a model directory (e.g. a pruned model) or any model source ({MODEL_SOURCE_HELP}; trained from its initialization unless --student-weights)."),
    out: Path = typer.Option(..., "--out", help="Directory for the distilled student artifact."),
    teacher: Optional[str] = typer.Option(None, "--teacher", help="Teacher: a model directory or a builder with --teacher-weights (not needed for uskd and ema)."),
    student_kwargs: Optional[str] = typer.Option(None, "--student-kwargs", help="JSON keyword arguments for the student's builder."),
    student_weights: Optional[str] = typer.Option(None, "--student-weights", help="Weights file (.pt/.safetensors) for a built student."),
    teacher_kwargs: Optional[str] = typer.Option(None, "--teacher-kwargs", help="JSON keyword arguments for the teacher's builder."),
    teacher_weights: Optional[str] = typer.Option(None, "--teacher-weights", help="Weights file (.pt/.safetensors) for a built teacher."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset (default: the recorded one)."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Local path for cifar10 / imagefolder."),
    image_size: Optional[int] = typer.Option(None, "--image-size", min=1, help="Image size (default: the recorded one)."),
    loss: str = typer.Option("kd", "--loss", help="none | kd | nkd | uskd | feature | ema."),
    temperature: Optional[float] = typer.Option(None, "--temperature", callback=finite_positive, help="Softening temperature (default: kd 4, nkd 1)."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="Loss weight (kd/ema: KD share vs CE, 0.9/0.5; nkd: gamma 1.5; feature: 1.0; uskd: target-term alpha 1.0)."),
    beta: Optional[float] = typer.Option(None, "--beta", callback=finite_non_negative, help="uskd: weight of the Zipf non-target term (default 0.1)."),
    mu: Optional[float] = typer.Option(None, "--mu", callback=finite_non_negative, help="uskd: weight of the weak supervision (default 0.005)."),
    uskd_ranking: str = typer.Option("prob", "--uskd-ranking", help="uskd: prob (paper, first release) | log_prob (current released code)."),
    ema_decay: float = typer.Option(0.999, "--ema-decay", callback=fraction, help="ema: the teacher's decay per step (FuSTAL: 0.999, a memory of about 1/(1 - decay) = 1,000 steps; lower it for shorter runs)."),
    ema_start: float = typer.Option(0.6, "--ema-start", callback=fraction, help="ema: share of the epochs on cross-entropy alone before the EMA teacher's KD term starts (FuSTAL's code: 0.6; 0 distills from the first step)."),
    ema_warmup: bool = typer.Option(False, "--ema-warmup", help="ema: the Mean Teacher warm-up: the EMA is the plain mean of the weights so far until the run outgrows its memory (not in FuSTAL's code)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Published nkd/uskd values: imagenet-cnn | cifar100 (nkd T=3 gamma=3.5; uskd 0.1/0.1/0.1) | vit (nkd T=1 gamma=1)."),
    student_layer: Optional[str] = typer.Option(None, "--student-layer", help="feature/uskd: student layer name (e.g. layer2; for ViTs the block L/2, whose CLS token feeds the weak head)."),
    teacher_layer: Optional[str] = typer.Option(None, "--teacher-layer", help="feature: teacher layer name."),
    epochs: int = typer.Option(10, "--epochs", help="Training epochs."),
    lr: Optional[float] = typer.Option(None, "--lr", callback=finite_positive, help="Learning rate (default: 0.1 from scratch, 0.01 for a model directory)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    channels_last: bool = typer.Option(False, "--channels-last", help=CHANNELS_LAST_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Train a student with a distillation loss (KD, NKD, USKD, feature, EMA teacher)."""
    from slimvision.distill import DistillConfig, distill_artifact
    from slimvision.io import is_artifact_dir
    from slimvision.io.paths import guard_output
    from slimvision.train import TrainConfig

    guard_output(out, [student, teacher, student_weights, teacher_weights, data_root], overwrite)
    config = DistillConfig(loss, temperature, alpha, student_layer, teacher_layer, beta=beta, mu=mu, uskd_ranking=uskd_ranking, ema_decay=ema_decay, ema_start=ema_start, ema_warmup=ema_warmup, preset=preset)
    trained = is_artifact_dir(student) or student_weights is not None  # fine-tuning trained weights vs training from scratch
    train_config = TrainConfig(epochs=epochs, lr=lr or (0.01 if trained else 0.1), seed=seed, warmup_epochs=0 if trained else 1, channels_last=channels_last)
    student_source = model_source(student, student_kwargs, student_weights)
    teacher_source = model_source(teacher, teacher_kwargs, teacher_weights)
    summary = distill_artifact(teacher_source, student_source, config, out, train_config, data, image_size, data_root)
    if not summary:  # a data-parallel rank other than 0
        return
    if json_output:
        print_json(summary)
    else:
        teacher_acc = "n/a" if summary["accuracy_teacher"] is None else f"{summary['accuracy_teacher']:.4f}"
        console.print(
            f"distilled ({loss}) -> {out}: student {summary['accuracy_student_before']:.4f} -> {summary['accuracy_student']:.4f}, teacher {teacher_acc}"
        )

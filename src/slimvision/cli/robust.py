"""`slimvision robust eval`, `slimvision robust train`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from slimvision.cli.app import MODEL_KWARGS_HELP, MODEL_SOURCE_HELP, WEIGHTS_HELP, app, console, model_source, print_json
from slimvision.cli.validate import OVERWRITE_HELP, finite_non_negative, finite_positive

robust_app = typer.Typer(help="Adversarial and corruption robustness: evaluate, train adversarially.", no_args_is_help=True)
app.add_typer(robust_app, name="robust")

EPS_HELP = "Perturbation budget in pixel units of [0, 1] (linf: per pixel, l2: per image); the model's normalisation is applied after."


def _split_names(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


@robust_app.command("eval")
def robust_eval_command(
    model: str = typer.Option(..., "--model", help=f"The model: a saved model directory, or {MODEL_SOURCE_HELP} with --data."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset (default: the recorded one)."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Local path for cifar10 / imagefolder."),
    split: str = typer.Option("test", "--split", help="train | val | test."),
    image_size: Optional[int] = typer.Option(None, "--image-size", min=1, help="Image size (default: the recorded one)."),
    model_kwargs: Optional[str] = typer.Option(None, "--model-kwargs", help=MODEL_KWARGS_HELP),
    weights: Optional[str] = typer.Option(None, "--weights", help=WEIGHTS_HELP),
    attacks: str = typer.Option("fgsm,pgd", "--attacks", help="Comma-separated attacks: fgsm, pgd."),
    eps: float = typer.Option(0.1, "--eps", callback=finite_non_negative, help=EPS_HELP),
    steps: int = typer.Option(10, "--steps", min=1, help="PGD steps."),
    step_size: Optional[float] = typer.Option(None, "--step-size", callback=finite_positive, help="PGD step size in pixel units (default 2.5 * eps / steps)."),
    norm: str = typer.Option("linf", "--norm", help="linf | l2."),
    random_start: bool = typer.Option(True, "--random-start/--no-random-start", help="PGD starts from a random point of the eps-ball."),
    corruptions: Optional[str] = typer.Option(None, "--corruptions", help="Comma-separated: gaussian_blur, gaussian_noise, jpeg, brightness (or 'all')."),
    severities: str = typer.Option("1,2,3,4,5", "--severities", help="Corruption severities (1..5), comma-separated."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Evaluate the first N images only."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random start and the noise corruption."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON (accuracy_clean, accuracy_fgsm, accuracy_pgd in 0..1)."),
) -> None:
    """Clean, FGSM, PGD (and corruption) accuracy of a model; attacks run on pixels with the recorded normalisation."""
    from slimvision.errors import ConfigError
    from slimvision.robust import CORRUPTIONS, AttackConfig, evaluate_robustness

    config = AttackConfig(eps=eps, steps=steps, step_size=step_size, norm=norm, random_start=random_start, seed=seed)
    chosen = list(CORRUPTIONS) if corruptions == "all" else _split_names(corruptions or "")
    try:
        levels = [int(level) for level in _split_names(severities)]
    except ValueError:
        raise ConfigError(f"--severities must be integers 1..5 separated by commas, got {severities!r}") from None
    result = evaluate_robustness(model_source(model, model_kwargs, weights), _split_names(attacks), config, data, split,
                                 image_size, data_root, chosen, levels, limit)
    if json_output:
        print_json(result)
        return
    parts = [f"{key.removeprefix('accuracy_')} {value:.4f}" for key, value in result.items() if key.startswith("accuracy_")]
    console.print(f"{model} on {result['data']} {split} ({result['samples']} images, {norm} eps {eps}): " + ", ".join(parts))


@robust_app.command("train")
def robust_train_command(
    model: str = typer.Option(..., "--model", help=f"The model: {MODEL_SOURCE_HELP} (a model directory fine-tunes its weights)."),
    data: str = typer.Option(..., "--data", help="digits | cifar10 | imagefolder | synthetic."),
    out: Path = typer.Option(..., "--out", help="Directory for the trained model artifact."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Local path for cifar10 / imagefolder."),
    image_size: Optional[int] = typer.Option(None, "--image-size", min=1, help="Image size."),
    model_kwargs: Optional[str] = typer.Option(None, "--model-kwargs", help=MODEL_KWARGS_HELP),
    weights: Optional[str] = typer.Option(None, "--weights", help=WEIGHTS_HELP),
    method: str = typer.Option("pgd", "--method", help="pgd (train on PGD examples) | trades (clean CE + beta * KL to the adversarial output) | none."),
    eps: float = typer.Option(0.1, "--eps", callback=finite_non_negative, help=EPS_HELP),
    steps: int = typer.Option(5, "--steps", min=1, help="PGD steps per training batch."),
    step_size: Optional[float] = typer.Option(None, "--step-size", callback=finite_positive, help="PGD step size in pixel units (default 2.5 * eps / steps)."),
    norm: str = typer.Option("linf", "--norm", help="linf | l2."),
    trades_beta: float = typer.Option(6.0, "--trades-beta", callback=finite_non_negative, help="trades: weight of the KL term."),
    epochs: int = typer.Option(10, "--epochs", min=1, help="Training epochs."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Batch size."),
    lr: float = typer.Option(0.05, "--lr", callback=finite_positive, help="Peak learning rate (SGD, cosine)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    json_output: bool = typer.Option(False, "--json", help="Print the final metrics as JSON."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
) -> None:
    """Train adversarially (PGD or TRADES) through the Trainer's callbacks; reports clean, FGSM and PGD test accuracy."""
    from slimvision.io.paths import guard_output
    from slimvision.robust import AdversarialConfig, AttackConfig, adversarial_train
    from slimvision.train import TrainConfig

    guard_output(out, [model, weights, data_root], overwrite)
    attack = AttackConfig(eps=eps, steps=steps, step_size=step_size, norm=norm, seed=seed)
    config = None if method == "none" else AdversarialConfig(method, attack, trades_beta)
    train_config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, progress=not json_output)
    metrics = adversarial_train(model_source(model, model_kwargs, weights), data, out, train_config, config, image_size, data_root, attack)
    if json_output:
        print_json(metrics)
        return
    console.print(f"trained {model} ({method}) -> {out}: clean {metrics['accuracy_clean']:.4f}, "
                  f"FGSM {metrics['accuracy_fgsm']:.4f}, PGD {metrics['accuracy_pgd']:.4f} ({norm} eps {eps})")

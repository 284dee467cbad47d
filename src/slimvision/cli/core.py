"""Foundation commands: models, profile, train, eval, demo."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from slimvision.cli.app import CHANNELS_LAST_HELP, MODEL_KWARGS_HELP, MODEL_SOURCE_HELP, WEIGHTS_HELP, app, console, model_source, print_json
from slimvision.cli.validate import finite_non_negative, finite_positive, fraction
from slimvision.errors import ConfigError


@app.command("models")
def models_command(json_output: bool = typer.Option(False, "--json", help="Print the list as JSON.")) -> None:
    """List the model zoo."""
    from slimvision.models import list_models

    names = list_models()
    if json_output:
        print_json(names)
        return
    table = Table(title="slimvision model zoo")
    table.add_column("name")
    for name in names:
        table.add_row(name)
    console.print(table)


@app.command("profile")
def profile_command(
    model: str = typer.Argument(..., help=f"The model: {MODEL_SOURCE_HELP}."),
    input_size: Optional[tuple[int, int, int]] = typer.Option(None, "--input-size", help="C H W (default: the artifact's data, else 3 32 32)."),
    num_classes: Optional[int] = typer.Option(None, "--num-classes", min=1, help="Classes for a zoo model (default 10)."),
    model_kwargs: Optional[str] = typer.Option(None, "--model-kwargs", help=MODEL_KWARGS_HELP),
    weights: Optional[str] = typer.Option(None, "--weights", help=WEIGHTS_HELP),
    batch_size: Optional[list[int]] = typer.Option(None, "--batch-size", min=1, help="Batch size to time; repeat for several (default 1 and 32)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="torch intra-op threads (default: torch's)."),
    repeats: int = typer.Option(20, "--repeats", min=1, help="Timed runs per batch size (median and p90 reported)."),
    backend: Optional[str] = typer.Option(None, "--backend", help="Quantized artifacts: runtime to run them on (onnxruntime, openvino, torchao)."),
    json_output: bool = typer.Option(False, "--json", help="Print the profile as JSON."),
) -> None:
    """Measure params, MACs, latency (median/p90) and peak memory of a model (or latency of a quantized one)."""
    from slimvision.io import resolve_model
    from slimvision.measure import profile
    from slimvision.quant.run import is_quantized_dir, profile_quantized

    if is_quantized_dir(model):
        result = profile_quantized(model, backend, threads, repeats)
        if json_output:
            print_json(result)
        else:
            console.print(result)
        return

    source = model_source(model, model_kwargs, weights)
    module, arch, meta = resolve_model(source, num_classes=num_classes, in_chans=input_size[0] if input_size else None)
    if input_size is None:
        data = meta.get("data")
        input_size = (data["in_chans"], data["image_size"], data["image_size"]) if data else (3, 32, 32)
    if min(input_size) < 1:
        raise ConfigError(f"--input-size must be positive, got {input_size}")
    batches = tuple(batch_size) if batch_size else (1, 32)
    result = profile(module, tuple(input_size), name=model, batch_sizes=batches, threads=threads, repeats=repeats)
    if json_output:
        print_json(result.to_dict())
    else:
        console.print(result.to_table())


@app.command("train")
def train_command(
    out: Path = typer.Option(..., "--out", help="Run directory: checkpoints/, run.json and the final model artifact."),
    model: Optional[str] = typer.Option(None, "--model", help="Zoo name (see `slimvision models`), module:function, path/to/file.py:function, timm:NAME or torchvision:NAME."),
    model_kwargs: Optional[str] = typer.Option(None, "--model-kwargs", help=MODEL_KWARGS_HELP),
    weights: Optional[str] = typer.Option(None, "--weights", help="Start from these weights (.pt loaded as tensors only, or .safetensors)."),
    data: Optional[str] = typer.Option(None, "--data", help="digits | digits-hard | cifar10 | cifar100 | imagefolder | synthetic."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Local path for cifar10 / cifar100 / imagefolder (ImageNet layout: train/ and val/)."),
    image_size: Optional[int] = typer.Option(None, "--image-size", min=1, help="Resize images to S x S (digits: 8 native, 32 for ResNets)."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="Loader worker processes (default 0); results do not depend on it."),
    download: bool = typer.Option(False, "--download", help="cifar10/cifar100: fetch the official archive into --data-root if absent (md5-checked)."),
    skip_bad_images: bool = typer.Option(False, "--skip-bad-images", help="Leave out images that cannot be decoded (each named on stderr, counted in the metrics)."),
    augment: Optional[bool] = typer.Option(None, "--augment/--no-augment", help="Crop + flip augmentation (default on)."),
    auto_augment: Optional[str] = typer.Option(None, "--auto-augment", help="trivialaugment | randaugment (RGB data)."),
    mixup: Optional[float] = typer.Option(None, "--mixup", callback=fraction, help="Probability that a batch is mixed with MixUp (default 0)."),
    cutmix: Optional[float] = typer.Option(None, "--cutmix", callback=fraction, help="Probability that a batch is mixed with CutMix (default 0)."),
    max_steps_per_epoch: Optional[int] = typer.Option(None, "--max-steps-per-epoch", min=1, help="Train on at most this many batches per epoch."),
    channels_last: Optional[bool] = typer.Option(
        None, "--channels-last/--no-channels-last",
        help=CHANNELS_LAST_HELP + " Default off.",
    ),
    checkpoint_activations: Optional[bool] = typer.Option(
        None, "--checkpoint-activations/--keep-activations",
        help="Recompute each block in the backward pass instead of keeping its activations: far less memory at 224 px for one extra forward pass per step; same weights.",
    ),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs (default 10)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Batch size (default 64)."),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", help="sgd (default) or adamw."),
    lr: Optional[float] = typer.Option(None, "--lr", callback=finite_positive, help="Peak learning rate (default: 0.1 sgd, 1e-3 adamw)."),
    weight_decay: Optional[float] = typer.Option(None, "--weight-decay", callback=finite_non_negative, help="Weight decay (default: 5e-4 sgd, 0.05 adamw)."),
    label_smoothing: Optional[float] = typer.Option(None, "--label-smoothing", callback=fraction, help="Label smoothing (default 0)."),
    ema_decay: Optional[float] = typer.Option(None, "--ema-decay", help="Keep an EMA of the weights with this decay and save it."),
    ema_warmup: Optional[bool] = typer.Option(None, "--ema-warmup/--no-ema-warmup", help="Warm the EMA's decay up as min(decay, 1 - 1/(n+1)) at its n-th update (default on), so a run shorter than its memory of ~1/(1 - decay) steps does not save mostly the initial weights."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Random seed (default 0); same seed, same weights."),
    save_every: Optional[int] = typer.Option(None, "--save-every", min=1, help="Checkpoint every K epochs (default 1)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its newest checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start over in an existing --out (its previous run and model files are removed)."),
    json_output: bool = typer.Option(False, "--json", help="Print the final metrics as JSON."),
) -> None:
    """Train a model (zoo or your own builder); checkpoints every K epochs and resumes exactly with --resume."""
    from slimvision.io.paths import guard_output
    from slimvision.train.checkpoint import remove_run_files
    from slimvision.train.config import TrainConfig
    from slimvision.train.run import RunSpec, load_run_spec, train_run

    options = {
        "epochs": epochs, "batch_size": batch_size, "optimizer": optimizer, "lr": lr, "weight_decay": weight_decay,
        "label_smoothing": label_smoothing, "ema_decay": ema_decay, "ema_warmup": ema_warmup, "seed": seed, "save_every": save_every,
        "augment": augment, "auto_augment": auto_augment, "mixup": mixup, "cutmix": cutmix, "max_steps_per_epoch": max_steps_per_epoch,
        "channels_last": channels_last,
    }
    given = {k: v for k, v in options.items() if v is not None}
    if resume:
        spec = load_run_spec(out)
        recorded = {"model": spec.model, "data": spec.data, "image_size": spec.image_size, **spec.config.to_dict()}
        asked = {"model": model, "data": data, "image_size": image_size, **given}
        if model_kwargs is not None or weights is not None:
            raise ConfigError("--resume continues the recorded run: --model-kwargs and --weights cannot change it")
        for key, value in asked.items():
            if value is not None and recorded.get(key) != value:
                raise ConfigError(f"--resume: {key}={value!r} differs from the run's recorded {recorded.get(key)!r} in {out / 'run.json'}")
        if workers is not None:  # the worker count never changes the result, so a resumed run may use another
            spec.config.workers = workers
        if checkpoint_activations is not None:  # neither does recomputing activations
            spec.config.checkpoint_activations = checkpoint_activations
    else:
        if model is None or data is None:
            raise ConfigError("train needs --model and --data (or --resume with an existing --out)")
        from slimvision.models.sources import FILE, parse_model_source

        source = model_source(model, model_kwargs, weights)
        kind, target = parse_model_source(model)
        unchanged_result = {"workers": workers, "checkpoint_activations": checkpoint_activations}
        config = TrainConfig(**given, **{k: v for k, v in unchanged_result.items() if v is not None})
        # run.json keeps a file builder's absolute path, so --resume works from any directory
        spec = RunSpec(target if kind == FILE else model, data, image_size, data_root, source.kwargs,
                       skip_bad_images=skip_bad_images, config=config, weights=source.weights)
        guard_output(out, [data_root, weights], overwrite, hint="pass --resume to continue it or --overwrite to start over")
        if overwrite:
            remove_run_files(out)
    metrics = train_run(spec, out, resume=resume, download=download)
    if not metrics:  # a data-parallel rank other than 0: rank 0 prints
        return
    if json_output:
        print_json(metrics)
    else:
        skipped = f", {metrics['skipped_images']} unreadable images skipped" if "skipped_images" in metrics else ""
        console.print(f"[green]trained[/green] {spec.model} on {spec.data}: test accuracy {metrics['accuracy']:.4f}{skipped} -> {out}")


@app.command("eval")
def eval_command(
    model_dir: str = typer.Argument(..., help=f"The model: a saved model directory, or any model source ({MODEL_SOURCE_HELP}) with --data."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset (default: the one recorded in meta.json)."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Local path for cifar10 / imagefolder."),
    split: str = typer.Option("test", "--split", help="train | val | test."),
    image_size: Optional[int] = typer.Option(None, "--image-size", min=1, help="Override the recorded image size."),
    backend: Optional[str] = typer.Option(None, "--backend", help="Quantized artifacts: runtime to run them on."),
    model_kwargs: Optional[str] = typer.Option(None, "--model-kwargs", help=MODEL_KWARGS_HELP),
    weights: Optional[str] = typer.Option(None, "--weights", help=WEIGHTS_HELP),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON (accuracy in 0..1)."),
) -> None:
    """Top-1/top-5 accuracy of a saved model (fp32 or quantized) or any model source; preprocessing comes from its record."""
    from slimvision.measure.evaluate import evaluate_artifact
    from slimvision.quant.run import evaluate_quantized, is_quantized_dir

    if is_quantized_dir(model_dir):
        result = evaluate_quantized(model_dir, backend, split)
    else:
        result = evaluate_artifact(model_source(model_dir, model_kwargs, weights), data, split, image_size, data_root)
    if json_output:
        print_json(result)
    else:
        console.print(f"{model_dir}: top-1 accuracy {result['accuracy']:.4f} on {result['data']} {split} ({result['samples']} images)")


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Where the demo writes its models and report."),
    epochs: int = typer.Option(15, "--epochs", help="Training epochs for the digits model."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Threads for training and every latency measurement."),
) -> None:
    """Train -> prune -> distill -> quantize on the bundled digits data and write a report (a few minutes on 2 cores; resumable)."""
    from slimvision.pipeline.demo import run_demo

    run_demo(out, epochs=epochs, seed=seed, console=console, threads=threads)

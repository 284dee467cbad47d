"""One function per stage kind: each calls its verb's library function with the options the recipe gave it.

A stage writes into `<run>/<stage>/`: fp32 models and INT8 artifacts to `model/`, an ONNX export
to `model.onnx`, a compressed checkpoint archive to `checkpoints.svckpt`. Prune (its fine-tuning) and
distill keep training checkpoints in `<run>/<stage>/checkpoints/` while they run, so a rerun after a
kill continues from the newest one; they are removed once the stage's artifact is written.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from slimvision.models import ModelSource
from slimvision.pipeline.recipe import Recipe
from slimvision.train.checkpoint import CHECKPOINT_DIR

ARTIFACT_DIR = "model"
EXPORT_FILE = "model.onnx"
ARCHIVE_FILE = "checkpoints.svckpt"


@dataclass
class StageContext:
    """What a stage needs besides its options: the recipe, its own directory and where its inputs live."""

    recipe: Recipe
    directory: Path
    model: str | ModelSource | None  # the input model: an earlier stage's artifact dir or the recipe's model source
    teacher: str | ModelSource | None = None
    resume: bool = False  # an interrupted run of this exact stage left checkpoints to continue from

    @property
    def output(self) -> Path:
        return self.directory / ARTIFACT_DIR

    @property
    def data(self) -> tuple[str, int | None, str | None]:
        return self.recipe.data.name, self.recipe.data.image_size, self.recipe.data.root


def _fresh(path: Path) -> None:
    """Remove a previous, unfinished or outdated output before the stage writes a new one."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _start_checkpoints(ctx: StageContext) -> None:
    """Keep the training checkpoints of an interrupted run of this same stage; otherwise start without any."""
    if not ctx.resume:
        _fresh(ctx.directory / CHECKPOINT_DIR)


def run_train(stage, ctx: StageContext) -> dict[str, Any]:
    from slimvision.models import parse_model_source
    from slimvision.models.sources import FILE
    from slimvision.train.checkpoint import checkpoint_dirs
    from slimvision.train.run import RunSpec, train_run

    recipe = ctx.recipe
    model = stage.model or recipe.model
    kwargs = stage.model_kwargs if stage.model else recipe.model_kwargs
    weights = stage.weights if stage.model else (stage.weights or recipe.weights)
    kind, target = parse_model_source(model)
    name, image_size, root = ctx.data
    spec = RunSpec(target if kind == FILE else model, name, image_size, root, kwargs, config=stage.train_config(recipe.seed), weights=weights)
    resume = ctx.resume and bool(checkpoint_dirs(ctx.output))
    if not resume:
        _fresh(ctx.output)
    return train_run(spec, ctx.output, resume=resume)


def run_prune(stage, ctx: StageContext) -> dict[str, Any]:
    from slimvision.prune import prune_artifact

    _fresh(ctx.output)
    _start_checkpoints(ctx)
    name, image_size, root = ctx.data
    result = prune_artifact(
        ctx.model, stage.prune_config(ctx.recipe.seed), ctx.output, name, image_size, root, stage.finetune_config(ctx.recipe.seed), ctx.recipe.threads,
        checkpoint_dir=ctx.directory, resume=ctx.resume,
    )
    _fresh(ctx.directory / CHECKPOINT_DIR)  # the artifact is written: its training checkpoints are no longer needed
    return result


def run_distill(stage, ctx: StageContext) -> dict[str, Any]:
    from slimvision.distill import distill_artifact

    _fresh(ctx.output)
    _start_checkpoints(ctx)
    name, image_size, root = ctx.data
    result = distill_artifact(
        ctx.teacher, ctx.model, stage.distill_config(), ctx.output, stage.train_config(ctx.recipe.seed), name, image_size, root,
        checkpoint_dir=ctx.directory, resume=ctx.resume,
    )
    _fresh(ctx.directory / CHECKPOINT_DIR)
    return result


def run_quantize(stage, ctx: StageContext) -> dict[str, Any]:
    from slimvision.quant import quantize_artifact

    _fresh(ctx.output)
    name, image_size, root = ctx.data
    return quantize_artifact(ctx.model, stage.quant_config(ctx.recipe.seed, ctx.recipe.threads), ctx.output, name, image_size, root)


def run_export(stage, ctx: StageContext) -> dict[str, Any]:
    from slimvision.io import recorded_input_size, resolve_model
    from slimvision.quant import export_onnx

    module, _, meta = resolve_model(ctx.model)
    path = export_onnx(module, recorded_input_size(meta), ctx.directory / EXPORT_FILE)
    return {"file": str(path), "size_bytes": path.stat().st_size}


def run_ckpt_compress(stage, ctx: StageContext) -> dict[str, Any]:
    from slimvision.ckpt.excp import compress_run

    result = compress_run(str(ctx.model), ctx.directory / ARCHIVE_FILE, stage.compress_config())
    return {"checkpoints": result.n_checkpoints, "raw_bytes": result.raw_bytes, "compressed_bytes": result.compressed_bytes, "ratio": result.ratio}


def stage_output(kind: str, directory: Path) -> Path:
    """Where a stage of `kind` writes its result inside its directory."""
    return directory / {"export": EXPORT_FILE, "ckpt-compress": ARCHIVE_FILE}.get(kind, ARTIFACT_DIR)


RUNNERS: dict[str, Callable[[Any, StageContext], dict[str, Any]]] = {
    "train": run_train, "prune": run_prune, "distill": run_distill, "quantize": run_quantize,
    "export": run_export, "ckpt-compress": run_ckpt_compress,
}

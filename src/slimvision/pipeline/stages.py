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
SEARCH_DIR = "results"  # a search stage's evaluations.jsonl, pareto.json, pareto.png (and its strategy's own state)
PARETO_FILE = "pareto.json"


@dataclass
class StageContext:
    """What a stage needs besides its options: the recipe, its own directory and where its inputs live."""

    recipe: Recipe
    directory: Path
    model: str | ModelSource | None  # the input model: an earlier stage's artifact dir or the recipe's model source
    teacher: str | ModelSource | None = None
    resume: bool = False  # an interrupted run of this exact stage left checkpoints to continue from
    supernet: str | None = None  # search: the supernet to score with; derive: the supernet to inherit weights from

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


def run_supernet(stage, ctx: StageContext) -> dict[str, Any]:
    from slimvision.nas.supernet.train import train_supernet
    from slimvision.train.checkpoint import checkpoint_dirs

    name, image_size, root = ctx.data
    resume = ctx.resume and bool(checkpoint_dirs(ctx.output))
    if not resume:
        _fresh(ctx.output)
    return train_supernet(stage.supernet_config(ctx.recipe.seed), ctx.output, name, image_size, resume, root)


def run_search(stage, ctx: StageContext) -> dict[str, Any]:
    from slimvision.data import get_dataset
    from slimvision.errors import ConfigError
    from slimvision.nas import SPACES, create_evaluator
    from slimvision.nas.strategies import run_search as search

    name, image_size, root = ctx.data
    spec = get_dataset(name, "val", image_size, root=root).spec
    results = ctx.directory / SEARCH_DIR
    if not ctx.resume:  # an interrupted search of the same stage continues from its evaluation log
        _fresh(results)
    space = SPACES.get(stage.space)()
    config = stage.search_config(ctx.recipe.seed, spec.input_size[-1], spec.in_chans, spec.num_classes, ctx.recipe.threads)
    context = {"supernet": ctx.supernet, "data": name, "data_root": root, "image_size": spec.input_size[-1], "seed": config.seed}
    front = search(space, create_evaluator(stage.evaluator, space, **context), stage.constraints(), config, results)
    if not front:
        raise ConfigError(f"stage {stage.stage_name!r}: no architecture of {config.trials} trials met the constraints; loosen max_macs / max_params / max_latency_ms")
    best = max(front, key=lambda point: point["score"])
    return {"pareto": str(results / PARETO_FILE), "points": len(front), "best_score": best["score"], "best_macs": best["macs"]}


def run_derive(stage, ctx: StageContext) -> dict[str, Any]:
    from slimvision.data import get_dataset
    from slimvision.io import atomic_write_json, read_json
    from slimvision.nas.derive import derive

    pareto = Path(str(ctx.model)) / SEARCH_DIR / PARETO_FILE
    front = read_json(pareto)["front"]
    index = stage.index if stage.index is not None else max(range(len(front)), key=lambda i: front[i]["score"])
    _fresh(ctx.output)
    result = derive(pareto, index, ctx.output, ctx.supernet)
    meta_file = ctx.output / "meta.json"
    meta = read_json(meta_file)
    if not meta.get("data"):  # fresh weights: record the recipe's data so later stages and the report know what it is for
        name, image_size, root = ctx.data
        atomic_write_json(meta_file, {**meta, "data": get_dataset(name, "train", image_size, root=root).spec.to_dict()})
    point = front[index]
    return {"index": index, "score": point["score"], "macs": point["macs"], "params": point["params"], "inherited": result["inherited"], "arch": result["arch"]}


def stage_output(kind: str, directory: Path) -> Path:
    """Where a stage of `kind` writes its result inside its directory."""
    return directory / {"export": EXPORT_FILE, "ckpt-compress": ARCHIVE_FILE, "search": f"{SEARCH_DIR}/{PARETO_FILE}"}.get(kind, ARTIFACT_DIR)


RUNNERS: dict[str, Callable[[Any, StageContext], dict[str, Any]]] = {
    "train": run_train, "prune": run_prune, "distill": run_distill, "quantize": run_quantize,
    "export": run_export, "ckpt-compress": run_ckpt_compress, "supernet": run_supernet, "search": run_search, "derive": run_derive,
}

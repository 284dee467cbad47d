"""`optimize`: run a recipe's stages in order into a run directory, skipping finished ones, then measure and report.

Resume rule: stages are finished in order; the first stage that is not finished with its current
hash (options, inputs, files it reads) — or the `force`d one — is run again, and so is every stage
after it. A train, supernet, prune (its fine-tuning) or distill stage interrupted with the same hash
continues from its last training checkpoint, a search stage from its evaluation log.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from slimvision.errors import ConfigError
from slimvision.io import atomic_write_bytes
from slimvision.io.paths import guard_output
from slimvision.models import ModelSource
from slimvision.pipeline.recipe import MODEL_STAGES, Recipe, load_recipe, recipe_from_dict
from slimvision.pipeline.stages import ARTIFACT_DIR, RUNNERS, StageContext, stage_output
from slimvision.pipeline.state import StageRecord, path_fingerprint, stage_hash

RECIPE_COPY = "recipe.yaml"


@dataclass
class StagePlan:
    """One stage as this run sees it: its options, hash, inputs and whether it is already finished."""

    index: int
    stage: Any
    directory: Path
    digest: str
    model: str | ModelSource | None
    teacher: str | ModelSource | None
    done: bool
    supernet: str | None = None  # search: the supernet it scores with; derive: the supernet it inherits weights from


def _recipe_source(recipe: Recipe) -> ModelSource | None:
    return ModelSource(recipe.model, recipe.model_kwargs, recipe.weights) if recipe.model else None


def plan_run(recipe: Recipe, out: Path, force: str | None = None) -> list[StagePlan]:
    """Each stage's inputs and hash, and which are finished; the first unfinished (or forced) stage and all after it are not."""
    if force is not None and force not in recipe.names():
        raise ConfigError(f"--force {force!r}: the recipe has no such stage; its stages: {', '.join(recipe.names())}")
    digests: dict[str, str] = {}
    latest_model: str | None = None
    plans, redo = [], False
    common = {"data": recipe.data.model_dump(), "seed": recipe.seed}
    for index, stage in enumerate(recipe.stages):
        name = stage.stage_name
        directory = out / name
        options = {**stage.model_dump(exclude={"label", "name"}), **common}
        upstream, files = {}, {"data_root": path_fingerprint(recipe.data.root)}
        model = teacher = supernet = None
        if stage.stage == "supernet":
            pass  # reads only the recipe's data
        elif stage.stage == "search":
            wanted = stage.supernet if stage.supernet is not None else _latest(recipe, index, "supernet")
            if wanted in digests:
                supernet, upstream["supernet"] = str(out / wanted / ARTIFACT_DIR), digests[wanted]
            elif wanted is not None:
                supernet, files["supernet"] = wanted, path_fingerprint(wanted)
        elif stage.stage == "derive":
            wanted = stage.input or _latest(recipe, index, "search")
            model, upstream["input"] = str(out / wanted), digests[wanted]
            supernet = plans[recipe.names().index(wanted)].supernet if stage.inherit else None
        elif stage.stage == "train":
            source = stage.model or recipe.model
            options["source"] = {"model": source, "kwargs": stage.model_kwargs if stage.model else recipe.model_kwargs}
            files |= {"model": path_fingerprint(source), "weights": path_fingerprint(stage.weights if stage.model else (stage.weights or recipe.weights))}
        else:
            wanted = stage.input or (_latest(recipe, index, "train") if stage.stage == "ckpt-compress" else latest_model)
            if wanted is not None:
                model, upstream["input"] = str(out / wanted / ARTIFACT_DIR), digests[wanted]
            else:
                model = _recipe_source(recipe)
                options["source"] = {"model": recipe.model, "kwargs": recipe.model_kwargs}
                files |= {"model": path_fingerprint(recipe.model), "weights": path_fingerprint(recipe.weights)}
        if stage.stage == "distill" and stage.teacher is not None:
            if stage.teacher in digests:
                teacher, upstream["teacher"] = str(out / stage.teacher / ARTIFACT_DIR), digests[stage.teacher]
            else:
                teacher = ModelSource(stage.teacher, stage.teacher_kwargs, stage.teacher_weights)
                files |= {"teacher": path_fingerprint(stage.teacher), "teacher_weights": path_fingerprint(stage.teacher_weights)}
        digest = stage_hash(options, upstream, files)
        digests[name] = digest
        finished = StageRecord(directory).is_done(digest) and stage_output(stage.stage, directory).exists()
        redo = redo or name == force or not finished
        plans.append(StagePlan(index, stage, directory, digest, model, teacher, done=not redo, supernet=supernet))
        if stage.stage in MODEL_STAGES:
            latest_model = name
    return plans


def _latest(recipe: Recipe, index: int, kind: str) -> str | None:
    """The name of the last stage of `kind` before stage `index`."""
    names = [s.stage_name for s in recipe.stages[:index] if s.stage == kind]
    return names[-1] if names else None


def _inputs(recipe: Recipe) -> list[str | None]:
    files = [recipe.model, recipe.weights, recipe.data.root]
    for stage in recipe.stages:
        files += [getattr(stage, key, None) for key in ("model", "weights", "teacher_weights")]
        for key in ("teacher", "supernet"):
            if getattr(stage, key, None) not in (None, *recipe.names()):
                files.append(getattr(stage, key))
    return [f.rpartition(":")[0] if f and f.rpartition(":")[0].endswith(".py") else f for f in files]


def save_recipe_copy(recipe: Recipe, out: Path) -> None:
    """The validated recipe (paths made absolute) beside the stages, so `report RUN_DIR` and a rerun need nothing else."""
    text = yaml.safe_dump(recipe.model_dump(exclude_none=True), sort_keys=False)
    atomic_write_bytes(out / RECIPE_COPY, text.encode())


def load_run_recipe(run_dir: str | Path) -> Recipe:
    """The recipe a run directory was made with."""
    path = Path(run_dir) / RECIPE_COPY
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a run directory of `slimvision optimize` (no {RECIPE_COPY})")
    return load_recipe(path)


StageCallback = Callable[[StagePlan, int, str], None]  # (plan, total, event) with event "reused" | "start" | "done"


def run_recipe(recipe: Recipe | str | Path, out: str | Path, force: str | None = None, on_stage: StageCallback | None = None, report: bool = True) -> dict[str, Any]:
    """Run `recipe` into `out` (resuming a previous run there); returns {"stages": ..., "summary": ...}."""
    recipe_file = None if isinstance(recipe, Recipe) else Path(recipe)
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    out = Path(out)
    # the recipe file counts as an input: a run directory around it would overwrite it with the validated copy
    guard_output(out, [recipe_file, *_inputs(recipe)], overwrite=True)
    plans = plan_run(recipe, out, force)
    out.mkdir(parents=True, exist_ok=True)
    save_recipe_copy(recipe, out)
    from slimvision.measure import pinned_threads

    stages = []
    with pinned_threads(recipe.threads):
        for plan in plans:
            record = StageRecord(plan.directory)
            if plan.done:
                _notify(on_stage, plan, len(plans), "reused")
                stages.append({"stage": plan.stage.stage_name, "status": "reused"})
                continue
            resume = record.started_with(plan.digest)
            _notify(on_stage, plan, len(plans), "start")
            plan.directory.mkdir(parents=True, exist_ok=True)
            record.mark_running(plan.digest, plan.stage.stage, plan.stage.model_dump())
            found = _checkpoints(plan.directory) if resume else []
            record.log(f"start {plan.stage.stage} hash={plan.digest}{f' (resuming from checkpoint {found[-1].name})' if found else ''} options={plan.stage.model_dump()}")
            start = time.perf_counter()
            context = StageContext(recipe, plan.directory, plan.model, plan.teacher, resume, plan.supernet)
            try:
                result = RUNNERS[plan.stage.stage](plan.stage, context)
            except BaseException as exc:
                record.log(f"failed: {type(exc).__name__}: {exc}")
                raise
            record.log(f"done in {time.perf_counter() - start:.1f}s: {_short(result)}")
            record.mark_done(_jsonable(result))
            _notify(on_stage, plan, len(plans), "done")
            stages.append({"stage": plan.stage.stage_name, "status": "ran", "seconds": time.perf_counter() - start})
    summary = report_run(out, recipe) if report else None
    return {"stages": stages, "summary": summary}


def report_run(run_dir: str | Path, recipe: Recipe | None = None, remeasure: bool = True, rounds: int = 5, repeats: int = 10) -> list[dict[str, Any]]:
    """Measure every finished model of a run side by side and write summary.json, report.md and report.html."""
    from slimvision.report import ArtifactEntry, write_report

    run_dir = Path(run_dir)
    recipe = recipe or load_run_recipe(run_dir)
    entries, parents = [], {}
    latest = None
    for stage in recipe.stages:
        name = stage.stage_name
        kind = stage.stage
        record = StageRecord(run_dir / name).read()
        if kind in MODEL_STAGES or kind == "quantize":
            parent = None if kind in ("train", "derive") else (stage.input or latest)  # a derived model comes from a search, not a model
            if record and record.get("status") == "done":
                entries.append(ArtifactEntry(name, stage.label or name, kind, run_dir / name / ARTIFACT_DIR, parents.get(parent)))
            parents[name] = run_dir / name / ARTIFACT_DIR
        if kind in MODEL_STAGES:
            latest = name
    if not entries:
        started = any((run_dir / name / "stage.json").is_file() for name in recipe.names())
        what = "no finished model stage to report on" if started else "not a run directory of `slimvision optimize` (no stage has run)"
        raise ConfigError(f"{run_dir}: {what}")
    return write_report(run_dir, entries, recipe.threads, remeasure=remeasure, rounds=rounds, repeats=repeats)


def _checkpoints(directory: Path) -> list[Path]:
    """Training checkpoints an interrupted stage left: a train stage keeps them in its model directory, prune and distill beside it."""
    from slimvision.train.checkpoint import checkpoint_dirs

    return checkpoint_dirs(directory / ARTIFACT_DIR) or checkpoint_dirs(directory)


def _notify(callback: StageCallback | None, plan: StagePlan, total: int, event: str) -> None:
    if callback is not None:
        callback(plan, total, event)


def _short(result: dict[str, Any]) -> str:
    keys = ("accuracy", "accuracy_after", "accuracy_student", "accuracy_int8", "backend", "macs_kept", "ratio", "size_bytes", "resumed_from_epoch",
            "best_score", "points", "index", "score", "val_accuracy_largest")
    return ", ".join(f"{k}={result[k]}" for k in keys if k in result)


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))


__all__ = ["StagePlan", "load_run_recipe", "plan_run", "recipe_from_dict", "report_run", "run_recipe"]

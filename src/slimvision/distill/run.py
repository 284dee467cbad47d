"""`distill` and `distill_artifact`: train a student with a distillation loss using the foundation Trainer."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from slimvision.data import ImageDataset, load_splits
from slimvision.distill.distiller import DistillConfig, Distiller, copy_teacher
from slimvision.io import resolve_model, save_artifact, source_meta
from slimvision.measure import accuracy
from slimvision.models.sources import ModelSource
from slimvision.train import Trainer, TrainConfig, distributed, seed_everything
from slimvision.train.checkpoint import checkpoint_dirs, checkpoint_epoch


@dataclass
class DistillResult:
    student: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from_epoch: int = 0  # the checkpoint epoch training continued from (0: from the start)


def distill(
    student: nn.Module, teacher: nn.Module | None, train_set: ImageDataset, val_set: ImageDataset | None,
    config: DistillConfig, train_config: TrainConfig, checkpoint_dir: str | Path | None = None, resume: bool = False,
) -> DistillResult:
    """Train `student` (in place) with `config.loss` against `teacher` (not modified) and return it.

    With `checkpoint_dir` the student's training checkpoints go to `checkpoint_dir/checkpoints/` every
    `train_config.save_every` epochs, and `resume` continues from the newest one. Losses that train
    extra modules (feature projector, USKD weak head) are not checkpointed, since their optimizer state
    names parameters outside the student, nor is `ema`, whose teacher is not in the checkpoint.
    """
    teacher = copy_teacher(teacher) if teacher is not None else None
    example = train_set.images[: min(8, len(train_set))]
    distiller = Distiller(student, teacher, config, example).to(torch.device(train_config.resolved_device()))
    # the EMA teacher's weights are not in the trainer's checkpoint either: an `ema` run restarts too
    resumable = not distiller.extra_params and config.loss != "ema"
    out_dir = checkpoint_dir if checkpoint_dir is not None and resumable else None
    found = checkpoint_dirs(out_dir) if out_dir is not None and resume else []
    try:
        trainer = Trainer(student, train_set, val_set, train_config, out_dir=out_dir, callbacks=distiller.callbacks, loss_fn=distiller.loss_fn,
                          extra_params=distiller.extra_params)
        result = trainer.fit(resume=bool(found))
    finally:
        distiller.close()
    return DistillResult(student, result.history, checkpoint_epoch(found[-1]) if found else 0)


def distill_artifact(
    teacher: str | Path | ModelSource | None, student: str | ModelSource, config: DistillConfig, out_dir: str | Path, train_config: TrainConfig,
    data: str | None = None, image_size: int | None = None, data_root: str | None = None,
    checkpoint_dir: str | Path | None = None, resume: bool = False,
) -> dict[str, Any]:
    """Distill from the teacher into a student (each an artifact dir, e.g. a pruned model, or any model source) and save it.

    `checkpoint_dir` / `resume`: training checkpoints and continuing from them, as in `distill`.
    Under `torchrun` the student trains data-parallel; rank 0 saves and returns the summary, other ranks return {}.
    """
    with distributed.process_group():
        return _distill_artifact(teacher, student, config, out_dir, train_config, data, image_size, data_root, checkpoint_dir, resume)


def _distill_artifact(
    teacher: str | Path | ModelSource | None, student: str | ModelSource, config: DistillConfig, out_dir: str | Path, train_config: TrainConfig,
    data: str | None, image_size: int | None, data_root: str | None, checkpoint_dir: str | Path | None, resume: bool,
) -> dict[str, Any]:
    student_meta, teacher_meta = source_meta(student), source_meta(teacher) if teacher else {}
    recorded = student_meta.get("data") or teacher_meta.get("data")
    train_set, val_set, test_set = load_splits(recorded, data, image_size, data_root)
    classes = {"num_classes": train_set.spec.num_classes, "in_chans": train_set.spec.in_chans}  # for sources built here
    seed_everything(train_config.seed)  # a student built here is initialised from the seed, identically on every rank
    student_model, arch, _ = resolve_model(student, **classes)
    teacher_model = resolve_model(teacher, **classes)[0] if teacher else None
    accuracy_before = accuracy(student_model, test_set)
    result = distill(student_model, teacher_model, train_set, val_set, config, train_config, checkpoint_dir, resume)
    if not distributed.is_lead():
        return {}
    summary = {
        "loss": config.loss,
        "accuracy_student": accuracy(result.student, test_set),
        "accuracy_student_before": accuracy_before,
        "accuracy_teacher": accuracy(teacher_model, test_set) if teacher_model is not None else None,
        "epochs": train_config.epochs,
        "resumed_from_epoch": result.resumed_from_epoch,
    }
    meta = {
        "data": train_set.spec.to_dict(),
        "metrics": {"accuracy": summary["accuracy_student"]},
        "metrics_conditions": {"accuracy": f"top-1 on the {test_set.spec.name} test split ({len(test_set)} images)"},
        "distill": {**summary, "config": config.to_dict(), "train": train_config.to_dict(), "teacher": str(teacher) if teacher else None},
        "history": result.history,
        "parent": str(student),
    }
    save_artifact(result.student, arch.with_shapes_of(result.student), out_dir, meta)
    return summary

"""Evaluate a saved model on the data it was trained on (or another split/size)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slimvision.data import dataset_for
from slimvision.io import resolve_model, source_meta
from slimvision.measure.accuracy import evaluate_accuracy
from slimvision.models.sources import ModelSource


def evaluate_artifact(
    model_dir: str | Path | ModelSource, data: str | None = None, split: str = "test", image_size: int | None = None, data_root: str | None = None
) -> dict[str, Any]:
    """{'accuracy', 'top5', 'samples', ...} of the model in `model_dir` (or any model source, given `data`) on `split`."""
    meta = source_meta(model_dir)
    dataset = dataset_for(meta.get("data"), data, split, image_size, data_root)
    model, _, _ = resolve_model(model_dir, num_classes=dataset.spec.num_classes, in_chans=dataset.spec.in_chans)
    topk = (1, 5) if dataset.spec.num_classes >= 5 else (1,)
    scores = evaluate_accuracy(model, dataset, topk=topk)
    return {
        "accuracy": scores[1],
        **({"top5": scores[5]} if 5 in scores else {}),
        "samples": len(dataset),
        "data": dataset.spec.name,
        "split": split,
        "image_size": dataset.spec.image_size,
        "recorded_accuracy": (meta.get("metrics") or {}).get("accuracy"),
    }

"""Evaluate a saved model on the data it was trained on (or another split/size)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slimvision.data import dataset_for
from slimvision.io import load_artifact
from slimvision.measure.accuracy import evaluate_accuracy


def evaluate_artifact(
    model_dir: str | Path, data: str | None = None, split: str = "test", image_size: int | None = None, data_root: str | None = None
) -> dict[str, Any]:
    """{'accuracy', 'top5', 'samples', ...} of the model in `model_dir` on `split`."""
    artifact = load_artifact(model_dir)
    dataset = dataset_for(artifact.data_spec, data, split, image_size, data_root)
    topk = (1, 5) if dataset.spec.num_classes >= 5 else (1,)
    scores = evaluate_accuracy(artifact.model, dataset, topk=topk)
    return {
        "accuracy": scores[1],
        **({"top5": scores[5]} if 5 in scores else {}),
        "samples": len(dataset),
        "data": dataset.spec.name,
        "split": split,
        "image_size": dataset.spec.image_size,
        "recorded_accuracy": (artifact.meta.get("metrics") or {}).get("accuracy"),
    }

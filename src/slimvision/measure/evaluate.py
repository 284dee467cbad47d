"""Evaluate a saved model on the data it was trained on (or another split/size)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slimvision.data import dataset_from_spec, get_dataset
from slimvision.errors import ConfigError
from slimvision.io import load_artifact
from slimvision.measure.accuracy import evaluate_accuracy


def evaluate_artifact(
    model_dir: str | Path, data: str | None = None, split: str = "test", image_size: int | None = None, data_root: str | None = None
) -> dict[str, Any]:
    """{'accuracy', 'top5', 'samples', ...} of the model in `model_dir` on `split`."""
    artifact = load_artifact(model_dir)
    spec = artifact.data_spec
    if data is None and spec is None:
        raise ConfigError(f"{model_dir}: meta.json records no dataset; pass --data")
    if spec is not None and (data is None or data == spec["name"]) and data_root is None:
        dataset = dataset_from_spec(spec, split, image_size)
    else:
        dataset = get_dataset(data, split, image_size, root=data_root)
    num_classes = dataset.spec.num_classes
    topk = (1, 5) if num_classes >= 5 else (1,)
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

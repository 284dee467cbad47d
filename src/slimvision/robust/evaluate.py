"""Clean, adversarial and corruption accuracy of a model on a dataset, and of a saved model."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn

from slimvision.data import TensorImageDataset, dataset_for, make_loader
from slimvision.errors import ConfigError
from slimvision.io import resolve_model, source_meta
from slimvision.models.sources import ModelSource
from slimvision.robust.attacks import ATTACKS, AttackConfig, PixelModel, attack
from slimvision.robust.corruptions import CORRUPTIONS, SEVERITIES, corrupt

PIXEL_TOLERANCE = 1e-4


def pixel_model_for(model: nn.Module, dataset: TensorImageDataset) -> PixelModel:
    """`model` wrapped to take pixels, with the dataset's recorded normalisation."""
    return PixelModel(model, dataset.spec.mean, dataset.spec.std).to(next(model.parameters()).device)


def pixels_in_unit_range(dataset: TensorImageDataset) -> bool:
    """True when the dataset's images, un-normalised, lie in [0, 1] (real images; synthetic noise does not)."""
    mean = torch.tensor(dataset.spec.mean).view(1, -1, 1, 1)
    std = torch.tensor(dataset.spec.std).view(1, -1, 1, 1)
    pixels = dataset.images * std + mean
    return bool(pixels.min() >= -PIXEL_TOLERANCE and pixels.max() <= 1 + PIXEL_TOLERANCE)


def attack_config_for(dataset: TensorImageDataset, config: AttackConfig) -> AttackConfig:
    """`config` with pixel clipping switched off for data whose pixels are not in [0, 1]."""
    if config.clip is not None and not pixels_in_unit_range(dataset):
        return AttackConfig(**{**config.__dict__, "clip": None})
    return config


def adversarial_accuracy(model: nn.Module, dataset: TensorImageDataset, attacks: Sequence[str], config: AttackConfig,
                         batch_size: int = 256) -> dict[str, float]:
    """{'clean': acc, 'fgsm': acc, 'pgd': acc, ...}: top-1 accuracy in [0, 1] on clean and attacked images."""
    unknown = [name for name in attacks if name not in ATTACKS]
    if unknown:
        raise ConfigError(f"unknown attack {unknown[0]!r}; use one of {', '.join(ATTACKS)}")
    config = attack_config_for(dataset, config)
    was_training = model.training
    model.eval()
    pixel_model = pixel_model_for(model, dataset)
    device = pixel_model.mean.device
    generator = torch.Generator().manual_seed(config.seed)
    hits = {name: 0 for name in ("clean", *attacks)}
    total = 0
    try:
        for images, labels in make_loader(dataset, batch_size):
            images, labels = images.to(device), labels.to(device)
            pixels = pixel_model.to_pixels(images)
            with torch.no_grad():
                hits["clean"] += (pixel_model(pixels).argmax(1) == labels).sum().item()
            for name in attacks:
                adversarial = attack(name, pixel_model, pixels, labels, config, generator)
                with torch.no_grad():
                    hits[name] += (pixel_model(adversarial).argmax(1) == labels).sum().item()
            total += labels.numel()
    finally:
        model.train(was_training)
    return {name: count / max(total, 1) for name, count in hits.items()}


@torch.no_grad()
def corruption_accuracy(model: nn.Module, dataset: TensorImageDataset, corruptions: Sequence[str] = tuple(CORRUPTIONS),
                        severities: Sequence[int] = SEVERITIES, batch_size: int = 256, seed: int = 0) -> dict[str, dict[int, float]]:
    """{corruption: {severity: top-1 accuracy}} with corruptions applied in pixel space."""
    if not pixels_in_unit_range(dataset):
        raise ConfigError(f"corruptions need images whose pixels lie in [0, 1]; dataset {dataset.spec.name!r} does not")
    was_training = model.training
    model.eval()
    pixel_model = pixel_model_for(model, dataset)
    device = pixel_model.mean.device
    results: dict[str, dict[int, float]] = {}
    try:
        for name in corruptions:
            results[name] = {}
            for severity in severities:
                generator = torch.Generator().manual_seed(seed)
                hits = total = 0
                for images, labels in make_loader(dataset, batch_size):
                    pixels = pixel_model.to_pixels(images.to(device)).cpu()
                    corrupted = corrupt(name, pixels, severity, generator).to(device)
                    hits += (pixel_model(corrupted).argmax(1) == labels.to(device)).sum().item()
                    total += labels.numel()
                results[name][severity] = hits / max(total, 1)
    finally:
        model.train(was_training)
    return results


def evaluate_robustness(model_dir: str | Path | ModelSource, attacks: Sequence[str] = ATTACKS, config: AttackConfig | None = None,
                        data: str | None = None, split: str = "test", image_size: int | None = None, data_root: str | None = None,
                        corruptions: Sequence[str] = (), severities: Sequence[int] = SEVERITIES, limit: int | None = None) -> dict[str, Any]:
    """{'accuracy_clean', 'accuracy_<attack>'..., 'corruptions', conditions} of a saved model (or model source) on `split`."""
    config = config or AttackConfig()
    meta = source_meta(model_dir)
    dataset = dataset_for(meta.get("data"), data, split, image_size, data_root)
    if limit is not None:
        dataset = dataset.subset(limit)
    model, _, _ = resolve_model(model_dir, num_classes=dataset.spec.num_classes, in_chans=dataset.spec.in_chans)
    scores = adversarial_accuracy(model, dataset, attacks, config)
    used = attack_config_for(dataset, config)
    result: dict[str, Any] = {f"accuracy_{name}": value for name, value in scores.items()}
    if corruptions:
        per_corruption = corruption_accuracy(model, dataset, corruptions, severities, seed=config.seed)
        result["corruptions"] = per_corruption
        result["accuracy_corruption_mean"] = sum(v for c in per_corruption.values() for v in c.values()) / sum(len(c) for c in per_corruption.values())
    result.update({"attack": used.to_dict(), "data": dataset.spec.name, "split": split, "samples": len(dataset), "image_size": dataset.spec.image_size})
    return result

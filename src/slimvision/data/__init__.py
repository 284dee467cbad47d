"""Datasets: bundled digits (default), generated digits-hard, CIFAR-10 batches, ImageFolder and synthetic data."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader

from slimvision.data.base import DataSpec, TensorImageDataset
from slimvision.data.cifar10 import load_cifar10_split
from slimvision.data.digits import load_digits_split
from slimvision.data.digits_hard import load_digits_hard_split
from slimvision.data.imagefolder import load_imagefolder_split
from slimvision.data.synthetic import load_synthetic_split
from slimvision.errors import DataError

SPLITS = ("train", "val", "test")
DATASETS = ("digits", "digits-hard", "cifar10", "imagefolder", "synthetic")
DEFAULT_IMAGE_SIZE = {"digits": 8, "digits-hard": 32, "cifar10": 32, "imagefolder": 32, "synthetic": 32}


def get_dataset(name: str, split: str, image_size: int | None = None, root: str | None = None, **kw: Any) -> TensorImageDataset:
    """The `split` of dataset `name`; `root` is the local path for cifar10/imagefolder."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    size = image_size or DEFAULT_IMAGE_SIZE[name]
    if size < 1:
        raise DataError(f"image size must be positive, got {size}")
    if name == "digits":
        return load_digits_split(split, size)
    if name == "digits-hard":
        return load_digits_hard_split(split, size, **kw)
    if name == "synthetic":
        return load_synthetic_split(split, image_size=size, **kw)
    if root is None:
        raise DataError(f"dataset {name!r} needs a local path (--data-root)")
    if name == "cifar10":
        return load_cifar10_split(root, split, size)
    return load_imagefolder_split(root, split, size)


def dataset_from_spec(spec: DataSpec | dict, split: str, image_size: int | None = None) -> TensorImageDataset:
    """Rebuild the dataset an artifact was trained on from its recorded spec."""
    spec = DataSpec.from_dict(spec) if isinstance(spec, dict) else spec
    options = dict(spec.options)
    root = options.pop("root", None)
    options.pop("classes", None)
    return get_dataset(spec.name, split, image_size or spec.image_size, root=root, **options)


def dataset_for(recorded: dict | None, data: str | None, split: str, image_size: int | None = None, root: str | None = None) -> TensorImageDataset:
    """The `split` of the dataset a model recorded (`recorded` spec), unless `data`/`root` name another."""
    if recorded is not None and (data is None or data == recorded["name"]) and root is None:
        return dataset_from_spec(recorded, split, image_size)
    if data is None:
        raise DataError("no dataset is recorded for this model; pass --data")
    return get_dataset(data, split, image_size, root=root)


def load_splits(recorded: dict | None, data: str | None, image_size: int | None = None, root: str | None = None) -> tuple[TensorImageDataset, ...]:
    """(train, val, test) via `dataset_for`."""
    return tuple(dataset_for(recorded, data, split, image_size, root) for split in SPLITS)


def make_loader(
    dataset: TensorImageDataset, batch_size: int, shuffle: bool = False, seed: int = 0, epoch: int = 0
) -> DataLoader:
    """A DataLoader whose shuffle order depends only on (seed, epoch), so resumed runs see the same order."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch) if shuffle else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=0)


__all__ = ["DataSpec", "TensorImageDataset", "get_dataset", "dataset_from_spec", "dataset_for", "load_splits", "make_loader", "DATASETS", "SPLITS"]

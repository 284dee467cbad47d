"""Datasets: bundled digits (default), generated digits-hard, CIFAR-10/100 batches, streamed ImageFolder / ImageNet and synthetic data.

A dataset is registered with one line (see the bottom of this file):

    register_dataset("name", loader, default_image_size=32, needs_root=False)

where `loader(split, image_size, root, **options)` returns an `ImageDataset` (in-memory data can
return a `TensorImageDataset`). Options recorded in the spec's `options` (besides root/classes)
are passed back to the loader when an artifact rebuilds its data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from slimvision.data.base import DataSpec, ImageDataset, LazyImages, TensorImageDataset
from slimvision.data.cifar import load_cifar_split
from slimvision.data.digits import load_digits_split
from slimvision.data.digits_hard import load_digits_hard_split
from slimvision.data.imagefolder import load_imagefolder_split
from slimvision.data.loader import Loader, make_loader
from slimvision.data.synthetic import load_synthetic_split
from slimvision.data.transforms import BatchMixer, EvalTransform, TrainAugment
from slimvision.errors import DataError
from slimvision.registry import Registry

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DatasetEntry:
    """How to load one named dataset."""

    load: Callable[..., ImageDataset]  # load(split, image_size, root, **options)
    default_image_size: int
    needs_root: bool = False
    downloadable: bool = False


DATASETS: Registry[DatasetEntry] = Registry("dataset")


def register_dataset(name: str, load: Callable[..., ImageDataset], default_image_size: int, needs_root: bool = False, downloadable: bool = False) -> None:
    """Make `name` usable by `get_dataset`, `--data NAME` and recorded specs (a duplicate name is an error)."""
    DATASETS.add(name, DatasetEntry(load, default_image_size, needs_root, downloadable))


def get_dataset(
    name: str, split: str, image_size: int | None = None, root: str | None = None, download: bool = False, **options: Any
) -> ImageDataset:
    """The `split` of dataset `name`; `root` is the local path for cifar10/cifar100/imagefolder.

    `download=True` fetches CIFAR into `root` first when it is not there (md5-checked).
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS.names())}")
    entry = DATASETS.get(name)
    size = image_size or entry.default_image_size
    if size < 1:
        raise DataError(f"image size must be positive, got {size}")
    if entry.needs_root and root is None:
        raise DataError(f"dataset {name!r} needs a local path (--data-root)")
    if download:
        if not entry.downloadable:
            raise DataError(f"--download is available for {', '.join(n for n in DATASETS.names() if DATASETS.get(n).downloadable)}, not {name!r}")
        from slimvision.data.download import download_cifar

        download_cifar(name, root)
    return entry.load(split, size, root, **options)


def _legacy_preprocess(spec: DataSpec) -> dict[str, Any]:
    """Artifacts written before preprocessing was recorded: streamed data was resized to a square."""
    if spec.preprocess or spec.name not in ("cifar10", "imagefolder"):
        return spec.preprocess
    return {"resize": spec.image_size, "resize_mode": "square", "crop": spec.image_size, "interpolation": "bilinear", "antialias": True}


def dataset_from_spec(spec: DataSpec | dict, split: str, image_size: int | None = None) -> ImageDataset:
    """Rebuild the dataset an artifact was trained on from its recorded spec, with its recorded preprocessing."""
    spec = DataSpec.from_dict(spec) if isinstance(spec, dict) else spec
    options = dict(spec.options)
    root = options.pop("root", None)
    options.pop("classes", None)
    preprocess = _legacy_preprocess(spec)
    if preprocess and (image_size is None or image_size == spec.image_size):
        options["preprocess"] = preprocess
    return get_dataset(spec.name, split, image_size or spec.image_size, root=root, **options)


def dataset_for(recorded: dict | None, data: str | None, split: str, image_size: int | None = None, root: str | None = None) -> ImageDataset:
    """The `split` of the dataset a model recorded (`recorded` spec), unless `data`/`root` name another."""
    if recorded is not None and (data is None or data == recorded["name"]) and root is None:
        return dataset_from_spec(recorded, split, image_size)
    if data is None:
        raise DataError("no dataset is recorded for this model; pass --data")
    return get_dataset(data, split, image_size, root=root)


def load_splits(recorded: dict | None, data: str | None, image_size: int | None = None, root: str | None = None) -> tuple[ImageDataset, ...]:
    """(train, val, test) via `dataset_for`."""
    return tuple(dataset_for(recorded, data, split, image_size, root) for split in SPLITS)


def _in_memory(load: Callable[..., ImageDataset]) -> Callable[..., ImageDataset]:
    """Adapt a loader that takes no root (bundled or generated data)."""
    return lambda split, image_size, root, **options: load(split, image_size=image_size, **options)


def _with_root(load: Callable[..., ImageDataset], *args: Any) -> Callable[..., ImageDataset]:
    return lambda split, image_size, root, **options: load(*args, root, split, image_size, **options)


register_dataset("digits", _in_memory(load_digits_split), default_image_size=8)
register_dataset("digits-hard", _in_memory(load_digits_hard_split), default_image_size=32)
register_dataset("synthetic", _in_memory(load_synthetic_split), default_image_size=32)
register_dataset("cifar10", _with_root(load_cifar_split, "cifar10"), default_image_size=32, needs_root=True, downloadable=True)
register_dataset("cifar100", _with_root(load_cifar_split, "cifar100"), default_image_size=32, needs_root=True, downloadable=True)
register_dataset("imagefolder", _with_root(load_imagefolder_split), default_image_size=32, needs_root=True)


__all__ = [
    "DataSpec", "ImageDataset", "LazyImages", "TensorImageDataset", "Loader", "EvalTransform", "TrainAugment", "BatchMixer",
    "get_dataset", "dataset_from_spec", "dataset_for", "load_splits", "make_loader", "register_dataset", "DATASETS", "SPLITS",
]

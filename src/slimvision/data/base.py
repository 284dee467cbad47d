"""Image datasets with a recorded spec, so an artifact can rebuild exactly its preprocessing.

Two kinds share one interface (`ImageDataset`): in-memory tensors (digits, synthetic: already
at size and normalised) and streamed sources (ImageFolder, CIFAR) that decode one sample at a
time and apply the recorded evaluation transform. `read(index)` gives the undecorated image in
[0, 1] for training-time augmentation; `dataset[index]` gives the evaluation-ready sample.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset


@dataclass
class DataSpec:
    """What a model trained on this data needs to know: classes, channels, size, normalisation, preprocessing."""

    name: str
    num_classes: int
    in_chans: int
    image_size: int
    mean: list[float]
    std: list[float]
    options: dict[str, Any] = field(default_factory=dict)
    # The evaluation transform (see data/transforms.py): {} = images are stored at size, normalised.
    preprocess: dict[str, Any] = field(default_factory=dict)

    @property
    def input_size(self) -> tuple[int, int, int]:
        return (self.in_chans, self.image_size, self.image_size)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DataSpec":
        """Read a recorded spec; keys written by newer versions are ignored, missing ones take defaults."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class ImageDataset(Dataset):
    """A split of labelled images: `dataset[i]` -> (evaluation-ready (C, S, S) float tensor, label)."""

    spec: DataSpec
    split: str
    labels: torch.Tensor
    # Training-time geometry that suits the data: "pad" (pad-and-crop, images already near size)
    # or "resized" (random-resized crop from a larger photo); horizontal flips only where they
    # keep the label (not for digits).
    train_crop = "pad"
    flip_ok = False
    loader_workers = 0  # default DataLoader workers for this dataset (set by the run's --workers)
    skip_bad_images = False  # loaders leave out (and count) undecodable images instead of stopping

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def read(self, index: int) -> torch.Tensor:
        """The image before any transform, (C, H, W) float in [0, 1]; raises DataError naming a bad file."""
        raise NotImplementedError

    def source_name(self, index: int) -> str:
        """Where sample `index` comes from (a file path, or dataset name and index)."""
        return f"{self.spec.name}[{index}]"

    @property
    def images(self) -> "LazyImages":
        """Evaluation-ready images, decoded only when sliced (`dataset.images[:32]`)."""
        return LazyImages(self)

    def subset(self, count: int) -> "ImageDataset":
        """The first `count` samples (for calibration sets and quick checks)."""
        return IndexedSubset(self, range(min(count, len(self))))


class LazyImages:
    """A read-only, sliceable view of a dataset's evaluation-ready images; decodes on access."""

    def __init__(self, dataset: ImageDataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.dataset), *self.dataset.spec.input_size)

    def __getitem__(self, key: Any) -> torch.Tensor:
        """An int gives one image; a slice, a list or an index tensor give a stacked batch."""
        if isinstance(key, slice):
            indices: Any = range(*key.indices(len(self.dataset)))
        elif isinstance(key, (list, tuple)) or (torch.is_tensor(key) and key.ndim == 1):
            indices = [int(i) for i in key]
        else:
            return self.dataset[int(key)][0]
        if not indices:
            return torch.empty(0, *self.dataset.spec.input_size)
        return torch.stack([self.dataset[i][0] for i in indices])


class IndexedSubset(ImageDataset):
    """Some samples of another dataset, same spec and transforms."""

    def __init__(self, parent: ImageDataset, indices: Any):
        self.parent = parent
        self.indices = list(indices)
        self.spec, self.split = parent.spec, parent.split
        self.labels = parent.labels[self.indices]
        self.train_crop, self.flip_ok, self.loader_workers = parent.train_crop, parent.flip_ok, parent.loader_workers
        self.skip_bad_images = parent.skip_bad_images

    def read(self, index: int) -> torch.Tensor:
        return self.parent.read(self.indices[index])

    def source_name(self, index: int) -> str:
        return self.parent.source_name(self.indices[index])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.parent[self.indices[index]]


class TensorImageDataset(ImageDataset):
    """Normalised images (N, C, H, W float32) and integer labels held in memory (small data only)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, spec: DataSpec, split: str):
        if images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got {tuple(images.shape)}")
        self._images = images.float().contiguous()
        self.labels = labels.long().contiguous()
        self.spec = spec
        self.split = split

    @property
    def images(self) -> torch.Tensor:  # type: ignore[override]
        return self._images

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._images[index], self.labels[index]

    def read(self, index: int) -> torch.Tensor:
        mean = torch.tensor(self.spec.mean).view(-1, 1, 1)
        std = torch.tensor(self.spec.std).view(-1, 1, 1)
        return self._images[index] * std + mean

    def subset(self, count: int) -> "TensorImageDataset":
        """The first `count` samples (for calibration sets and quick checks)."""
        subset = TensorImageDataset(self._images[:count], self.labels[:count], self.spec, self.split)
        subset.train_crop, subset.flip_ok, subset.loader_workers = self.train_crop, self.flip_ok, self.loader_workers
        return subset


def resize_images(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """Bilinearly resize a (N, C, H, W) batch to a square `image_size` (no-op when equal)."""
    if images.shape[-1] == image_size and images.shape[-2] == image_size:
        return images
    return F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)


def normalise(images: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """(images - mean) / std per channel."""
    mean_t = torch.tensor(mean, dtype=images.dtype).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=images.dtype).view(1, -1, 1, 1)
    return (images - mean_t) / std_t

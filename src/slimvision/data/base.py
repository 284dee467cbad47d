"""In-memory image datasets with a recorded spec, so an artifact can rebuild its preprocessing."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset


@dataclass
class DataSpec:
    """What a model trained on this data needs to know: classes, channels, size, normalisation."""

    name: str
    num_classes: int
    in_chans: int
    image_size: int
    mean: list[float]
    std: list[float]
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def input_size(self) -> tuple[int, int, int]:
        return (self.in_chans, self.image_size, self.image_size)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DataSpec":
        return cls(**data)


class TensorImageDataset(Dataset):
    """Normalised images (N, C, H, W float32) and integer labels held in memory."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, spec: DataSpec, split: str):
        if images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got {tuple(images.shape)}")
        self.images = images.float().contiguous()
        self.labels = labels.long().contiguous()
        self.spec = spec
        self.split = split

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]

    def subset(self, count: int) -> "TensorImageDataset":
        """The first `count` samples (for calibration sets and quick checks)."""
        return TensorImageDataset(self.images[:count], self.labels[:count], self.spec, self.split)


def resize_images(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """Bilinearly resize a (N, C, H, W) batch to a square `image_size` (no-op when equal)."""
    if images.shape[-1] == image_size and images.shape[-2] == image_size:
        return images
    return F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)


def normalise(images: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    mean_t = torch.tensor(mean, dtype=images.dtype).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=images.dtype).view(1, -1, 1, 1)
    return (images - mean_t) / std_t

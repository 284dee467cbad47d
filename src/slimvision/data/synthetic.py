"""Random images with learnable labels, for tests: any size, any number of classes."""

from __future__ import annotations

import torch

from slimvision.data.base import DataSpec, TensorImageDataset

_SPLIT_OFFSET = {"train": 0, "val": 1, "test": 2}


def load_synthetic_split(
    split: str,
    num_samples: int = 256,
    num_classes: int = 10,
    in_chans: int = 3,
    image_size: int = 32,
    seed: int = 0,
) -> TensorImageDataset:
    """Gaussian noise plus a class-dependent pattern, so a model can learn it (accuracy > chance)."""
    patterns = torch.randn(num_classes, in_chans, image_size, image_size, generator=torch.Generator().manual_seed(seed))
    gen = torch.Generator().manual_seed(seed * 1000 + 1 + _SPLIT_OFFSET.get(split, 3))
    labels = torch.randint(0, num_classes, (num_samples,), generator=gen)
    images = patterns[labels] + torch.randn(num_samples, in_chans, image_size, image_size, generator=gen)
    options = {"num_samples": num_samples, "seed": seed}
    spec = DataSpec("synthetic", num_classes, in_chans, image_size, [0.0] * in_chans, [1.0] * in_chans, options)
    return TensorImageDataset(images, labels, spec, split)

"""scikit-learn's bundled digits: 1,797 real 8x8 grayscale images of the digits 0-9."""

from __future__ import annotations

import numpy as np
import torch

from slimvision.data.base import DataSpec, TensorImageDataset, normalise, resize_images

# Mean/std of the training split after scaling pixels to [0, 1]; fixed so every split and every
# artifact uses the same normalisation.
DIGITS_MEAN = [0.3062]
DIGITS_STD = [0.3826]
SPLIT_SEED = 0


def _split_indices(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Fixed stratified 60/20/20 split of the 1,797 images."""
    from sklearn.model_selection import train_test_split  # imported on use: scikit-learn adds ~150 MB to every process

    indices = np.arange(labels.shape[0])
    train, rest = train_test_split(indices, test_size=0.4, stratify=labels, random_state=SPLIT_SEED)
    val, test = train_test_split(rest, test_size=0.5, stratify=labels[rest], random_state=SPLIT_SEED)
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def load_digits_split(split: str, image_size: int = 8) -> TensorImageDataset:
    """The `split` ('train', 'val' or 'test') of digits, resized to `image_size` and normalised."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.float32) / 16.0
    labels = bunch.target.astype(np.int64)
    chosen = _split_indices(labels)[split]
    tensor = torch.from_numpy(images[chosen]).unsqueeze(1)
    tensor = normalise(resize_images(tensor, image_size), DIGITS_MEAN, DIGITS_STD)
    spec = DataSpec("digits", 10, 1, image_size, DIGITS_MEAN, DIGITS_STD)
    return TensorImageDataset(tensor, torch.from_numpy(labels[chosen]), spec, split)

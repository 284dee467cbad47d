"""CIFAR-10 from the official python-pickle batches in a local directory, unpickled safely."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import torch

from slimvision.data.base import DataSpec, TensorImageDataset, normalise, resize_images
from slimvision.errors import DataError

CIFAR10_MEAN = [0.4914, 0.4822, 0.4465]
CIFAR10_STD = [0.2470, 0.2435, 0.2616]
_TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
_TEST_BATCH = "test_batch"
# The official batches hold numpy arrays; these are the only globals their pickles need.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Refuses every global except the numpy array constructors, so no code can run on load."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(f"CIFAR-10 batch not found: {path}")
    try:
        batch = _ArraysOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except Exception as exc:  # any unpickling failure means the file is not a CIFAR batch
        raise DataError(f"{path}: not a CIFAR-10 python batch ({exc})") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path}: not a CIFAR-10 python batch (top level is {type(batch).__name__})")
    data, labels = batch.get(b"data"), batch.get(b"labels")
    if not isinstance(data, np.ndarray) or not isinstance(labels, list):
        raise DataError(f"{path}: missing 'data' array or 'labels' list")
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != len(labels):
        raise DataError(f"{path}: expected data of shape (N, 3072) matching labels, got {data.shape}")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def load_cifar10_split(root: str | Path, split: str, image_size: int = 32) -> TensorImageDataset:
    """CIFAR-10 'train' (batches 1-5; 'val' is the last 5,000 of them) or 'test' from `root`."""
    root = Path(root)
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    if not root.is_dir():
        raise DataError(f"CIFAR-10 directory not found: {root}")
    if split == "test":
        images, labels = _read_batch(root / _TEST_BATCH)
    else:
        parts = [_read_batch(root / name) for name in _TRAIN_BATCHES]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        cut = images.shape[0] - 5000
        images, labels = (images[:cut], labels[:cut]) if split == "train" else (images[cut:], labels[cut:])
    tensor = torch.from_numpy(images.astype(np.float32) / 255.0)
    tensor = normalise(resize_images(tensor, image_size), CIFAR10_MEAN, CIFAR10_STD)
    spec = DataSpec("cifar10", 10, 3, image_size, CIFAR10_MEAN, CIFAR10_STD, {"root": str(root)})
    return TensorImageDataset(tensor, torch.from_numpy(labels), spec, split)

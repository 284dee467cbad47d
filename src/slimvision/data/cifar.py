"""CIFAR-10 and CIFAR-100 from the official python-pickle batches in a local directory, unpickled safely.

The pixels stay uint8 in memory (150 MB for the 50,000 training images, shared copy-on-write
with loader workers); each sample is converted and transformed when it is read.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from slimvision.data.base import DataSpec, ImageDataset
from slimvision.data.transforms import EvalTransform, eval_preprocess
from slimvision.errors import DataError

CIFAR10_MEAN = [0.4914, 0.4822, 0.4465]
CIFAR10_STD = [0.2470, 0.2435, 0.2616]
CIFAR100_MEAN = [0.5071, 0.4865, 0.4409]
CIFAR100_STD = [0.2673, 0.2564, 0.2762]
VAL_SIZE = 5000  # 'val' is the last 5,000 training images, 'train' the rest


@dataclass(frozen=True)
class CifarLayout:
    """Where a CIFAR variant keeps its batches and how its labels are keyed."""

    name: str
    folder: str  # the directory inside the official archive
    train_files: tuple[str, ...]
    test_file: str
    label_key: bytes
    num_classes: int
    mean: list[float]
    std: list[float]


CIFAR10 = CifarLayout("cifar10", "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch", b"labels", 10, CIFAR10_MEAN, CIFAR10_STD)
CIFAR100 = CifarLayout("cifar100", "cifar-100-python", ("train",), "test", b"fine_labels", 100, CIFAR100_MEAN, CIFAR100_STD)
LAYOUTS = {layout.name: layout for layout in (CIFAR10, CIFAR100)}

# The official batches hold numpy arrays, lists and bytes; these are the only globals their pickles need.
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


def _read_batch(path: Path, layout: CifarLayout) -> tuple[np.ndarray, np.ndarray]:
    title = "CIFAR-10" if layout is CIFAR10 else "CIFAR-100"
    if not path.is_file():
        raise DataError(f"{title} batch not found: {path}")
    try:
        batch = _ArraysOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except Exception as exc:  # any unpickling failure means the file is not a CIFAR batch
        raise DataError(f"{path}: not a {title} python batch ({exc})") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path}: not a {title} python batch (top level is {type(batch).__name__})")
    data, labels = batch.get(b"data"), batch.get(layout.label_key)
    if not isinstance(data, np.ndarray) or not isinstance(labels, list):
        raise DataError(f"{path}: missing 'data' array or '{layout.label_key.decode()}' list (not a {title} batch?)")
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != len(labels):
        raise DataError(f"{path}: expected data of shape (N, 3072) matching labels, got {data.shape}")
    labels_array = np.asarray(labels, dtype=np.int64)
    if labels_array.size and (labels_array.min() < 0 or labels_array.max() >= layout.num_classes):
        raise DataError(f"{path}: labels outside 0..{layout.num_classes - 1} (a {title} batch has {layout.num_classes} classes)")
    return data.reshape(-1, 3, 32, 32).astype(np.uint8, copy=False), labels_array


class ArrayImageDataset(ImageDataset):
    """uint8 (N, C, H, W) pixels in memory; each sample converted and transformed when read."""

    flip_ok = True

    def __init__(self, pixels: np.ndarray, labels: np.ndarray, spec: DataSpec, split: str):
        self.pixels = np.ascontiguousarray(pixels)
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        self.spec, self.split = spec, split
        self.transform = EvalTransform(spec)

    def read(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.pixels[index]).float().div_(255.0)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.read(index)), self.labels[index]


def find_cifar_dir(root: str | Path, layout: CifarLayout) -> Path:
    """`root` itself or its official sub-directory, whichever holds the batches."""
    root = Path(root)
    if (root / layout.folder).is_dir():
        return root / layout.folder
    if not root.is_dir():
        raise DataError(f"{'CIFAR-10' if layout is CIFAR10 else 'CIFAR-100'} directory not found: {root}")
    return root


def load_cifar_split(name: str, root: str | Path, split: str, image_size: int = 32, preprocess: dict | None = None) -> ArrayImageDataset:
    """CIFAR-10/100 'train' (the training batches less the last 5,000, which are 'val') or 'test' from `root`."""
    layout = LAYOUTS[name]
    folder = find_cifar_dir(root, layout)
    if split == "test":
        pixels, labels = _read_batch(folder / layout.test_file, layout)
    else:
        parts = [_read_batch(folder / file, layout) for file in layout.train_files]
        pixels, labels = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        cut = pixels.shape[0] - VAL_SIZE
        pixels, labels = (pixels[:cut], labels[:cut]) if split == "train" else (pixels[cut:], labels[cut:])
    spec = DataSpec(name, layout.num_classes, 3, image_size, layout.mean, layout.std, {"root": str(folder)},
                    preprocess or eval_preprocess(image_size, source_size=32))
    return ArrayImageDataset(pixels, labels, spec, split)

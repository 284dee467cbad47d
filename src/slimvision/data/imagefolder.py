"""A local ImageFolder tree (root/class_name/image.png), read with PIL into memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from slimvision.data.base import DataSpec, TensorImageDataset, normalise, resize_images
from slimvision.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def load_imagefolder_split(root: str | Path, split: str, image_size: int = 32) -> TensorImageDataset:
    """Images under `root/split/` if that exists (else `root/`), one sub-directory per class."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}")
    base = root / split if (root / split).is_dir() else root
    classes = sorted(p.name for p in base.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{base}: no class sub-directories (expected {base}/<class>/<image>)")
    images, labels = [], []
    for label, name in enumerate(classes):
        for file in sorted((base / name).iterdir()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(file) as img:
                    rgb = img.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
            except (UnidentifiedImageError, OSError) as exc:
                raise DataError(f"{file}: cannot read image ({exc})") from None
            images.append(np.asarray(rgb, dtype=np.float32) / 255.0)
            labels.append(label)
    if not images:
        raise DataError(f"{base}: no images found (suffixes {sorted(IMAGE_SUFFIXES)})")
    tensor = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
    tensor = normalise(resize_images(tensor, image_size), IMAGENET_MEAN, IMAGENET_STD)
    spec = DataSpec(
        "imagefolder", len(classes), 3, image_size, IMAGENET_MEAN, IMAGENET_STD,
        {"root": str(root), "classes": classes},
    )
    return TensorImageDataset(tensor, torch.tensor(labels), spec, split)

"""A local ImageFolder tree, streamed: file names are listed up front, images decoded one at a time.

Layouts:
- ImageNet style: `root/train/<class>/<image>` and `root/val/<class>/<image>` (optionally
  `root/test/`); 'val' and 'test' are `val/` when there is no `test/`.
- One folder per class directly under `root`: a fixed split by position in each class's sorted
  file list (every 10th file from the 9th to 'val', from the 10th to 'test', the rest 'train').

Classes are the sub-directories of the training folder, in sorted order. File names are kept
in one numpy byte array (no per-file Python objects), so worker processes do not copy them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from slimvision.data.base import DataSpec, ImageDataset
from slimvision.data.transforms import EvalTransform, eval_preprocess
from slimvision.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
_FLAT_SPLIT = {8: "val", 9: "test"}  # position % 10 -> split, in a folder without train/ and val/


def _class_dirs(base: Path) -> list[str]:
    classes = sorted(entry.name for entry in os.scandir(base) if entry.is_dir() and not entry.name.startswith("."))
    if not classes:
        raise DataError(f"{base}: no class sub-directories (expected {base}/<class>/<image>)")
    return classes


def _images_in(folder: Path) -> list[str]:
    names = sorted(e.name for e in os.scandir(folder) if e.is_file() and Path(e.name).suffix.lower() in IMAGE_SUFFIXES)
    if not names:
        raise DataError(f"{folder}: empty class folder (no images with suffixes {sorted(IMAGE_SUFFIXES)})")
    return names


def _layout(root: Path, split: str) -> tuple[Path, Path, bool]:
    """(folder whose sub-directories name the classes, folder of this split, whether the split is by position)."""
    if (root / "train").is_dir():
        if split == "train":
            return root / "train", root / "train", False
        held_out = root / "test" if split == "test" and (root / "test").is_dir() else root / "val"
        if not held_out.is_dir():
            raise DataError(f"{root}: has train/ but no val/ folder for the {split!r} split")
        return root / "train", held_out, False
    return root, root, True


class ImageFolderDataset(ImageDataset):
    """One split of an image folder; `dataset[i]` decodes file i and applies the recorded eval transform."""

    train_crop = "resized"
    flip_ok = True

    def __init__(self, root: str | Path, split: str, image_size: int, preprocess: dict | None = None, skip_bad_images: bool = False):
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"image folder not found: {root}")
        class_base, base, by_position = _layout(root, split)
        classes = _class_dirs(class_base)
        known = set(classes)
        files: list[str] = []
        labels: list[int] = []
        for name in _class_dirs(base):
            if name not in known:
                raise DataError(f"{base / name}: class folder not in the training classes of {class_base}")
        listing = [(label, name, _images_in(base / name)) for label, name in enumerate(classes) if (base / name).is_dir()]
        for label, name, names in listing:
            for position, file in enumerate(names):
                if by_position and _FLAT_SPLIT.get(position % 10, "train") != split:
                    continue
                files.append(f"{name}/{file}")
                labels.append(label)
        if not files and by_position:
            # fewer than 9 images in every class: nothing can be held out, so this split reuses them all
            print(f"warning: {base}: too few images per class to hold out a {split!r} split; using every image", file=sys.stderr)
            for label, name, names in listing:
                files += [f"{name}/{file}" for file in names]
                labels += [label] * len(names)
        if not files:
            raise DataError(f"{base}: no images for the {split!r} split")
        self.base = base
        self.files = np.array(files, dtype=np.bytes_) if all(f.isascii() for f in files) else np.array(files, dtype=np.str_)
        self.labels = torch.tensor(labels, dtype=torch.long)
        self.split = split
        self.skip_bad_images = skip_bad_images
        options = {"root": str(root), "classes": classes, **({"skip_bad_images": True} if skip_bad_images else {})}
        self.spec = DataSpec("imagefolder", len(classes), 3, image_size, IMAGENET_MEAN, IMAGENET_STD, options,
                             preprocess or eval_preprocess(image_size))
        self.transform = EvalTransform(self.spec)

    def source_name(self, index: int) -> str:
        name = self.files[index]
        return str(self.base / (name.decode() if isinstance(name, bytes) else str(name)))

    def read(self, index: int) -> torch.Tensor:
        path = self.source_name(index)
        try:
            with Image.open(path) as img:
                rgb = np.asarray(img.convert("RGB"))
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise DataError(f"{path}: cannot read image ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
        return torch.from_numpy(rgb.copy()).permute(2, 0, 1).float().div_(255.0)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.read(index)), self.labels[index]


def load_imagefolder_split(root: str | Path, split: str, image_size: int = 32, preprocess: dict | None = None, skip_bad_images: bool = False) -> ImageFolderDataset:
    """The `split` of the image folder at `root` (see the module docstring for layouts)."""
    return ImageFolderDataset(root, split, image_size, preprocess, skip_bad_images)

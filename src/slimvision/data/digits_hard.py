"""digits-hard: 32x32 RGB scenes generated from the real handwriting of the bundled digits.

Each image holds one digit of the matching digits split (train digits only in train, test digits
only in test) under a random affine warp, drawn in a random colour over a coloured, textured
background, with fragments of other digits of the same split as clutter, then blurred and noised.
Every image depends only on (seed, split, index): its random numbers come from its own generator,
and every rendering step is element-wise or per-sample, so an image is the same whether it is
rendered alone or in a block. Images are rendered lazily, a block at a time, and kept once rendered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from slimvision.data.base import DataSpec, TensorImageDataset, normalise, resize_images
from slimvision.data.digits import _split_indices
from slimvision.errors import DataError

NATIVE_SIZE = 32
DEFAULT_SIZES = {"train": 20_000, "val": 5_000, "test": 10_000}
DEFAULT_SEED = 0
CLUTTER_SLOTS = 4
BLOCK = 1024
# Per-channel mean/std in [0, 1] of the first 4,096 images of the default (seed 0) training split;
# fixed so every split and every artifact normalises the same way.
DIGITS_HARD_MEAN = [0.5026, 0.5029, 0.5005]
DIGITS_HARD_STD = [0.2892, 0.2711, 0.2898]
_SPLIT_ID = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class Difficulty:
    """Ranges every image draws its nuisances from (uniform unless noted); fixed for the benchmark."""

    digit_scale: tuple[float, float] = (0.65, 0.9)  # of the canvas side
    rotation_degrees: float = 40.0
    shear: float = 0.35
    contrast: tuple[float, float] = (0.35, 0.7)  # least luminance gap between ink and background
    clutter_count: tuple[int, int] = (2, 4)  # inclusive, at most CLUTTER_SLOTS
    clutter_scale: tuple[float, float] = (0.3, 0.55)
    clutter_opacity: tuple[float, float] = (0.4, 0.85)
    clutter_ink_jitter: float = 0.25  # std of the clutter colour around the digit's colour
    blur_sigma: tuple[float, float] = (0.3, 1.3)
    noise_sigma: tuple[float, float] = (0.04, 0.1)


BENCHMARK_DIFFICULTY = Difficulty()


@lru_cache(maxsize=3)
def source_digits(split: str) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(images in [0, 1] as (N, 1, 8, 8), labels, indices into load_digits()) of one digits split."""
    from sklearn.datasets import load_digits  # imported on use, like digits

    bunch = load_digits()
    chosen = _split_indices(bunch.target)[split]
    images = torch.from_numpy(bunch.images[chosen].astype(np.float32) / 16.0).unsqueeze(1)
    return images, torch.from_numpy(bunch.target[chosen].astype(np.int64)), chosen


def _image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, _SPLIT_ID[split], index])


def _inverse_affine(rng: np.random.Generator, scale: float, max_shift: float, level: Difficulty) -> np.ndarray:
    """A 2x3 map from output coordinates to source coordinates: rotate, shear, stretch, shift."""
    angle = math.radians(rng.uniform(-level.rotation_degrees, level.rotation_degrees))
    shear = rng.uniform(-level.shear, level.shear)
    aspect = rng.uniform(0.8, 1.2)
    shift = rng.uniform(-max_shift, max_shift, size=2)
    cos, sin = math.cos(angle), math.sin(angle)
    forward = np.array([[cos, -sin], [sin, cos]]) @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([scale * aspect, scale / aspect])
    inverse = np.linalg.inv(forward)
    return np.concatenate([inverse, (-inverse @ shift)[:, None]], axis=1)


def _colour_pair(rng: np.random.Generator, min_contrast: float) -> tuple[np.ndarray, np.ndarray]:
    """(background, ink) RGB colours whose luminances differ by at least `min_contrast`."""
    weights = np.array([0.299, 0.587, 0.114])
    background = rng.uniform(0.0, 1.0, size=3)
    for _ in range(20):
        ink = rng.uniform(0.0, 1.0, size=3)
        if abs(float((ink - background) @ weights)) >= min_contrast:
            return background, ink
    luminance = float(background @ weights)
    return background, np.full(3, 0.0 if luminance > 0.5 else 1.0)


def _draw_parameters(seed: int, split: str, index: int, n_sources: int, level: Difficulty = BENCHMARK_DIFFICULTY) -> dict[str, np.ndarray]:
    """Every random choice of one image, from its own generator."""
    rng = _image_rng(seed, split, index)
    source = int(rng.integers(n_sources))
    scale = rng.uniform(*level.digit_scale)
    theta = _inverse_affine(rng, scale, 1.0 - scale * 0.8, level)
    background, ink = _colour_pair(rng, min_contrast=rng.uniform(*level.contrast))
    background_2 = np.clip(background + rng.normal(0.0, 0.25, size=3), 0.0, 1.0)
    n_clutter = int(rng.integers(level.clutter_count[0], level.clutter_count[1] + 1))
    clutter_sources = rng.integers(n_sources, size=CLUTTER_SLOTS)
    clutter_theta = np.stack([_inverse_affine(rng, rng.uniform(*level.clutter_scale), 1.0, level) for _ in range(CLUTTER_SLOTS)])
    # A fragment keeps a random half-plane of the source digit: edges of other digits, not whole ones.
    cut_angle = rng.uniform(0.0, 2 * math.pi, size=CLUTTER_SLOTS)
    cut_offset = rng.uniform(-0.3, 0.3, size=CLUTTER_SLOTS)
    clutter_opacity = np.where(np.arange(CLUTTER_SLOTS) < n_clutter, rng.uniform(*level.clutter_opacity, size=CLUTTER_SLOTS), 0.0)
    clutter_ink = np.clip(ink + rng.normal(0.0, level.clutter_ink_jitter, size=(CLUTTER_SLOTS, 3)), 0.0, 1.0)
    return {
        "source": np.array(source),
        "theta": theta,
        "background": background,
        "background_2": background_2,
        "gradient_angle": np.array(rng.uniform(0.0, 2 * math.pi)),
        "coarse_noise": rng.normal(0.0, 1.0, size=(3, 4, 4)) * rng.uniform(0.03, 0.12),
        "stripes": np.array([rng.uniform(0.5, 4.0), rng.uniform(0.0, 2 * math.pi), rng.uniform(0.0, 2 * math.pi), rng.uniform(0.0, 0.15)]),
        "ink": ink,
        "opacity": np.array(rng.uniform(0.75, 1.0)),
        "clutter_sources": clutter_sources,
        "clutter_theta": clutter_theta,
        "cut": np.stack([np.cos(cut_angle), np.sin(cut_angle), cut_offset], axis=1),
        "clutter_opacity": clutter_opacity,
        "clutter_ink": clutter_ink,
        "blur_sigma": np.array(rng.uniform(*level.blur_sigma)),
        "noise": rng.normal(0.0, 1.0, size=(3, NATIVE_SIZE, NATIVE_SIZE)).astype(np.float32) * rng.uniform(*level.noise_sigma),
    }


def _grid() -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates in [-1, 1] (x, y), each (1, H, W)."""
    ticks = (torch.arange(NATIVE_SIZE, dtype=torch.float32) * 2 + 1) / NATIVE_SIZE - 1
    y, x = torch.meshgrid(ticks, ticks, indexing="ij")
    return x.unsqueeze(0), y.unsqueeze(0)


def _warp(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Sample (N, 1, h, w) sources through (N, 2, 3) inverse maps onto a 32x32 canvas, element-wise."""
    x, y = _grid()
    t = theta.view(-1, 6, 1, 1)
    source_x = t[:, 0] * x + t[:, 1] * y + t[:, 2]
    source_y = t[:, 3] * x + t[:, 4] * y + t[:, 5]
    return F.grid_sample(images, torch.stack([source_x, source_y], dim=-1), mode="bilinear", padding_mode="zeros", align_corners=False)


def _background(p: dict[str, torch.Tensor]) -> torch.Tensor:
    """Colour gradient + coarse colour noise + faint stripes, (N, 3, 32, 32)."""
    x, y = _grid()
    angle = p["gradient_angle"].view(-1, 1, 1)
    ramp = ((torch.cos(angle) * x + torch.sin(angle) * y) * 0.5 + 0.5).unsqueeze(1)
    image = p["background"].view(-1, 3, 1, 1) * (1 - ramp) + p["background_2"].view(-1, 3, 1, 1) * ramp
    image = image + F.interpolate(p["coarse_noise"], size=(NATIVE_SIZE, NATIVE_SIZE), mode="bilinear", align_corners=False)
    frequency, direction, phase, amplitude = (p["stripes"][:, i].view(-1, 1, 1) for i in range(4))
    stripes = torch.sin(math.pi * frequency * (torch.cos(direction) * x + torch.sin(direction) * y) + phase)
    return image + (amplitude * stripes).unsqueeze(1)


def _blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable 5-tap Gaussian blur with a per-image sigma, as weighted shifts (batch-independent)."""
    offsets = torch.arange(-2, 3, dtype=torch.float32)
    weights = torch.exp(-(offsets**2) / (2 * sigma.clamp(min=1e-3).view(-1, 1) ** 2))
    weights = (weights / weights.sum(dim=1, keepdim=True)).view(-1, 5, 1, 1, 1)
    padded = F.pad(images, (2, 2, 0, 0), mode="replicate")
    images = sum(weights[:, k] * padded[..., k : k + NATIVE_SIZE] for k in range(5))
    padded = F.pad(images, (0, 0, 2, 2), mode="replicate")
    return sum(weights[:, k] * padded[..., k : k + NATIVE_SIZE, :] for k in range(5))


def render_digits_hard(
    seed: int, split: str, indices: range | list[int], level: Difficulty = BENCHMARK_DIFFICULTY
) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 images (N, 3, 32, 32), labels) of the given indices of one split."""
    sources, source_labels, _ = source_digits(split)
    drawn = [_draw_parameters(seed, split, int(i), sources.shape[0], level) for i in indices]
    p = {key: torch.from_numpy(np.stack([d[key] for d in drawn])).float() for key in drawn[0]}
    n = len(drawn)
    main = p["source"].long()
    image = _background(p)
    # Clutter: half-plane fragments of other digits of the same split, under the digit.
    clutter_sources = sources[p["clutter_sources"].long().view(-1)]
    x, y = _grid_8x8()
    cut = p["cut"].view(-1, 3, 1, 1)
    keep = (cut[:, 0] * x + cut[:, 1] * y > cut[:, 2]).float().unsqueeze(1)
    clutter = _warp(clutter_sources * keep, p["clutter_theta"].view(-1, 2, 3)).view(n, CLUTTER_SLOTS, 1, NATIVE_SIZE, NATIVE_SIZE)
    for slot in range(CLUTTER_SLOTS):
        alpha = clutter[:, slot] * p["clutter_opacity"][:, slot].view(-1, 1, 1, 1)
        image = image * (1 - alpha) + p["clutter_ink"][:, slot].view(-1, 3, 1, 1) * alpha
    alpha = _warp(sources[main], p["theta"]) * p["opacity"].view(-1, 1, 1, 1)
    image = image * (1 - alpha) + p["ink"].view(-1, 3, 1, 1) * alpha
    image = _blur(image, p["blur_sigma"]) + p["noise"]
    return (image.clamp(0.0, 1.0) * 255).round().to(torch.uint8), source_labels[main]


def image_sources(seed: int, split: str, index: int) -> tuple[int, list[int]]:
    """(digit, clutter digits) of one image, as indices into scikit-learn's load_digits()."""
    _, _, chosen = source_digits(split)
    drawn = _draw_parameters(seed, split, index, chosen.shape[0])
    n_clutter = int((drawn["clutter_opacity"] > 0).sum())
    return int(chosen[int(drawn["source"])]), [int(chosen[i]) for i in drawn["clutter_sources"][:n_clutter]]


@lru_cache(maxsize=1)
def _grid_8x8() -> tuple[torch.Tensor, torch.Tensor]:
    ticks = (torch.arange(8, dtype=torch.float32) * 2 + 1) / 8 - 1
    y, x = torch.meshgrid(ticks, ticks, indexing="ij")
    return x.unsqueeze(0), y.unsqueeze(0)


class DigitsHardDataset(TensorImageDataset):
    """One split of digits-hard, rendered a block at a time on first use and kept in memory."""

    def __init__(self, split: str, size: int, seed: int, image_size: int, spec: DataSpec):
        self.split, self.size, self.seed, self.image_size, self.spec = split, size, seed, image_size, spec
        self._blocks: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._labels: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.size

    def _block(self, number: int) -> tuple[torch.Tensor, torch.Tensor]:
        if number not in self._blocks:
            indices = range(number * BLOCK, min((number + 1) * BLOCK, self.size))
            pixels, labels = render_digits_hard(self.seed, self.split, indices)
            images = normalise(resize_images(pixels.float() / 255.0, self.image_size), DIGITS_HARD_MEAN, DIGITS_HARD_STD)
            self._blocks[number] = (images.contiguous(), labels)
        return self._blocks[number]

    def _rows(self, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        blocks = [self._block(b) for b in range((count + BLOCK - 1) // BLOCK)]
        return torch.cat([b[0] for b in blocks])[:count], torch.cat([b[1] for b in blocks])[:count]

    @property
    def images(self) -> torch.Tensor:
        """All images of the split (N, 3, S, S), normalised; renders whatever is not rendered yet."""
        return self._rows(self.size)[0]

    @property
    def labels(self) -> torch.Tensor:
        """All labels of the split (kept: the training loader reads one label per sample)."""
        if self._labels is None:
            self._labels = torch.cat([self._block(b)[1] for b in range((self.size + BLOCK - 1) // BLOCK)])
        return self._labels

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -self.size <= index < self.size:
            raise IndexError(f"index {index} out of range for digits-hard {self.split} ({self.size} images)")
        index %= self.size
        images, labels = self._block(index // BLOCK)
        return images[index % BLOCK], labels[index % BLOCK]

    def read(self, index: int) -> torch.Tensor:
        """Image `index` before any transform, (3, S, S) in [0, 1] (the augmentations start from it)."""
        mean = torch.tensor(self.spec.mean).view(-1, 1, 1)
        std = torch.tensor(self.spec.std).view(-1, 1, 1)
        return self[index][0] * std + mean

    def subset(self, count: int) -> TensorImageDataset:
        """The first `count` samples, rendering only the blocks they need."""
        images, labels = self._rows(min(count, self.size))
        return TensorImageDataset(images, labels, self.spec, self.split)


def load_digits_hard_split(
    split: str,
    image_size: int = NATIVE_SIZE,
    seed: int = DEFAULT_SEED,
    train_size: int = DEFAULT_SIZES["train"],
    val_size: int = DEFAULT_SIZES["val"],
    test_size: int = DEFAULT_SIZES["test"],
) -> DigitsHardDataset:
    """The `split` of digits-hard with the given sizes and generation seed, resized to `image_size`."""
    sizes = {"train": train_size, "val": val_size, "test": test_size}
    for name, size in sizes.items():
        if size < 1:
            raise DataError(f"digits-hard {name}_size must be >= 1, got {size}")
    options = {"seed": seed, **{f"{name}_size": size for name, size in sizes.items()}}
    spec = DataSpec("digits-hard", 10, 3, image_size, DIGITS_HARD_MEAN, DIGITS_HARD_STD, options)
    return DigitsHardDataset(split, sizes[split], seed, image_size, spec)

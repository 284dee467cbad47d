"""Preprocessing and augmentation, built from kornia's augmentation modules.

kornia is chosen because it is pure PyTorch (it installs beside any torch build, where a
torchvision wheel must match the torch build exactly and drags a CUDA torch by default), and it
has the standard pieces: RandomResizedCrop, pad-and-crop, flips, TrivialAugment, RandAugment,
MixUp, CutMix, resize and centre crop.

Determinism: kornia draws its random parameters from torch's global generator, so every sample
is augmented with that generator seeded by `sample_seed(seed, epoch, index)` and restored after. The
result depends only on those three numbers, not on the worker that decodes the sample, the
number of workers or the process rank.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch

from slimvision.data.base import DataSpec
from slimvision.errors import ConfigError

AUTO_AUGMENT = ("trivialaugment", "randaugment")
CENTRE_CROP_FRACTION = 0.875  # eval: resize the shorter side to S / 0.875, then take the central S x S


@contextmanager
def seeded_cpu_rng(seed: int) -> Iterator[None]:
    """Torch's CPU generator (which kornia draws from) seeded with `seed` for the block, then restored.

    Cheaper than `fork_rng` + `torch.manual_seed` (which also seeds every other device) and
    just as deterministic: transforms here run on CPU tensors.
    """
    generator = torch.default_generator
    state = generator.get_state()
    generator.manual_seed(seed)
    try:
        yield
    finally:
        generator.set_state(state)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for one sample's augmentation, from (run seed, epoch, sample index) only."""
    return ((seed * 1_000_003 + epoch) * 2_654_435_761 + index * 40_503 + 12_345) % (2**63 - 1)


def eval_preprocess(image_size: int, source_size: int | None = None) -> dict[str, Any]:
    """The recorded evaluation transform: resize (shorter side) + centre crop to `image_size`.

    `source_size`: images that are already square at about that size (CIFAR) are resized to
    `image_size` whole instead of being centre-cropped.
    """
    resize = image_size if source_size else int(round(image_size / CENTRE_CROP_FRACTION))
    return {"resize": resize, "resize_mode": "shorter", "crop": image_size, "interpolation": "bilinear", "antialias": True}


def _kornia():
    import kornia.augmentation as K

    return K


class EvalTransform:
    """Recorded preprocessing: (C, H, W) in [0, 1] -> resized, centre-cropped, normalised (C, S, S)."""

    def __init__(self, spec: DataSpec):
        K = _kornia()
        pre = spec.preprocess
        self.spec = spec
        if pre.get("resize_mode", "shorter") == "square":  # artifacts written before preprocessing was recorded
            resize = K.Resize((pre["resize"], pre["resize"]), antialias=pre.get("antialias", True))
        else:
            resize = K.Resize(pre["resize"], side="short", antialias=pre.get("antialias", True))
        self.ops = K.AugmentationSequential(resize, K.CenterCrop(pre["crop"]))
        self.normalize = K.Normalize(torch.tensor(spec.mean), torch.tensor(spec.std))
        self.identity_size = (pre["crop"], pre["crop"]) if pre["resize"] == pre["crop"] else None

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        x = image.unsqueeze(0)
        if tuple(x.shape[-2:]) != self.identity_size:  # already at size (CIFAR at 32 px): resize and crop are no-ops
            x = self.ops(x)
        return self.normalize(x).squeeze(0)


class TrainAugment:
    """Training-time transform of one sample: crop, flip, optional TrivialAugment/RandAugment, normalise.

    `crop` is "resized" (RandomResizedCrop, scale 0.08-1, for photos) or "pad" (resize to S if
    needed, pad by S/8 with the border value, random S x S crop: the usual 32 px recipe).
    """

    def __init__(self, spec: DataSpec, crop: str = "pad", flip: bool = False, auto_augment: str | None = None):
        if auto_augment is not None and auto_augment not in AUTO_AUGMENT:
            raise ConfigError(f"auto-augment must be one of {', '.join(AUTO_AUGMENT)}, got {auto_augment!r}")
        if auto_augment is not None and spec.in_chans != 3:
            raise ConfigError(f"--auto-augment needs RGB images; {spec.name} has {spec.in_chans} channel(s)")
        K = _kornia()
        from kornia.augmentation import auto

        size = spec.image_size
        self.size = size
        # "pad" works on images already at the training size: bring other sizes there first
        self.fit = K.AugmentationSequential(K.Resize(size, side="short", antialias=True), K.CenterCrop(size))
        ops: list[Any] = []
        if crop == "resized":
            ops.append(K.RandomResizedCrop((size, size), scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)))
        elif crop == "pad":
            ops.append(K.RandomCrop((size, size), padding=max(1, int(round(size / 8))), padding_mode="replicate"))
        else:
            raise ConfigError(f"unknown crop {crop!r}; use 'pad' or 'resized'")
        if flip:
            ops.append(K.RandomHorizontalFlip())
        if auto_augment == "trivialaugment":
            ops.append(auto.TrivialAugment())
        elif auto_augment == "randaugment":
            ops.append(auto.RandAugment(n=2, m=9))
        ops.append(K.Normalize(torch.tensor(spec.mean), torch.tensor(spec.std)))
        self.crop = crop
        self.ops = ops
        self.description = {"library": "kornia", "crop": crop, "flip": flip, "auto_augment": auto_augment, "ops": [type(op).__name__ for op in ops]}

    def __call__(self, image: torch.Tensor, seed: int) -> torch.Tensor:
        """The augmented, normalised (C, S, S) image; the same (image, seed) always gives the same result."""
        x = image.unsqueeze(0)
        with seeded_cpu_rng(seed):
            if self.crop == "pad" and tuple(x.shape[-2:]) != (self.size, self.size):
                x = self.fit(x)
            for op in self.ops:
                x = op(x)
        return x.squeeze(0)


class BatchMixer:
    """MixUp / CutMix of a whole batch (kornia), returning soft targets for a cross-entropy loss.

    `mixup` and `cutmix` are the probabilities that a batch is mixed that way (at most one of
    them per batch); kornia draws MixUp's weight per sample from U(0, 1) and CutMix's box from
    Beta(1, 1). Randomness comes from `seed`, i.e. from (run seed, epoch, step).
    """

    def __init__(self, num_classes: int, mixup: float = 0.0, cutmix: float = 0.0):
        for name, value in (("mixup", mixup), ("cutmix", cutmix)):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be a probability in [0, 1], got {value}")
        K = _kornia()
        self.num_classes = num_classes
        self.mixup, self.cutmix = mixup, cutmix
        self.mixup_op = K.RandomMixUpV2(p=1.0, data_keys=["input", "class"])
        self.cutmix_op = K.RandomCutMixV2(p=1.0, data_keys=["input", "class"], use_correct_lambda=True)

    @property
    def active(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0

    def __call__(self, images: torch.Tensor, targets: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(mixed images, (B, num_classes) soft targets); targets stay one-hot when the batch is not mixed."""
        soft = torch.nn.functional.one_hot(targets, self.num_classes).float()
        with seeded_cpu_rng(seed):
            draw = torch.rand(()).item()
            if draw < self.mixup:
                images, mixed = self.mixup_op(images, targets)
                rows, weight_is_other = mixed.unsqueeze(0), True  # MixUp reports the weight of the partner image
            elif draw < self.mixup + self.cutmix:
                images, mixed = self.cutmix_op(images, targets)
                rows, weight_is_other = mixed, False  # CutMix (correct lambda) reports the area kept from the original
            else:
                return images, soft
        for row in rows:  # each row: (own label, partner label, lambda) per sample
            other = torch.nn.functional.one_hot(row[:, 1].long(), self.num_classes).float()
            weight = row[:, 2:3].to(soft.dtype)
            weight = weight if weight_is_other else 1 - weight
            soft = soft * (1 - weight) + other * weight
        return images, soft

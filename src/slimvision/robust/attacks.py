"""FGSM and PGD in pixel space: eps is in pixel units of [0, 1], the recorded normalisation is applied inside.

Datasets hold normalised images; an attack maps them back to pixels (x * std + mean), perturbs and
clips there, and feeds the model through `PixelModel`, which normalises again. So `eps=8/255`
means eight grey levels whatever the data's mean and std.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from slimvision.errors import ConfigError

NORMS = ("linf", "l2")
ATTACKS = ("fgsm", "pgd")


@dataclass
class AttackConfig:
    """One attack's budget: eps (pixel units), steps and step size (PGD), norm, random start, pixel clip range."""

    eps: float = 0.1
    steps: int = 10
    step_size: float | None = None  # None -> 2.5 * eps / steps, the usual PGD choice
    norm: str = "linf"
    random_start: bool = True
    clip: tuple[float, float] | None = (0.0, 1.0)  # None: pixels are not bounded (synthetic data)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ConfigError(f"--norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        if not self.eps >= 0 or self.eps != self.eps or self.eps == float("inf"):
            raise ConfigError(f"--eps must be a finite number >= 0, got {self.eps}")
        if self.steps < 1:
            raise ConfigError(f"--steps must be >= 1, got {self.steps}")
        if self.step_size is not None and not self.step_size > 0:
            raise ConfigError(f"--step-size must be > 0, got {self.step_size}")

    @property
    def resolved_step_size(self) -> float:
        """The PGD step size in pixel units."""
        return self.step_size if self.step_size is not None else 2.5 * self.eps / self.steps

    def to_dict(self) -> dict:
        return {**asdict(self), "step_size": self.resolved_step_size}


class PixelModel(nn.Module):
    """`model` taking pixels in [0, 1]: normalises with the recorded mean/std first."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def to_pixels(self, normalised: torch.Tensor) -> torch.Tensor:
        """Normalised images back to pixel values."""
        return normalised * self.std + self.mean

    def to_normalised(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixel values to what the wrapped model was trained on."""
        return (pixels - self.mean) / self.std

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(self.to_normalised(pixels))


def _per_sample_l2(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (tensor.ndim - 1)))


def _project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """delta moved back into the eps-ball of `norm`."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    return delta * (eps / _per_sample_l2(delta)).clamp(max=1.0)


def _ascent_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """The steepest-ascent unit step of `norm` for gradient `grad`."""
    return grad.sign() if norm == "linf" else grad / _per_sample_l2(grad)


def _clip(pixels: torch.Tensor, clip: tuple[float, float] | None) -> torch.Tensor:
    return pixels if clip is None else pixels.clamp(*clip)


def _loss_gradient(model: nn.Module, pixels: torch.Tensor, targets: torch.Tensor, loss_fn) -> torch.Tensor:
    pixels = pixels.detach().requires_grad_(True)
    loss = loss_fn(model(pixels), targets)
    (grad,) = torch.autograd.grad(loss, pixels)
    return grad


@torch.no_grad()
def _per_sample_loss(model: nn.Module, pixels: torch.Tensor, targets: torch.Tensor, loss_fn) -> torch.Tensor:
    logits = model(pixels)
    return torch.stack([loss_fn(logits[i : i + 1], targets[i : i + 1]) for i in range(logits.shape[0])])


def cross_entropy_sum(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy: each sample's gradient is independent of the batch size."""
    return F.cross_entropy(logits, targets, reduction="sum")


def fgsm(model: PixelModel, pixels: torch.Tensor, targets: torch.Tensor, config: AttackConfig, loss_fn=cross_entropy_sum) -> torch.Tensor:
    """Adversarial pixels from one gradient step of size eps (sign step for linf, normalised for l2)."""
    grad = _loss_gradient(model, pixels, targets, loss_fn)
    return _clip(pixels + config.eps * _ascent_direction(grad, config.norm), config.clip).detach()


def random_start(pixels: torch.Tensor, config: AttackConfig, generator: torch.Generator) -> torch.Tensor:
    """A uniformly random point of the eps-ball around `pixels` (l2: uniform direction, radius eps * U^(1/d))."""
    if config.norm == "linf":
        noise = (torch.rand(pixels.shape, generator=generator) * 2 - 1) * config.eps
    else:
        direction = torch.randn(pixels.shape, generator=generator)
        direction = direction / _per_sample_l2(direction)
        dims = pixels[0].numel()
        radius = torch.rand(pixels.shape[0], generator=generator).pow(1.0 / dims).view(-1, *([1] * (pixels.ndim - 1)))
        noise = direction * radius * config.eps
    return noise.to(pixels.device, pixels.dtype)


def pgd(model: PixelModel, pixels: torch.Tensor, targets: torch.Tensor, config: AttackConfig,
        generator: torch.Generator | None = None, loss_fn=cross_entropy_sum, start: torch.Tensor | None = None) -> torch.Tensor:
    """Adversarial pixels from `steps` projected gradient-ascent steps from `start`, else a random start when configured."""
    generator = generator or torch.Generator().manual_seed(config.seed)
    if start is None:
        start = pixels + (random_start(pixels, config, generator) if config.random_start else torch.zeros_like(pixels))
    adversarial = _clip(start, config.clip).detach()
    # keep, per sample, the iterate with the highest loss: the last step can overshoot a better point
    best, best_loss = adversarial, _per_sample_loss(model, adversarial, targets, loss_fn)
    for _ in range(config.steps):
        grad = _loss_gradient(model, adversarial, targets, loss_fn)
        stepped = adversarial + config.resolved_step_size * _ascent_direction(grad, config.norm)
        adversarial = _clip(pixels + _project(stepped - pixels, config.eps, config.norm), config.clip).detach()
        loss = _per_sample_loss(model, adversarial, targets, loss_fn)
        improved = loss > best_loss
        best = torch.where(improved.view(-1, *([1] * (pixels.ndim - 1))), adversarial, best)
        best_loss = torch.where(improved, loss, best_loss)
    return best


def attack(name: str, model: PixelModel, pixels: torch.Tensor, targets: torch.Tensor, config: AttackConfig,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Adversarial pixels from attack `name` (fgsm | pgd)."""
    if name == "fgsm":
        return fgsm(model, pixels, targets, config)
    if name == "pgd":
        return pgd(model, pixels, targets, config, generator)
    raise ConfigError(f"unknown attack {name!r}; use one of {', '.join(ATTACKS)}")

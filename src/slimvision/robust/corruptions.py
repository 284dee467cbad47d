"""Common corruptions in pixel space [0, 1]: gaussian blur, gaussian noise, JPEG (PIL) and brightness.

Severity 1..5 picks a fixed parameter from the tables below (milder to harsher), so numbers are
comparable between models and runs; noise is seeded.
"""

from __future__ import annotations

import io
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from slimvision.errors import ConfigError

BLUR_SIGMA = (0.4, 0.6, 0.8, 1.0, 1.5)  # pixels
NOISE_STD = (0.04, 0.08, 0.12, 0.18, 0.26)  # pixel units
JPEG_QUALITY = (80, 60, 40, 20, 10)
BRIGHTNESS_DELTA = (0.1, 0.2, 0.3, 0.4, 0.5)  # added to every pixel, then clipped
SEVERITIES = (1, 2, 3, 4, 5)


def gaussian_blur(pixels: torch.Tensor, severity: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each channel convolved with a separable gaussian (reflect padding)."""
    sigma = BLUR_SIGMA[severity - 1]
    radius = max(1, int(np.ceil(2 * sigma)))
    offsets = torch.arange(-radius, radius + 1, dtype=pixels.dtype)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    channels = pixels.shape[1]
    pad = min(radius, pixels.shape[-1] - 1, pixels.shape[-2] - 1)
    if pad < radius:  # images smaller than the kernel: clip the kernel to what reflect padding allows
        kernel = kernel[radius - pad : radius + pad + 1]
        kernel = kernel / kernel.sum()
    horizontal = kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)
    vertical = kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)
    out = F.conv2d(F.pad(pixels, (pad, pad, 0, 0), mode="reflect"), horizontal, groups=channels)
    return F.conv2d(F.pad(out, (0, 0, pad, pad), mode="reflect"), vertical, groups=channels).clamp(0, 1)


def gaussian_noise(pixels: torch.Tensor, severity: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Pixels plus seeded gaussian noise, clipped to [0, 1]."""
    noise = torch.randn(pixels.shape, generator=generator) * NOISE_STD[severity - 1]
    return (pixels + noise.to(pixels.dtype)).clamp(0, 1)


def jpeg(pixels: torch.Tensor, severity: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image encoded and decoded by PIL's JPEG codec at a fixed quality."""
    quality = JPEG_QUALITY[severity - 1]
    out = torch.empty_like(pixels)
    for index, image in enumerate(pixels):
        array = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        mode = "L" if array.shape[2] == 1 else "RGB"
        buffer = io.BytesIO()
        Image.fromarray(array[:, :, 0] if mode == "L" else array, mode=mode).save(buffer, format="JPEG", quality=quality)
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert(mode), dtype=np.float32) / 255.0
        decoded = decoded[:, :, None] if decoded.ndim == 2 else decoded
        out[index] = torch.from_numpy(decoded).permute(2, 0, 1)
    return out


def brightness(pixels: torch.Tensor, severity: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Every pixel brightened by a fixed amount, clipped to [0, 1]."""
    return (pixels + BRIGHTNESS_DELTA[severity - 1]).clamp(0, 1)


CORRUPTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "gaussian_blur": gaussian_blur,
    "gaussian_noise": gaussian_noise,
    "jpeg": jpeg,
    "brightness": brightness,
}


def corrupt(name: str, pixels: torch.Tensor, severity: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """`pixels` (N, C, H, W in [0, 1]) with corruption `name` at `severity` (1..5)."""
    if name not in CORRUPTIONS:
        raise ConfigError(f"unknown corruption {name!r}; use one of {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ConfigError(f"corruption severity must be one of {SEVERITIES}, got {severity}")
    return CORRUPTIONS[name](pixels, severity, generator)

"""MobileNetV2 (Sandler et al. 2018) with an ImageNet stem or a CIFAR stem for 32x32 inputs."""

from __future__ import annotations

import torch
import torch.nn as nn

from slimvision.models.registry import register_model

# (expand ratio t, output channels c, repeats n, first stride s), from the paper's Table 2.
INVERTED_RESIDUAL_SETTING = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of `divisor`, never below 90% of `value` (reference rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_bn_relu(in_ch: int, out_ch: int, kernel: int, stride: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, expand_ratio: int, kernel: int = 3):
        super().__init__()
        hidden = int(round(in_ch * expand_ratio))
        self.use_residual = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(conv_bn_relu(in_ch, hidden, 1, 1))
        layers += [
            conv_bn_relu(hidden, hidden, kernel, stride, groups=hidden),
            nn.Conv2d(hidden, out_ch, 1, 1, 0, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0, stem: str = "imagenet", dropout: float = 0.2):
        super().__init__()
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        cifar = stem == "cifar"
        in_ch = make_divisible(32 * width_mult)
        last_ch = make_divisible(1280 * max(1.0, width_mult))
        # CIFAR stem: stride-1 first conv and stride 1 in the second stage, keeping 32x32 inputs at 4x4 before pooling.
        features: list[nn.Module] = [conv_bn_relu(in_chans, in_ch, 3, 1 if cifar else 2)]
        for stage, (t, c, n, s) in enumerate(INVERTED_RESIDUAL_SETTING):
            out_ch = make_divisible(c * width_mult)
            first_stride = 1 if (cifar and stage == 1) else s
            for i in range(n):
                features.append(InvertedResidual(in_ch, out_ch, first_stride if i == 0 else 1, t))
                in_ch = out_ch
        features.append(conv_bn_relu(in_ch, last_ch, 1, 1))
        self.features = nn.Sequential(*features)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last_ch, num_classes))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model
def mobilenetv2(num_classes: int = 1000, in_chans: int = 3, width_mult: float = 1.0, stem: str = "imagenet", dropout: float = 0.2) -> MobileNetV2:
    return MobileNetV2(num_classes, in_chans, width_mult, stem, dropout)


@register_model
def mobilenetv2_cifar(num_classes: int = 10, in_chans: int = 3, width_mult: float = 1.0, dropout: float = 0.0) -> MobileNetV2:
    return MobileNetV2(num_classes, in_chans, width_mult, "cifar", dropout)

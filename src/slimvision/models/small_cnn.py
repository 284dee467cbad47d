"""A small CNN sized for 8x8 digits (works at any input size thanks to global pooling)."""

from __future__ import annotations

import torch
import torch.nn as nn

from slimvision.models.registry import register_model


class SmallCNN(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 1, widths: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = in_chans
        for index, width in enumerate(widths):
            stride = 1 if index == 0 else 2
            layers += [nn.Conv2d(in_ch, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
            in_ch = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


@register_model
def small_cnn(num_classes: int = 10, in_chans: int = 1, widths: tuple[int, int, int] = (16, 32, 64)) -> SmallCNN:
    return SmallCNN(num_classes, in_chans, tuple(widths))

"""StarNet (Ma et al., "Rewrite the Stars", CVPR 2024): element-wise multiplication ("star") blocks.

Published ImageNet sizes at 224x224 / 1000 classes: S1 2.9M params / 425M MACs, S2 3.7M / 547M,
S3 5.8M / 757M, S4 7.5M / 1075M.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from slimvision.models.registry import register_model


def conv_bn(in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, groups: int = 1, with_bn: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups)]
    if with_bn:
        bn = nn.BatchNorm2d(out_ch)
        nn.init.ones_(bn.weight)
        nn.init.zeros_(bn.bias)
        layers.append(bn)
    return nn.Sequential(*layers)


class StarBlock(nn.Module):
    """depthwise 7x7 -> two 1x1 branches multiplied (ReLU6(f1) * f2) -> 1x1 -> depthwise 7x7, residual."""

    def __init__(self, dim: int, mlp_ratio: int = 3):
        super().__init__()
        self.dwconv = conv_bn(dim, dim, 7, groups=dim)
        self.f1 = conv_bn(dim, mlp_ratio * dim, with_bn=False)
        self.f2 = conv_bn(dim, mlp_ratio * dim, with_bn=False)
        self.g = conv_bn(mlp_ratio * dim, dim)
        self.dwconv2 = conv_bn(dim, dim, 7, groups=dim, with_bn=False)
        self.act = nn.ReLU6()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x)
        y = self.act(self.f1(y)) * self.f2(y)
        return x + self.dwconv2(self.g(y))


class StarNet(nn.Module):
    def __init__(self, base_dim: int, depths: list[int], mlp_ratio: int = 4, num_classes: int = 1000, in_chans: int = 3, stem_dim: int = 32):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(in_chans, stem_dim, 3, 2), nn.ReLU6())
        stages, in_ch = [], stem_dim
        for index, depth in enumerate(depths):
            dim = base_dim * 2**index
            stages.append(nn.Sequential(conv_bn(in_ch, dim, 3, 2), *[StarBlock(dim, mlp_ratio) for _ in range(depth)]))
            in_ch = dim
        self.stages = nn.Sequential(*stages)
        self.norm = nn.BatchNorm2d(in_ch)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(in_ch, num_classes)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.head(torch.flatten(self.pool(self.norm(x)), 1))


@register_model
def starnet_s1(num_classes: int = 1000, in_chans: int = 3) -> StarNet:
    return StarNet(24, [2, 2, 8, 3], num_classes=num_classes, in_chans=in_chans)


@register_model
def starnet_s2(num_classes: int = 1000, in_chans: int = 3) -> StarNet:
    return StarNet(32, [1, 2, 6, 2], num_classes=num_classes, in_chans=in_chans)


@register_model
def starnet_s3(num_classes: int = 1000, in_chans: int = 3) -> StarNet:
    return StarNet(32, [2, 2, 8, 4], num_classes=num_classes, in_chans=in_chans)


@register_model
def starnet_s4(num_classes: int = 1000, in_chans: int = 3) -> StarNet:
    return StarNet(32, [3, 3, 12, 5], num_classes=num_classes, in_chans=in_chans)

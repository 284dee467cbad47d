"""CIFAR ResNets (He et al. 2016, section 4.2): 3 stages of 16/32/64 channels, depth = 6n + 2.

Option A (the paper's CIFAR setting) uses a parameter-free shortcut: spatial subsampling and
zero-padded channels. Here that shortcut carries an explicit channel map, so a pruned network
can say exactly which input channel feeds each output channel. Option B uses a 1x1 projection.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from slimvision.models.registry import register_model


class ChannelMapShortcut(nn.Module):
    """Output channel j = input channel `channel_map[j]` (subsampled by `stride`), or 0 where it is -1."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.in_channels = in_channels
        self.stride = stride
        pad = (out_channels - in_channels) // 2
        channel_map = torch.full((out_channels,), -1, dtype=torch.long)
        channel_map[pad : pad + in_channels] = torch.arange(in_channels)
        self.register_buffer("channel_map", channel_map)

    @property
    def out_channels(self) -> int:
        return self.channel_map.numel()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        # Append one zero channel and gather: entries of -1 read that zero channel.
        zeros = x.new_zeros(x.shape[0], 1, x.shape[2], x.shape[3])
        source = torch.where(self.channel_map < 0, self.in_channels, self.channel_map)
        return torch.cat([x, zeros], dim=1).index_select(1, source)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}, stride={self.stride}"


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int, shortcut: str, mid_planes: int | None = None):
        super().__init__()
        mid = mid_planes or planes
        self.conv1 = nn.Conv2d(in_planes, mid, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        # two ReLU modules, not one called twice: graph-level quantizers group nodes by module
        self.relu1 = nn.ReLU(inplace=True)
        self.relu2 = nn.ReLU(inplace=True)
        if stride == 1 and in_planes == planes:
            self.shortcut: nn.Module = nn.Identity()
        elif shortcut == "A":
            self.shortcut = ChannelMapShortcut(in_planes, planes, stride)
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(
        self,
        depth: int,
        num_classes: int = 10,
        in_chans: int = 3,
        shortcut: str = "A",
        widths: tuple[int, int, int] = (16, 32, 64),
        zero_init_residual: bool = False,
    ):
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' or 'B', got {shortcut!r}")
        blocks_per_stage = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        layers, in_planes = [], widths[0]
        for stage, planes in enumerate(widths):
            blocks = []
            for index in range(blocks_per_stage):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(BasicBlock(in_planes, planes, stride, shortcut))
                in_planes = planes
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1], num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual:
            # every block starts as its shortcut, so a deep stack cannot blow up in the first steps (Goyal et al. 2017)
            for module in self.modules():
                if isinstance(module, BasicBlock):
                    nn.init.zeros_(module.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


@register_model
def resnet20(num_classes: int = 10, in_chans: int = 3, shortcut: str = "A", zero_init_residual: bool = False) -> CifarResNet:
    return CifarResNet(20, num_classes, in_chans, shortcut, zero_init_residual=zero_init_residual)


@register_model
def resnet32(num_classes: int = 10, in_chans: int = 3, shortcut: str = "A", zero_init_residual: bool = False) -> CifarResNet:
    return CifarResNet(32, num_classes, in_chans, shortcut, zero_init_residual=zero_init_residual)


@register_model
def resnet56(num_classes: int = 10, in_chans: int = 3, shortcut: str = "A", zero_init_residual: bool = False) -> CifarResNet:
    return CifarResNet(56, num_classes, in_chans, shortcut, zero_init_residual=zero_init_residual)


@register_model
def resnet110(num_classes: int = 10, in_chans: int = 3, shortcut: str = "A", zero_init_residual: bool = False) -> CifarResNet:
    return CifarResNet(110, num_classes, in_chans, shortcut, zero_init_residual=zero_init_residual)

"""The `resnet` space: CIFAR ResNets (He et al.) with a depth and a width multiplier per stage.

Three stages of basic blocks at 16/32/64 base channels (strides 1/2/2), depth 1-3 blocks per
stage (3/3/3 is ResNet-20's layout), width 0.5/0.75/1.0 of the base channels: 3^6 = 729 archs.
Every stage's first block has a 1x1 projection shortcut (option B), so any width can follow any
other and all of an arch's tensors are leading slices of the widest arch's tensors, which is
what the supernet in `slimvision.nas.supernet.resnet` shares.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from slimvision.models.registry import register_model
from slimvision.nas.space import SPACES, Arch, SearchSpace

STEM_CHANNELS = 16
# (base channels, max depth, first stride) per stage
STAGES = [(16, 3, 1), (32, 3, 2), (64, 3, 2)]
DEPTHS = [1, 2, 3]
WIDTHS = [0.5, 0.75, 1.0]


def stage_channels(stage: int, width: float) -> int:
    return int(round(STAGES[stage][0] * width))


def block_plan(arch: Arch) -> list[dict[str, int]]:
    """The active blocks of `arch`: in/out channels, stride, projection shortcut, (stage, index)."""
    plan, in_ch = [], STEM_CHANNELS
    for stage, (_, _, stride) in enumerate(STAGES):
        out_ch = stage_channels(stage, arch[f"w{stage}"])
        for index in range(arch[f"d{stage}"]):
            plan.append({"stage": stage, "index": index, "in": in_ch, "out": out_ch, "stride": stride if index == 0 else 1, "projection": index == 0})
            in_ch = out_ch
    return plan


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus the shortcut, then ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, projection: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch)) if projection else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + self.shortcut(x))


class ResNetArch(nn.Module):
    """The standalone network of one `resnet` arch."""

    def __init__(self, arch: Arch, num_classes: int = 10, in_chans: int = 3):
        super().__init__()
        self.arch = dict(arch)
        self.stem = nn.Sequential(nn.Conv2d(in_chans, STEM_CHANNELS, 3, 1, 1, bias=False), nn.BatchNorm2d(STEM_CHANNELS), nn.ReLU(inplace=True))
        plan = block_plan(arch)
        self.blocks = nn.Sequential(*[BasicBlock(b["in"], b["out"], b["stride"], b["projection"]) for b in plan])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(plan[-1]["out"], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


@SPACES.register("resnet")
class ResNetSpace(SearchSpace):
    name = "resnet"
    model_name = "nas_resnet"

    def choices(self) -> dict[str, list[Any]]:
        result: dict[str, list[Any]] = {}
        for stage in range(len(STAGES)):
            result[f"d{stage}"] = list(DEPTHS)
            result[f"w{stage}"] = list(WIDTHS)
        return result

    def build(self, arch: Arch, num_classes: int = 10, in_chans: int = 3) -> nn.Module:
        return ResNetArch(self.validate(arch), num_classes, in_chans)

    def macs(self, arch: Arch, image_size: int = 32, in_chans: int = 3, num_classes: int = 10) -> int:
        """Exact conv/linear MACs of `ResNetArch(arch)` per image (what `count_macs` counts), without building it."""
        side = image_size
        total = in_chans * STEM_CHANNELS * 9 * side * side
        for block in block_plan(arch):
            side = (side - 1) // block["stride"] + 1  # 3x3 conv, padding 1
            total += (block["in"] + block["out"]) * block["out"] * 9 * side * side
            if block["projection"]:
                total += block["in"] * block["out"] * side * side
        return total + block_plan(arch)[-1]["out"] * num_classes


@register_model
def nas_resnet(num_classes: int = 10, in_chans: int = 3, arch: dict | None = None) -> ResNetArch:
    """A standalone `resnet`-space network; `arch` is the JSON arch dict (default: the largest)."""
    space = ResNetSpace()
    return ResNetArch(space.validate(arch or space.largest()), num_classes, in_chans)

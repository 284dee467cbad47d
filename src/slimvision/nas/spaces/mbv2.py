"""The `mbv2` space: a MobileNetV2 / OFA-style elastic space for small inputs (CIFAR stem).

Per stage: depth; per block: expand ratio and kernel size; per stage: width multiplier. At 32x32
its subnets span roughly 10M to 100M MACs. `MbNet` is the standalone network of one arch; the
supernet in `slimvision.nas.supernet.mbv2` shares weights between all of them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from slimvision.models.mobilenetv2 import make_divisible
from slimvision.models.registry import register_model
from slimvision.nas.space import SPACES, Arch, SearchSpace

STEM_CHANNELS = 24
HEAD_CHANNELS = 384
# (base output channels, max depth, first stride) per stage, for 32x32 inputs
STAGES = [(24, 2, 1), (32, 3, 2), (64, 3, 2), (96, 3, 1), (160, 2, 2)]
DEPTHS = [1, 2, 3]
EXPANDS = [3, 4, 6]
KERNELS = [3, 5, 7]
WIDTHS = [0.75, 1.0]


def stage_channels(stage: int, width: float) -> int:
    return make_divisible(STAGES[stage][0] * width)


def block_plan(arch: Arch) -> list[dict[str, int]]:
    """The active blocks of `arch`: in/hidden/out channels, kernel, stride, (stage, index)."""
    plan, in_ch = [], STEM_CHANNELS
    for stage, (_, max_depth, stride) in enumerate(STAGES):
        out_ch = stage_channels(stage, arch[f"w{stage}"])
        for index in range(min(arch[f"d{stage}"], max_depth)):
            hidden = in_ch * arch[f"e{stage}_{index}"]
            plan.append({"stage": stage, "index": index, "in": in_ch, "hidden": hidden, "out": out_ch, "kernel": arch[f"k{stage}_{index}"], "stride": stride if index == 0 else 1})
            in_ch = out_ch
    return plan


class MbBlock(nn.Module):
    """expand 1x1 -> depthwise kxk -> project 1x1 (+ residual when shapes allow)."""

    def __init__(self, in_ch: int, hidden: int, out_ch: int, kernel: int, stride: int):
        super().__init__()
        self.expand = nn.Sequential(nn.Conv2d(in_ch, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True))
        self.depthwise = nn.Sequential(nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True))
        self.project = nn.Sequential(nn.Conv2d(hidden, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch))
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class MbNet(nn.Module):
    """The standalone network of one `mbv2` arch."""

    def __init__(self, arch: Arch, num_classes: int = 10, in_chans: int = 3):
        super().__init__()
        self.arch = dict(arch)
        self.stem = nn.Sequential(nn.Conv2d(in_chans, STEM_CHANNELS, 3, 1, 1, bias=False), nn.BatchNorm2d(STEM_CHANNELS), nn.ReLU6(inplace=True))
        plan = block_plan(arch)
        self.blocks = nn.Sequential(*[MbBlock(b["in"], b["hidden"], b["out"], b["kernel"], b["stride"]) for b in plan])
        last = plan[-1]["out"]
        self.head = nn.Sequential(nn.Conv2d(last, HEAD_CHANNELS, 1, bias=False), nn.BatchNorm2d(HEAD_CHANNELS), nn.ReLU6(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))


class Mbv2Space(SearchSpace):
    name = "mbv2"
    model_name = "nas_mbv2"

    def choices(self) -> dict[str, list[Any]]:
        result: dict[str, list[Any]] = {}
        for stage, (_, max_depth, _) in enumerate(STAGES):
            result[f"d{stage}"] = [d for d in DEPTHS if d <= max_depth]
            result[f"w{stage}"] = list(WIDTHS)
            for index in range(max_depth):
                result[f"e{stage}_{index}"] = list(EXPANDS)
                result[f"k{stage}_{index}"] = list(KERNELS)
        return result

    def build(self, arch: Arch, num_classes: int = 10, in_chans: int = 3) -> nn.Module:
        return MbNet(self.validate(arch), num_classes, in_chans)

    def macs(self, arch: Arch, image_size: int = 32, in_chans: int = 3, num_classes: int = 10) -> int:
        """Exact conv/linear MACs of `MbNet(arch)` per image (what `count_macs` counts), without building it."""
        side = image_size
        total = in_chans * STEM_CHANNELS * 9 * side * side
        for block in block_plan(arch):
            total += block["in"] * block["hidden"] * side * side
            side = (side + 2 * (block["kernel"] // 2) - block["kernel"]) // block["stride"] + 1
            total += block["hidden"] * block["kernel"] ** 2 * side * side
            total += block["hidden"] * block["out"] * side * side
        last = block_plan(arch)[-1]["out"]
        return total + last * HEAD_CHANNELS * side * side + HEAD_CHANNELS * num_classes


SPACES.add("mbv2", Mbv2Space)


@register_model
def nas_mbv2(num_classes: int = 10, in_chans: int = 3, arch: dict | None = None) -> MbNet:
    """A standalone `mbv2`-space network; `arch` is the JSON arch dict (default: the largest)."""
    space = Mbv2Space()
    return MbNet(space.validate(arch or space.largest()), num_classes, in_chans)

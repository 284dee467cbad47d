"""Weight-sharing supernet of the `resnet` space (elastic depth and width per stage).

A subnet runs the first `d` blocks of each stage on the leading `width x base` channels of every
shared conv, BN and classifier weight. `extract(arch)` copies those slices into a standalone
`ResNetArch`; BN statistics are shared, so re-calibrate them per subnet before evaluating.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from slimvision.models.registry import register_model
from slimvision.nas.space import Arch
from slimvision.nas.spaces.resnet import STAGES, STEM_CHANNELS, ResNetArch, ResNetSpace, block_plan
from slimvision.nas.supernet.shared import Supernet, copy_bn, sliced_bn


class ElasticBasicBlock(nn.Module):
    def __init__(self, max_in: int, max_out: int, stride: int, projection: bool):
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(max_in, max_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(max_out)
        self.conv2 = nn.Conv2d(max_out, max_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(max_out)
        self.shortcut_conv = nn.Conv2d(max_in, max_out, 1, stride, bias=False) if projection else None
        self.shortcut_bn = nn.BatchNorm2d(max_out) if projection else None

    def forward(self, x: torch.Tensor, out: int) -> torch.Tensor:
        in_ch = x.shape[1]
        y = F.relu(sliced_bn(F.conv2d(x, self.conv1.weight[:out, :in_ch], None, self.stride, 1), self.bn1, out))
        y = sliced_bn(F.conv2d(y, self.conv2.weight[:out, :out], None, 1, 1), self.bn2, out)
        if self.shortcut_conv is not None:
            x = sliced_bn(F.conv2d(x, self.shortcut_conv.weight[:out, :in_ch], None, self.stride), self.shortcut_bn, out)
        return F.relu(y + x)


class ResNetSupernet(Supernet):
    """All `resnet` subnets in one module; `set_active(arch)` picks the subnet `forward` runs."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3):
        super().__init__(ResNetSpace())
        self.stem = nn.Sequential(nn.Conv2d(in_chans, STEM_CHANNELS, 3, 1, 1, bias=False), nn.BatchNorm2d(STEM_CHANNELS), nn.ReLU(inplace=True))
        stages, in_ch = [], STEM_CHANNELS
        for base, max_depth, stride in STAGES:
            stages.append(nn.ModuleList([ElasticBasicBlock(in_ch if i == 0 else base, base, stride if i == 0 else 1, i == 0) for i in range(max_depth)]))
            in_ch = base
        self.stages = nn.ModuleList(stages)
        self.classifier = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in block_plan(self.active):
            x = self.stages[block["stage"]][block["index"]](x, block["out"])
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return F.linear(x, self.classifier.weight[:, : x.shape[1]], self.classifier.bias)

    @torch.no_grad()
    def extract(self, arch: Arch) -> ResNetArch:
        """A standalone network of `arch` holding copies of the shared weights (BN statistics included)."""
        arch = self.space.validate(dict(arch))
        net = ResNetArch(arch, self.classifier.out_features, self.stem[0].in_channels)
        net.stem.load_state_dict(self.stem.state_dict())
        for target, block in zip(net.blocks, block_plan(arch)):
            source = self.stages[block["stage"]][block["index"]]
            in_ch, out = block["in"], block["out"]
            target.conv1.weight.copy_(source.conv1.weight[:out, :in_ch])
            target.conv2.weight.copy_(source.conv2.weight[:out, :out])
            copy_bn(target.bn1, source.bn1, out)
            copy_bn(target.bn2, source.bn2, out)
            if block["projection"]:
                target.shortcut[0].weight.copy_(source.shortcut_conv.weight[:out, :in_ch])
                copy_bn(target.shortcut[1], source.shortcut_bn, out)
        last = block_plan(arch)[-1]["out"]
        net.classifier.weight.copy_(self.classifier.weight[:, :last])
        net.classifier.bias.copy_(self.classifier.bias)
        return net


@register_model
def nas_resnet_supernet(num_classes: int = 10, in_chans: int = 3) -> ResNetSupernet:
    return ResNetSupernet(num_classes, in_chans)

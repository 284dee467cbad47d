"""Weight-sharing supernet of the `mbv2` space (OFA-style elastic depth, width, expand ratio, kernel).

A subnet uses the leading channels of every shared weight and the centre of the 7x7 depthwise
kernels (OFA's kernel-transform matrices are not used). `extract(arch)` copies those slices into a
standalone `MbNet`; BN statistics are shared and must be re-calibrated per subnet
(`slimvision.train.recalibrate_batchnorm`), as in OFA/BigNAS.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from slimvision.models.registry import register_model
from slimvision.nas.space import Arch
from slimvision.nas.supernet.shared import Supernet, copy_bn, sliced_bn
from slimvision.nas.spaces.mbv2 import HEAD_CHANNELS, KERNELS, STAGES, STEM_CHANNELS, MbNet, Mbv2Space, block_plan, stage_channels

MAX_KERNEL = max(KERNELS)


class ElasticBlock(nn.Module):
    def __init__(self, max_in: int, max_hidden: int, max_out: int, stride: int):
        super().__init__()
        self.stride = stride
        self.expand_conv = nn.Conv2d(max_in, max_hidden, 1, bias=False)
        self.expand_bn = nn.BatchNorm2d(max_hidden)
        self.dw_conv = nn.Conv2d(max_hidden, max_hidden, MAX_KERNEL, stride, MAX_KERNEL // 2, groups=max_hidden, bias=False)
        self.dw_bn = nn.BatchNorm2d(max_hidden)
        self.project_conv = nn.Conv2d(max_hidden, max_out, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(max_out)

    def dw_weight(self, hidden: int, kernel: int) -> torch.Tensor:
        start = (MAX_KERNEL - kernel) // 2
        return self.dw_conv.weight[:hidden, :, start : start + kernel, start : start + kernel]

    def forward(self, x: torch.Tensor, hidden: int, out: int, kernel: int) -> torch.Tensor:
        in_ch = x.shape[1]
        y = F.relu6(sliced_bn(F.conv2d(x, self.expand_conv.weight[:hidden, :in_ch]), self.expand_bn, hidden))
        y = F.relu6(sliced_bn(F.conv2d(y, self.dw_weight(hidden, kernel), None, self.stride, kernel // 2, 1, hidden), self.dw_bn, hidden))
        y = sliced_bn(F.conv2d(y, self.project_conv.weight[:out, :hidden]), self.project_bn, out)
        return x + y if self.stride == 1 and in_ch == out else y


class Mbv2Supernet(Supernet):
    """All `mbv2` subnets in one module; `set_active(arch)` picks the subnet `forward` runs."""

    def __init__(self, num_classes: int = 10, in_chans: int = 3):
        super().__init__(Mbv2Space())
        self.stem = nn.Sequential(nn.Conv2d(in_chans, STEM_CHANNELS, 3, 1, 1, bias=False), nn.BatchNorm2d(STEM_CHANNELS), nn.ReLU6(inplace=True))
        stages, in_ch = [], STEM_CHANNELS
        for stage, (_, max_depth, stride) in enumerate(STAGES):
            out_ch = stage_channels(stage, 1.0)
            blocks = []
            for index in range(max_depth):
                blocks.append(ElasticBlock(in_ch, in_ch * 6, out_ch, stride if index == 0 else 1))
                in_ch = out_ch
            stages.append(nn.ModuleList(blocks))
        self.stages = nn.ModuleList(stages)
        self.head_conv = nn.Conv2d(in_ch, HEAD_CHANNELS, 1, bias=False)
        self.head_bn = nn.BatchNorm2d(HEAD_CHANNELS)
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in block_plan(self.active):
            x = self.stages[block["stage"]][block["index"]](x, block["hidden"], block["out"], block["kernel"])
        x = F.relu6(self.head_bn(F.conv2d(x, self.head_conv.weight[:, : x.shape[1]])))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    @torch.no_grad()
    def extract(self, arch: Arch) -> MbNet:
        """A standalone network of `arch` holding copies of the shared weights (BN statistics included)."""
        arch = self.space.validate(dict(arch))
        net = MbNet(arch, self.classifier.out_features, self.stem[0].in_channels)
        net.stem.load_state_dict(self.stem.state_dict())
        for target, block in zip(net.blocks, block_plan(arch)):
            source = self.stages[block["stage"]][block["index"]]
            hidden, out, in_ch = block["hidden"], block["out"], block["in"]
            target.expand[0].weight.copy_(source.expand_conv.weight[:hidden, :in_ch])
            target.depthwise[0].weight.copy_(source.dw_weight(hidden, block["kernel"]))
            target.project[0].weight.copy_(source.project_conv.weight[:out, :hidden])
            for bn_target, bn_source, channels in ((target.expand[1], source.expand_bn, hidden), (target.depthwise[1], source.dw_bn, hidden), (target.project[1], source.project_bn, out)):
                copy_bn(bn_target, bn_source, channels)
        last = block_plan(arch)[-1]["out"]
        net.head[0].weight.copy_(self.head_conv.weight[:, :last])
        copy_bn(net.head[1], self.head_bn, HEAD_CHANNELS)
        net.classifier.load_state_dict(self.classifier.state_dict())
        return net


@register_model
def nas_mbv2_supernet(num_classes: int = 10, in_chans: int = 3) -> Mbv2Supernet:
    return Mbv2Supernet(num_classes, in_chans)

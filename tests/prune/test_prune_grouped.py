"""Grouped convolutions (RegNetX-style) reach the MACs budget although a uniform ratio jumps past it.

torch-pruning removes a grouped conv's channels one per group, so with a group width of 8 every
layer moves in steps of 1/8 of its width, and all layers step at the same uniform ratio: kept MACs
jump from ~0.58 to ~0.47 around a 50% target. The budget search then gives part of the layers the
higher ratio of its bracket (`_mix_bracket_ratios`).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from slimvision.prune import PruneConfig, prune


class XBlock(nn.Module):
    """1x1 conv, grouped 3x3 conv of group width 8, 1x1 conv, residual."""

    def __init__(self, width: int, group_width: int = 8):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(width, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, groups=width // group_width, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, width, 1, bias=False), nn.BatchNorm2d(width)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        return torch.relu(x + self.bn3(self.conv3(y)))


class GroupedNet(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.down1, self.blocks1 = nn.Conv2d(16, 24, 3, stride=2, padding=1), nn.Sequential(XBlock(24), XBlock(24))
        self.down2, self.blocks2 = nn.Conv2d(24, 56, 3, stride=2, padding=1), nn.Sequential(XBlock(56), XBlock(56))
        self.head = nn.Linear(56, num_classes)

    def forward(self, x):
        x = self.blocks1(self.down1(torch.relu(self.stem(x))))
        return self.head(self.blocks2(self.down2(x)).mean((2, 3)))


def test_grouped_convs_prune_to_half_the_macs_within_a_percent():
    torch.manual_seed(0)
    example = torch.randn(1, 3, 32, 32)
    result = prune(GroupedNet(), example, PruneConfig(method="l1", macs_ratio=0.5))
    assert abs(result.macs_kept - 0.5) <= 0.01, result.macs_kept  # a uniform ratio alone keeps 0.472
    grouped = [m for m in result.model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert all(m.out_channels % m.groups == 0 for m in grouped)
    with torch.no_grad():
        assert result.model(example).shape == (1, 10)

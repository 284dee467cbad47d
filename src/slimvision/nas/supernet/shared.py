"""What every weight-sharing supernet needs: an active subnet, sliced batch norm, copying slices out."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from slimvision.nas.space import Arch, SearchSpace


class Supernet(nn.Module):
    """All subnets of `space` in one module; `set_active(arch)` picks the one `forward` runs, `extract(arch)` copies it out."""

    def __init__(self, space: SearchSpace):
        super().__init__()
        self.space = space
        self.active: Arch = space.largest()

    def set_active(self, arch: Arch) -> None:
        self.active = self.space.validate(dict(arch))

    def extract(self, arch: Arch) -> nn.Module:
        raise NotImplementedError


def sliced_bn(x: torch.Tensor, bn: nn.BatchNorm2d, channels: int) -> torch.Tensor:
    """Batch norm over the leading `channels` of a shared BN layer (its statistics update in place)."""
    momentum = bn.momentum
    if bn.training and momentum is None:  # cumulative average, as nn.BatchNorm2d does (recalibrate_batchnorm sets this)
        bn.num_batches_tracked.add_(1)
        momentum = 1.0 / float(bn.num_batches_tracked)
    return F.batch_norm(
        x, bn.running_mean[:channels], bn.running_var[:channels], bn.weight[:channels], bn.bias[:channels],
        bn.training, momentum if momentum is not None else 0.0, bn.eps,
    )


def copy_bn(target: nn.BatchNorm2d, source: nn.BatchNorm2d, channels: int) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(target, name).copy_(getattr(source, name)[:channels])

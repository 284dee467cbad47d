"""Exponential moving average of a model's weights (used for evaluation and as an EMA teacher)."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn


class ModelEMA:
    """ema = decay * ema + (1 - decay) * weights after each step, floating-point buffers (BN statistics) included;
    integer buffers (BN batch counters) are copied."""

    def __init__(self, model: nn.Module, decay: float = 0.999):
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        for param in self.module.parameters():
            param.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_state = self.module.state_dict()
        for key, value in model.state_dict().items():
            target = ema_state[key]
            if value.dtype.is_floating_point:
                target.mul_(self.decay).add_(value.detach(), alpha=1.0 - self.decay)
            else:
                target.copy_(value)

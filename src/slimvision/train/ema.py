"""Exponential moving average of a model's weights (used for evaluation and as an EMA teacher)."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn


class ModelEMA:
    """ema = decay * ema + (1 - decay) * weights after each step, floating-point buffers (BN statistics) included;
    integer buffers (BN batch counters) are copied."""

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = False):
        """`warmup`: the n-th update uses min(decay, 1 - 1/(n + 1)), as the Mean Teacher code does, so the EMA is the
        plain mean of every weight seen so far until the run is longer than its memory of ~1/(1 - decay) steps."""
        self.decay = decay
        self.warmup = warmup
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for param in self.module.parameters():
            param.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, 1.0 - 1.0 / (self.updates + 1)) if self.warmup else self.decay
        ema_state = self.module.state_dict()
        for key, value in model.state_dict().items():
            target = ema_state[key]
            if value.dtype.is_floating_point:
                target.mul_(decay).add_(value.detach(), alpha=1.0 - decay)
            else:
                target.copy_(value)

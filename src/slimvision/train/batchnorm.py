"""BatchNorm statistics re-estimated for weights they were not collected with (soups, extracted subnets, short runs)."""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn as nn


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """Reset every BatchNorm's running mean/var and re-estimate them as the plain average over `batches`.

    Only the norm layers run in training mode (dropout and the like stay in eval mode, as at inference),
    and momentum None makes the estimate a cumulative average, so the order of the batches does not matter.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return model
    was_training = model.training
    saved_momentum = [m.momentum for m in norms]
    model.eval()
    for module in norms:
        module.reset_running_stats()
        module.momentum = None
        module.train()
    for batch in batches:
        model(batch)
    for module, momentum in zip(norms, saved_momentum):
        module.momentum = momentum
    model.train(was_training)
    return model

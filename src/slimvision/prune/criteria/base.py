"""The criterion interface: a small class that hands torch-pruning an importance function."""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn as nn
import torch_pruning as tp

from slimvision.registry import Registry


class Criterion:
    """Scores channels for removal; `importance()` returns a torch-pruning Importance (group -> scores).

    `needs_gradients`: the pruner runs forward/backward on calibration batches before scoring.
    """

    name = ""
    needs_gradients = False
    during_training = False  # True: the method prunes inside the training loop, not in one shot

    def importance(self) -> tp.importance.Importance:
        raise NotImplementedError

    def prepare(self, model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Accumulate whatever the scores need (gradients for Taylor); default: nothing."""
        if not self.needs_gradients:
            return
        model.zero_grad(set_to_none=True)
        was_training = model.training
        model.eval()  # BN statistics must not move while we only measure
        for inputs, targets in batches:
            nn.functional.cross_entropy(model(inputs), targets).backward()
        model.train(was_training)


CRITERIA: Registry[type[Criterion]] = Registry("pruning criterion")

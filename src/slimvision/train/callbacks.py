"""Hooks into the training loop, so later stages plug in without copying it.

Distillation swaps the loss, pruning regrowth acts after steps, supernet samplers act before
them. A callback overrides only the methods it needs; all default to doing nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from slimvision.train.trainer import Trainer


class Callback:
    """Base class: every hook is a no-op. State returned by `state_dict` is checkpointed."""

    def on_train_begin(self, trainer: "Trainer") -> None: ...

    def on_epoch_begin(self, trainer: "Trainer", epoch: int) -> None: ...

    def on_batch_begin(self, trainer: "Trainer", inputs: torch.Tensor, targets: torch.Tensor) -> None: ...

    def on_after_backward(self, trainer: "Trainer") -> None:
        """Gradients are ready, the optimizer has not stepped (e.g. add a sparsity penalty's gradient)."""

    def on_batch_end(self, trainer: "Trainer", loss: float) -> None: ...

    def on_epoch_end(self, trainer: "Trainer", epoch: int, metrics: dict[str, float]) -> None: ...

    def on_train_end(self, trainer: "Trainer") -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

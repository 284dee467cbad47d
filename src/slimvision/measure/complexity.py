"""Parameter and MAC counts.

MACs are counted with `torch.utils.flop_counter.FlopCounterMode`, which counts the FLOPs of
matrix products and convolutions (conv, linear/addmm, mm, bmm, baddbmm, attention) and nothing
else: element-wise ops, normalisation, activations and pooling are not included. We report
MACs = FLOPs / 2, the convention of the papers whose numbers we compare against.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from slimvision.errors import SlimvisionError


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not); buffers such as BN statistics are excluded."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_size: tuple[int, ...], batch_size: int = 1) -> int:
    """Multiply-accumulates of one forward pass on a (batch_size, *input_size) input, per batch."""
    example = torch.zeros(batch_size, *input_size, device=_device_of(model))
    counter = FlopCounterMode(display=False)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), counter:
            run_forward(model, example)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def run_forward(model: nn.Module, example: torch.Tensor) -> torch.Tensor:
    """model(example), turning a shape error into one line that names the input size."""
    try:
        return model(example)
    except RuntimeError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise SlimvisionError(
            f"input of shape {tuple(example.shape)} does not fit {model.__class__.__name__}: {first_line}"
        ) from None


def _device_of(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")

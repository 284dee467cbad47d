"""Activation checkpointing: keep only each block's input during the forward pass, recompute the block in backward.

Training memory of a CNN at 224 px is dominated by the tensors autograd keeps for the backward
pass (zoo MobileNetV2: about 75 MB per image, see benchmarks/results/data.md), not by data or
weights. With checkpointing only the blocks' inputs are kept and one block at a time is
recomputed during backward, at the cost of a second forward pass per step.

The weights a run ends with do not change: BatchNorm running statistics are put back after each
recomputation (so they are updated once per step, as without checkpointing) and dropout masks
are replayed (torch.utils.checkpoint restores the RNG state before recomputing).
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from functools import partial
from typing import Callable, Iterator

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

from slimvision.errors import ConfigError


def _is_composite(module: nn.Module) -> bool:
    return next(module.children(), None) is not None


def checkpoint_blocks(model: nn.Module) -> list[nn.Module]:
    """The blocks to checkpoint: composite modules inside nn.Sequential containers (a Sequential of blocks is opened up)."""
    blocks: list[nn.Module] = []

    def visit(module: nn.Module) -> None:
        for child in module.children():
            holds_blocks = isinstance(child, nn.Sequential) and any(_is_composite(c) for c in child.children())
            if isinstance(module, nn.Sequential) and _is_composite(child) and not holds_blocks:
                blocks.append(child)
            else:
                visit(child)

    visit(model)
    return blocks


@contextmanager
def _batch_norm_statistics_kept(block: nn.Module) -> Iterator[None]:
    """Put the block's BatchNorm buffers back after the block runs (its recomputation must not count as a second step)."""
    norms = [m for m in block.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    saved = [[b.clone() for b in (m.running_mean, m.running_var, m.num_batches_tracked) if b is not None] for m in norms]
    try:
        yield
    finally:
        with torch.no_grad():
            for module, buffers in zip(norms, saved):
                live = [b for b in (module.running_mean, module.running_var, module.num_batches_tracked) if b is not None]
                for target, value in zip(live, buffers):
                    target.copy_(value)


def _checkpointed_forward(block: nn.Module, forward: Callable, *args, **kwargs):
    if not (block.training and torch.is_grad_enabled()):
        return forward(*args, **kwargs)  # evaluation keeps nothing for backward: nothing to save
    contexts = lambda: (nullcontext(), _batch_norm_statistics_kept(block))  # noqa: E731  (forward, recomputation)
    return checkpoint(forward, *args, use_reentrant=False, context_fn=contexts, **kwargs)


@contextmanager
def activation_checkpointing(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """While the block runs, every block of `model` (see checkpoint_blocks) is checkpointed in training; restored after.

    Only the blocks' `forward` attributes change, so parameters, state_dict keys, checkpoints and
    artifacts are the same as without it.
    """
    if not enabled:
        yield
        return
    blocks = checkpoint_blocks(model)
    if not blocks:
        raise ConfigError(f"checkpoint-activations: {type(model).__name__} has no blocks (composite modules inside nn.Sequential) to checkpoint")
    own_forwards = [block.__dict__.get("forward") for block in blocks]  # a forward set on the instance, if any
    for block in blocks:
        block.forward = partial(_checkpointed_forward, block, block.forward)
    try:
        yield
    finally:
        for block, own in zip(blocks, own_forwards):
            if own is None:
                del block.forward  # the class's forward again
            else:
                block.forward = own

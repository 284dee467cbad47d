"""Data-parallel training under `torchrun`: the process group, rank 0 writes, and the supernet's gradient sync.

`torchrun --nproc_per_node N -m slimvision ...` sets RANK/WORLD_SIZE. Every training verb (train,
prune fine-tuning, distill, QAT) runs inside `process_group()`; the Trainer then gives each rank
its share of every global batch and wraps a fixed model in DistributedDataParallel (see
slimvision.train.trainer). Backend: gloo on CPU, NCCL on CUDA.

The supernet is the exception: it runs several different subnets per step, and which parameters
get gradients changes every step (the same on every rank: the samplers share a seed), so it
shards with `shard` and averages gradients by hand with `GradientAverager`.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.distributed as dist
import torch.nn as nn

from slimvision.data.base import ImageDataset, IndexedSubset
from slimvision.train.callbacks import Callback


def world_size() -> int:
    """Processes in the run (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank (0 outside torchrun)."""
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", "0"))


@contextmanager
def process_group() -> Iterator[None]:
    """Join the torchrun process group for the block's duration (nothing to do when not under torchrun)."""
    if world_size() == 1 or dist.is_initialized():
        yield
        return
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()


def is_lead() -> bool:
    """True on the process that writes outputs (rank 0, or the only process)."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (nothing to do outside torchrun)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def shard(dataset: ImageDataset) -> ImageDataset:
    """This rank's share: every world_size-th sample starting at its rank (the supernet's sharding)."""
    if world_size() == 1:
        return dataset
    return IndexedSubset(dataset, range(rank(), len(dataset), world_size()))


class GlobalBatchNorm(nn.BatchNorm2d):
    """BatchNorm whose training statistics cover the global batch (all ranks); for CPU, where torch's SyncBatchNorm has no kernels.

    Per-channel sums and squared sums are summed across ranks with torch's differentiable
    all_reduce, so gradients flow through the shared statistics as they would in one process.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = [d for d in range(x.dim()) if d != 1]
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        stats = all_reduce(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
        channels = x.shape[1]
        total = stats[-1]
        mean = stats[:channels] / total
        var = (stats[channels : 2 * channels] / total - mean * mean).clamp_min(0.0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * total / (total - 1).clamp_min(1.0)
                self.running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
                self.running_var.mul_(1 - momentum).add_(unbiased.detach(), alpha=momentum)
        shape = [1, channels] + [1] * (x.dim() - 2)
        out = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


@contextmanager
def global_batch_norm(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """While the block runs, the model's BatchNorm layers normalise over the global batch (CPU); restored after.

    On CUDA torch's own SyncBatchNorm is the tool; this covers gloo on CPU. The layers keep their
    parameters and buffers (only their class changes), so checkpoints and artifacts are unchanged.
    """
    swapped = [m for m in model.modules() if type(m) in (nn.BatchNorm1d, nn.BatchNorm2d)] if enabled else []
    originals = [type(m) for m in swapped]
    for module in swapped:
        module.__class__ = GlobalBatchNorm
    try:
        yield
    finally:
        for module, cls in zip(swapped, originals):
            module.__class__ = cls


class GradientAverager(Callback):
    """Starts every rank from rank 0's weights and averages gradients before each optimizer step."""

    def on_train_begin(self, trainer) -> None:
        if world_size() > 1:
            for tensor in list(trainer.model.parameters()) + list(trainer.model.buffers()):
                dist.broadcast(tensor.data, src=0)

    def on_after_backward(self, trainer) -> None:
        if world_size() == 1:
            return
        grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])  # one collective per step instead of one per tensor
        dist.all_reduce(flat)
        flat /= world_size()
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

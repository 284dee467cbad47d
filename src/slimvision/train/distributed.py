"""Data-parallel training under `torchrun`: shard the data, average gradients, rank 0 writes.

`torchrun --nproc_per_node N -m slimvision ...` sets RANK/WORLD_SIZE; each process trains on
every N-th sample with batch size / N, and gradients are averaged across processes before each
optimizer step, so N processes follow one trajectory with the same global batch. Backend: gloo
on CPU, NCCL on CUDA. Gradients are averaged by hand instead of wrapping the model in
DistributedDataParallel because a supernet runs several different subnets per step, and which
parameters get gradients changes every step (the same on every rank: the samplers share a seed).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.distributed as dist

from slimvision.data import TensorImageDataset
from slimvision.train.callbacks import Callback


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
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


def shard(dataset: TensorImageDataset) -> TensorImageDataset:
    """This rank's share: every world_size-th sample starting at its rank."""
    if world_size() == 1:
        return dataset
    r, n = rank(), world_size()
    return TensorImageDataset(dataset.images[r::n], dataset.labels[r::n], dataset.spec, dataset.split)


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

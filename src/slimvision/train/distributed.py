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

import functools
import gc
import os
from contextlib import contextmanager
from typing import Callable, Iterator

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
        # Ranks leave together: a rank that tore its group down while rank 0 was still writing outputs was
        # seen to abort in gloo's teardown ("terminate called without an active exception").
        dist.barrier()
    finally:
        # A Trainer sits in a reference cycle, so its DistributedDataParallel wrapper (and the group it holds)
        # would otherwise live until interpreter shutdown, where gloo's threads freeing its tensors abort the
        # process (SIGABRT, "terminate called without an active exception"; seen in about 1 run in 4 under load).
        gc.collect()
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


def _spans_ranks(training: bool) -> bool:
    return training and dist.is_initialized() and dist.get_world_size() > 1


def _batch_norm_over_ranks(
    x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None, momentum: float, eps: float,
) -> torch.Tensor:
    """Training-mode batch norm whose statistics cover every rank's batch; updates the running statistics in place.

    Per-channel sums and squared sums are summed across ranks with torch's differentiable
    all_reduce, so gradients flow through the shared statistics as they would in one process.
    """
    from torch.distributed.nn.functional import all_reduce

    dims = [d for d in range(x.dim()) if d != 1]
    count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
    stats = all_reduce(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
    channels = x.shape[1]
    total = stats[-1]
    mean = stats[:channels] / total
    var = (stats[channels : 2 * channels] / total - mean * mean).clamp_min(0.0)
    if running_mean is not None and running_var is not None:
        with torch.no_grad():
            unbiased = var * total / (total - 1).clamp_min(1.0)
            running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
            running_var.mul_(1 - momentum).add_(unbiased.detach(), alpha=momentum)
    shape = [1, channels] + [1] * (x.dim() - 2)
    out = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + eps)
    if weight is not None:
        out = out * weight.view(shape)
    if bias is not None:
        out = out + bias.view(shape)
    return out


class GlobalBatchNorm(nn.BatchNorm2d):
    """BatchNorm whose training statistics cover the global batch (all ranks); for CPU, where torch's SyncBatchNorm has no kernels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _spans_ranks(self.training):
            return super().forward(x)
        momentum = self.momentum
        if self.track_running_stats:
            self.num_batches_tracked += 1
            if momentum is None:
                momentum = 1.0 / float(self.num_batches_tracked)
        running = (self.running_mean, self.running_var) if self.track_running_stats else (None, None)
        return _batch_norm_over_ranks(x, self.weight, self.bias, *running, momentum or 0.0, self.eps)


def graph_batch_norm_over_ranks(x, weight, bias, running_mean, running_var, training, momentum, eps, cudnn_enabled):
    """aten.batch_norm with the statistics of the global batch in training (stands in for it in exported graphs)."""
    if not _spans_ranks(training):
        return torch.ops.aten.batch_norm.default(x, weight, bias, running_mean, running_var, training, momentum, eps, cudnn_enabled)
    return _batch_norm_over_ranks(x, weight, bias, running_mean, running_var, momentum, eps)


def observe_global_range(fake_quantize: nn.Module, forward: Callable, x: torch.Tensor) -> torch.Tensor:
    """A fused per-tensor observer + fake-quantizer (PT2E QAT) whose observed range is the global batch's.

    Each rank's batch minimum and maximum are reduced across ranks and observed as if one process
    had seen the whole batch (the moving average then matches it exactly); the local batch is then
    fake-quantized with the scale that observation gives. `forward` is the module's own forward.
    """
    module = fake_quantize
    if module.is_per_channel or not (_spans_ranks(True) and bool(module.observer_enabled[0])):
        return forward(x)
    low, high = torch.aminmax(x.detach())
    extremes = torch.stack([low, -high])
    dist.all_reduce(extremes, op=dist.ReduceOp.MIN)
    off = torch.zeros_like(module.fake_quant_enabled)
    observer = module.activation_post_process
    fixed = (observer.min_val, observer.max_val, module.scale, module.zero_point, observer.averaging_constant,
             observer.quant_min, observer.quant_max, module.ch_axis, module.is_per_channel, module.is_symmetric_quant)
    torch.fused_moving_avg_obs_fake_quant(torch.stack([extremes[0], -extremes[1]]), module.observer_enabled, off, *fixed)
    return torch.fused_moving_avg_obs_fake_quant(x, off, module.fake_quant_enabled, *fixed)


@contextmanager
def global_batch_norm(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """While the block runs, the model's batch statistics cover the global batch (CPU); restored after.

    BatchNorm layers become GlobalBatchNorm; in an exported graph (PT2E QAT) the aten.batch_norm
    calls are redirected to graph_batch_norm_over_ranks and the per-tensor activation observers
    observe the global batch's range, so N processes compute what one process would. On CUDA
    torch's own SyncBatchNorm is the tool for plain modules; this covers gloo on CPU. Parameters
    and buffers are kept (only classes and graph call targets change), so checkpoints and artifacts
    are unchanged.
    """
    modules = list(model.modules()) if enabled else []
    swapped = [m for m in modules if type(m) in (nn.BatchNorm1d, nn.BatchNorm2d)]
    observers = [m for m in modules if type(m).__name__ == "FusedMovingAvgObsFakeQuantize" and "forward" not in m.__dict__]
    originals = [type(m) for m in swapped]
    graphs = [m for m in modules if isinstance(m, torch.fx.GraphModule)]
    redirected = [(g, n) for g in graphs for n in g.graph.nodes if n.op == "call_function" and n.target is torch.ops.aten.batch_norm.default]
    for module in swapped:
        module.__class__ = GlobalBatchNorm
    for module in observers:
        module.forward = functools.partial(observe_global_range, module, module.forward)
    for _, node in redirected:
        node.target = graph_batch_norm_over_ranks
    for graph in {id(g): g for g, _ in redirected}.values():
        graph.recompile()
    try:
        yield
    finally:
        for module, cls in zip(swapped, originals):
            module.__class__ = cls
        for module in observers:
            del module.forward  # the class's forward again
        for _, node in redirected:
            node.target = torch.ops.aten.batch_norm.default
        for graph in {id(g): g for g, _ in redirected}.values():
            graph.recompile()


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

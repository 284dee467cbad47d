"""CHEX (Hou et al., CVPR 2022): channel exploration during training, never above the target size.

Periodically, in every explorable layer:
1. *prune* to (target width - regrow count) by column-subset selection: the rank-k leverage
   score of each channel's weight column (squared row norm of the top-k right singular vectors);
2. *regrow* that many pruned channels, sampled with probability proportional to the norm of the
   orthogonal projection residual of their weight column onto the span of the kept columns,
   restoring their last weights; the regrowth factor decays with a cosine schedule;
3. every few updates, *re-allocate* per-layer widths: rank BN scaling factors globally and keep,
   greedily by |gamma|, the channels that fit the MACs budget.
Channels are masked (weights and BN affine zeroed and held at zero), so the active model always
meets the budget; at the end the masked channels are removed physically with torch-pruning.

Explorable layers are channel groups with a single producer (a conv or linear followed by its
norm): the inner channels of residual blocks, MobileNetV2 expansions. Channels coupled through a
residual sum or an element-wise product cannot be zeroed by their producers alone, so those
groups keep their width (documented limitation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch_pruning as tp

from slimvision.errors import ConfigError
from slimvision.measure import count_macs
from slimvision.models.cifar_resnet import ChannelMapShortcut
from slimvision.prune.shortcut import CUSTOM_PRUNERS
from slimvision.train import Callback

PRODUCER_TYPES = (nn.Conv2d, nn.Linear)


@dataclass
class ChexConfig:
    update_every: int = 20  # steps between prune/regrow updates
    realloc_every: int = 5  # updates between width re-allocations
    regrow_start: float = 0.3  # initial regrowth factor (fraction of pruned channels), cosine-decayed to 0
    min_width_fraction: float = 0.1
    seed: int = 0


def leverage_scores(columns: torch.Tensor, rank: int) -> torch.Tensor:
    """Rank-`rank` leverage score of each column of `columns` (d x n): squared row norms of V_k."""
    _, _, vh = torch.linalg.svd(columns, full_matrices=False)
    rank = max(1, min(rank, vh.shape[0]))
    return (vh[:rank] ** 2).sum(dim=0)


def projection_residuals(columns: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """||(I - P_kept) a_j|| / ||a_j|| for every column j, P_kept the projector onto the kept columns' span."""
    norms = columns.norm(dim=0).clamp_min(1e-12)
    if kept.sum() == 0:
        return torch.ones(columns.shape[1])
    basis, _ = torch.linalg.qr(columns[:, kept])
    residual = columns - basis @ (basis.T @ columns)
    return residual.norm(dim=0) / norms


def cosine_regrowth(progress: float, start: float) -> float:
    return 0.5 * start * (1.0 + math.cos(math.pi * min(1.0, max(0.0, progress))))


@dataclass
class _Layer:
    group: tp.Group
    producer: nn.Module
    norm: nn.Module | None
    consumers: list[tuple[nn.Module, int]]  # (module, channel dim of its weight) reading these channels
    width: int
    macs_per_channel: float


class ChexExplorer(Callback):
    """Runs CHEX inside the Trainer; `finalize(model)` removes the masked channels physically."""

    def __init__(self, model: nn.Module, example_inputs: torch.Tensor, macs_ratio: float, ignored: list[nn.Module], config: ChexConfig | None = None):
        self.config = config or ChexConfig()
        self.example = example_inputs
        self.layers = explorable_layers(model, example_inputs, ignored)
        if not self.layers:
            raise ConfigError("CHEX found no explorable channel groups in this model")
        total = count_macs(model, tuple(example_inputs.shape[1:]))
        explorable = sum(layer.width * layer.macs_per_channel for layer in self.layers)
        self.budget = macs_ratio * total - (total - explorable)
        if self.budget <= 0:
            raise ConfigError(f"--macs-ratio {macs_ratio} is below what CHEX can reach: layers it cannot explore already take {(total - explorable) / total:.2f} of the MACs")
        self.masks = [torch.ones(layer.width, dtype=torch.bool) for layer in self.layers]
        self.shadow: list[dict[str, torch.Tensor]] = [{} for _ in self.layers]
        fraction = self.budget / explorable  # start uniform; gamma ranking takes over once training has shaped them
        self.targets = [max(1, int(fraction * layer.width)) for layer in self.layers]
        self.updates = 0
        self.generator = torch.Generator().manual_seed(self.config.seed)
        self.total_steps = 1

    # --- allocation -----------------------------------------------------------------
    def _allocate(self, model: nn.Module) -> list[int]:
        """Per-layer widths from the global |gamma| ranking that fit the MACs budget."""
        candidates = []
        for index, layer in enumerate(self.layers):
            gamma = layer.norm.weight.detach().abs() if layer.norm is not None else layer.producer.weight.detach().flatten(1).norm(dim=1)
            candidates += [(float(g), index) for g in gamma]
        minimum = [max(1, int(math.ceil(self.config.min_width_fraction * layer.width))) for layer in self.layers]
        widths = list(minimum)
        spent = sum(w * layer.macs_per_channel for w, layer in zip(widths, self.layers))
        for _, index in sorted(candidates, reverse=True):
            layer = self.layers[index]
            if widths[index] < layer.width and spent + layer.macs_per_channel <= self.budget:
                widths[index] += 1
                spent += layer.macs_per_channel
        return widths

    # --- masking --------------------------------------------------------------------
    @torch.no_grad()
    def _apply_masks(self) -> None:
        for layer, mask in zip(self.layers, self.masks):
            dead = ~mask
            layer.producer.weight[dead] = 0
            if getattr(layer.producer, "bias", None) is not None:
                layer.producer.bias[dead] = 0
            if layer.norm is not None:
                layer.norm.weight[dead] = 0
                layer.norm.bias[dead] = 0

    @torch.no_grad()
    def _remember(self, index: int, channels: torch.Tensor) -> None:
        layer = self.layers[index]
        for key, tensor in (("w", layer.producer.weight), ("g", getattr(layer.norm, "weight", None)), ("b", getattr(layer.norm, "bias", None))):
            if tensor is None:
                continue
            store = self.shadow[index].setdefault(key, tensor.detach().clone())
            store[channels] = tensor[channels].detach().clone()

    @torch.no_grad()
    def _restore(self, index: int, channels: torch.Tensor) -> None:
        layer = self.layers[index]
        for key, tensor in (("w", layer.producer.weight), ("g", getattr(layer.norm, "weight", None)), ("b", getattr(layer.norm, "bias", None))):
            if tensor is not None and key in self.shadow[index]:
                tensor[channels] = self.shadow[index][key][channels]

    # --- one exploration update -----------------------------------------------------
    @torch.no_grad()
    def explore(self, progress: float) -> None:
        regrow_factor = cosine_regrowth(progress, self.config.regrow_start)
        for index, layer in enumerate(self.layers):
            target = self.targets[index]
            columns = layer.producer.weight.detach().flatten(1).T.float()  # d x n, a column per channel
            active = self.masks[index].clone()
            pruned_count = layer.width - target
            regrow = min(int(round(regrow_factor * pruned_count)), target - 1) if pruned_count > 0 else 0
            keep_count = target - regrow
            scores = leverage_scores(columns, keep_count)
            scores[~active] = -1.0  # pruned channels compete only through regrowth
            keep = torch.zeros(layer.width, dtype=torch.bool)
            keep[torch.topk(scores, keep_count).indices] = True
            newly_pruned = active & ~keep
            self._remember(index, newly_pruned.nonzero().flatten())
            if regrow > 0:
                residual = projection_residuals(columns, keep)
                residual[keep] = 0
                if residual.sum() > 0:
                    count = min(regrow, int((residual > 0).sum()))
                    grown = torch.multinomial(residual / residual.sum(), count, replacement=False, generator=self.generator)
                    keep[grown] = True
                    self._restore(index, grown)
            self.masks[index] = keep
        self._apply_masks()

    # --- Trainer hooks --------------------------------------------------------------
    def on_train_begin(self, trainer) -> None:
        self.total_steps = trainer.total_steps
        self.explore(0.0)

    def on_batch_end(self, trainer, loss: float) -> None:
        self._apply_masks()  # keep masked channels at zero after the optimizer step
        if trainer.step % self.config.update_every == 0:
            self.updates += 1
            if self.updates % self.config.realloc_every == 0:
                self.targets = self._allocate(trainer.model)
            # the last quarter of training only fine-tunes the chosen channels
            progress = trainer.step / max(1, self.total_steps)
            if progress < 0.75:
                self.explore(progress / 0.75)

    def finalize(self, model: nn.Module) -> nn.Module:
        """Physically remove the masked channels (in place) and return the model."""
        self._apply_masks()
        graph = tp.DependencyGraph().build_dependency(model, self.example, customized_pruners=CUSTOM_PRUNERS)
        for layer, mask in zip(self.layers, self.masks):
            dead = (~mask).nonzero().flatten().tolist()
            if dead:
                handler = tp.prune_conv_out_channels if isinstance(layer.producer, nn.Conv2d) else tp.prune_linear_out_channels
                group = graph.get_pruning_group(layer.producer, handler, idxs=dead)
                group.prune()
        return model


def explorable_layers(model: nn.Module, example_inputs: torch.Tensor, ignored: list[nn.Module]) -> list[_Layer]:
    """Single-producer channel groups of `model`, with the MACs one of their channels costs."""
    spatial: dict[nn.Module, int] = {}
    hooks = [
        m.register_forward_hook(lambda mod, _i, out: spatial.__setitem__(mod, out[0, 0].numel()))
        for m in model.modules() if isinstance(m, PRODUCER_TYPES)
    ]
    with torch.no_grad():
        model.eval()(example_inputs)
    for hook in hooks:
        hook.remove()
    graph = tp.DependencyGraph().build_dependency(model, example_inputs, customized_pruners=CUSTOM_PRUNERS)
    layers = []
    for group in graph.get_all_groups(ignored_layers=ignored, root_module_types=[nn.Conv2d, nn.Linear]):
        producers, norms, consumers, blocked = [], [], [], False
        for dep, _ in group:
            module, handler = dep.target.module, dep.handler
            if isinstance(module, ChannelMapShortcut):
                blocked = True
            elif isinstance(module, PRODUCER_TYPES) and handler in (tp.prune_conv_out_channels, tp.prune_linear_out_channels):
                if isinstance(module, nn.Conv2d) and module.groups > 1:
                    consumers.append((module, 0))  # depthwise: its channels follow the producer's
                else:
                    producers.append(module)
            elif isinstance(module, PRODUCER_TYPES):
                consumers.append((module, 1))
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                norms.append(module)
        if blocked or len(producers) != 1 or len(norms) > 1:
            continue
        producer = producers[0]
        if any(m is producer for m in ignored):
            continue
        cost = _producer_cost(producer, spatial) + sum(_consumer_cost(m, spatial) for m, _ in consumers)
        layers.append(_Layer(group, producer, norms[0] if norms else None, consumers, producer.weight.shape[0], cost))
    return layers


def _producer_cost(module: nn.Module, spatial: dict[nn.Module, int]) -> float:
    """MACs of one output channel."""
    return float(module.weight[0].numel() * spatial.get(module, 1))


def _consumer_cost(module: nn.Module, spatial: dict[nn.Module, int]) -> float:
    """MACs that read one input channel."""
    if isinstance(module, nn.Conv2d) and module.groups > 1:
        return float(module.weight[0].numel() * spatial.get(module, 1))
    per_in = module.weight.shape[0] * (module.weight[0, 0].numel() if module.weight.ndim > 2 else 1)
    return float(per_in * spatial.get(module, 1))

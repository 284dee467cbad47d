"""What each method adds around the common pruner: BN sparsity training, PreCropping widths, CHEX.

`method_hooks(config, ...)` returns the pieces `prune_artifact` plugs in; a plain criterion
(random, l1, l2, taylor) needs none of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from slimvision.errors import ConfigError
from slimvision.prune.saliency import dead_layers, layer_densities, snip_saliency, synflow_saliency
from slimvision.train import Callback

RatioDictFn = Callable[[nn.Module, float], dict[nn.Module, float]]


class BNSparsityRegulariser(Callback):
    """Adds the subgradient of `strength * sum|gamma|` to every BN weight (network slimming)."""

    def __init__(self, strength: float = 1e-4):
        self.strength = strength

    def on_after_backward(self, trainer) -> None:
        for module in trainer.model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.weight is not None and module.weight.grad is not None:
                module.weight.grad.add_(torch.sign(module.weight.detach()), alpha=self.strength)


def precrop_ratio_dict(densities: dict[str, float], max_ratio: float) -> RatioDictFn:
    """Per-layer channel removal ratios whose kept widths follow sqrt(layer density).

    A conv's parameters scale with (kept inputs) x (kept outputs); keeping sqrt(d) of both
    sides leaves d of its parameters, so each layer ends near its saliency density. The pruner's
    global `ratio` scales all keeps together, so the budget bisection still applies.
    """
    mean_sqrt = sum(d**0.5 for d in densities.values()) / max(len(densities), 1)

    def ratio_dict(model: nn.Module, ratio: float) -> dict[nn.Module, float]:
        modules = dict(model.named_modules())
        result = {}
        for name, density in densities.items():
            keep = (1.0 - ratio) * (density**0.5) / mean_sqrt
            result[modules[name]] = float(min(max_ratio, max(0.0, 1.0 - keep)))
        return result

    return ratio_dict


@dataclass
class MethodHooks:
    ratio_dict_fn: RatioDictFn | None = None


def method_hooks(config, model: nn.Module, example: torch.Tensor, train_set, val_set, finetune_config) -> MethodHooks:
    """The extra pieces `config.method` needs; trains sparsity into `model` in place for 'bn'."""
    if config.method == "precrop":
        inputs, targets = train_set.images[:128], train_set.labels[:128]
        if config.saliency == "synflow":
            saliency = synflow_saliency(model, tuple(example.shape[1:]))
        else:
            saliency = snip_saliency(model, inputs, targets)
        dead = dead_layers(saliency)
        if dead:
            raise ConfigError(f"precrop: {config.saliency} saliency is zero for every weight of {len(dead)} layer(s) ({', '.join(dead[:3])}"
                              f"{', ...' if len(dead) > 3 else ''}): no gradient reaches them at initialization (a zero-initialised "
                              "residual branch such as zero_init_residual, or an unused module), so their densities cannot be ranked")
        budget_name, fraction = config.budget
        densities = layer_densities(saliency, fraction)
        return MethodHooks(ratio_dict_fn=precrop_ratio_dict(densities, config.max_layer_ratio))
    if config.method == "bn" and config.sparsity_epochs > 0:
        from slimvision.prune.run import FinetuneConfig, finetune

        sparsity = FinetuneConfig(epochs=config.sparsity_epochs, lr=finetune_config.lr, seed=config.seed, channels_last=finetune_config.channels_last)
        finetune(model, train_set, val_set, sparsity, [BNSparsityRegulariser(config.sparsity_strength)])
    return MethodHooks()

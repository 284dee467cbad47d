"""Weight saliencies at initialization (SNIP, SynFlow) and the per-layer densities they imply."""

from __future__ import annotations

import copy

import torch
import torch.nn as nn


def prunable_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    return {n: m.weight for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def snip_saliency(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """|w * dL/dw| per weight (Lee et al. 2019) on one batch."""
    model = copy.deepcopy(model).train()
    weights = prunable_weights(model)
    model.zero_grad()
    nn.functional.cross_entropy(model(inputs), targets).backward()
    return {n: _times_grad(w).detach() for n, w in weights.items()}


def synflow_saliency(model: nn.Module, input_size: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """|w * dR/dw| with R = sum(f(1; |w|)) in float64 and BN in eval mode (Tanaka et al. 2020), data-free."""
    model = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for param in model.parameters():
            param.abs_()
    weights = prunable_weights(model)
    model.zero_grad()
    model(torch.ones(1, *input_size, dtype=torch.float64)).sum().backward()
    return {n: _times_grad(w).float().detach() for n, w in weights.items()}


def _times_grad(weight: nn.Parameter) -> torch.Tensor:
    """|w * dL/dw|; a layer the loss does not reach has no gradient and scores zero."""
    return (weight * weight.grad).abs() if weight.grad is not None else torch.zeros_like(weight)


def dead_layers(saliency: dict[str, torch.Tensor]) -> list[str]:
    """Layers whose every weight scores zero: at initialization no gradient reaches them, so a saliency cannot rank
    them against the others (a zero-initialised residual branch, an unused module)."""
    return [name for name, scores in saliency.items() if not bool(scores.any())]


def layer_densities(saliency: dict[str, torch.Tensor], keep_fraction: float) -> dict[str, float]:
    """Fraction of each layer's weights that survive a global top-`keep_fraction` cut on saliency."""
    scores = torch.cat([s.flatten() for s in saliency.values()])
    keep = max(1, int(round(keep_fraction * scores.numel())))
    threshold = torch.topk(scores, keep, sorted=True).values[-1]
    return {n: float((s >= threshold).float().mean()) for n, s in saliency.items()}

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
    return {n: (w * w.grad).abs().detach() for n, w in weights.items()}


def synflow_saliency(model: nn.Module, input_size: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """|w * dR/dw| with R = sum(f(1; |w|)) in float64 and BN in eval mode (Tanaka et al. 2020), data-free."""
    model = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for param in model.parameters():
            param.abs_()
    weights = prunable_weights(model)
    model.zero_grad()
    model(torch.ones(1, *input_size, dtype=torch.float64)).sum().backward()
    return {n: (w * w.grad).abs().float().detach() for n, w in weights.items()}


def layer_densities(saliency: dict[str, torch.Tensor], keep_fraction: float) -> dict[str, float]:
    """Fraction of each layer's weights that survive a global top-`keep_fraction` cut on saliency."""
    scores = torch.cat([s.flatten() for s in saliency.values()])
    keep = max(1, int(round(keep_fraction * scores.numel())))
    threshold = torch.topk(scores, keep, sorted=True).values[-1]
    return {n: float((s >= threshold).float().mean()) for n, s in saliency.items()}

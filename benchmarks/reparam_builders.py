"""Builders for the model sweep: timm models re-parameterised (branches fused) before pruning.

Re-parameterisable models (RepViT, FastViT) are deployed fused, so that is the form to prune.
A user names such a builder as a file source with its arguments, as the sweep does:
    --model benchmarks/reparam_builders.py:timm_fused --model-kwargs '{"name": "fastvit_t8", "num_classes": 10}'
"""

from __future__ import annotations

import torch.nn as nn


def timm_fused(name: str, num_classes: int = 10, in_chans: int = 3) -> nn.Module:
    """timm model `name` (random init) with its re-parameterisable branches fused, in eval mode."""
    import timm
    from timm.utils.model import reparameterize_model

    model = timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_chans)
    return reparameterize_model(model.eval())

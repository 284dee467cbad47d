"""Record and re-apply layer shapes that differ from a model's default build (e.g. after pruning).

A pruned network is its zoo builder plus a table of changed layer shapes; that table goes into
`arch.json`, so the pruned model rebuilds from JSON alone and its weights load without pickle.
"""

from __future__ import annotations

from typing import Any, Callable

import torch.nn as nn

from slimvision.errors import ArtifactError
from slimvision.models.cifar_resnet import ChannelMapShortcut

ShapeReader = Callable[[nn.Module], dict[str, Any]]
ShapeBuilder = Callable[[nn.Module, dict[str, Any]], nn.Module]


def _conv_shape(m: nn.Conv2d) -> dict[str, Any]:
    return {"in_channels": m.in_channels, "out_channels": m.out_channels, "groups": m.groups}


def _build_conv(old: nn.Conv2d, shape: dict[str, Any]) -> nn.Conv2d:
    return nn.Conv2d(
        shape["in_channels"], shape["out_channels"], old.kernel_size, old.stride, old.padding,
        old.dilation, shape["groups"], old.bias is not None, old.padding_mode,
    )


def _linear_shape(m: nn.Linear) -> dict[str, Any]:
    return {"in_features": m.in_features, "out_features": m.out_features}


def _build_linear(old: nn.Linear, shape: dict[str, Any]) -> nn.Linear:
    return nn.Linear(shape["in_features"], shape["out_features"], old.bias is not None)


def _norm_shape(m: nn.BatchNorm2d) -> dict[str, Any]:
    return {"num_features": m.num_features}


def _build_norm(old: nn.BatchNorm2d, shape: dict[str, Any]) -> nn.BatchNorm2d:
    return type(old)(shape["num_features"], old.eps, old.momentum, old.affine, old.track_running_stats)


def _layernorm_shape(m: nn.LayerNorm) -> dict[str, Any]:
    return {"normalized_shape": list(m.normalized_shape)}


def _build_layernorm(old: nn.LayerNorm, shape: dict[str, Any]) -> nn.LayerNorm:
    return nn.LayerNorm(shape["normalized_shape"], old.eps, old.elementwise_affine)


def _shortcut_shape(m: ChannelMapShortcut) -> dict[str, Any]:
    return {"in_channels": m.in_channels, "out_channels": m.out_channels}


def _build_shortcut(old: ChannelMapShortcut, shape: dict[str, Any]) -> ChannelMapShortcut:
    # The channel map itself is a buffer, restored with the weights.
    new = ChannelMapShortcut(shape["in_channels"], shape["in_channels"], old.stride)
    new.channel_map = old.channel_map.new_zeros(shape["out_channels"])
    return new


SHAPE_HANDLERS: dict[type, tuple[ShapeReader, ShapeBuilder]] = {
    nn.Conv2d: (_conv_shape, _build_conv),
    nn.Linear: (_linear_shape, _build_linear),
    nn.BatchNorm2d: (_norm_shape, _build_norm),
    nn.BatchNorm1d: (_norm_shape, _build_norm),
    nn.LayerNorm: (_layernorm_shape, _build_layernorm),
    ChannelMapShortcut: (_shortcut_shape, _build_shortcut),
}


def layer_shapes(model: nn.Module) -> dict[str, dict[str, Any]]:
    """{module name: shape dict} for every module whose shape we know how to record."""
    shapes = {}
    for name, module in model.named_modules():
        handler = SHAPE_HANDLERS.get(type(module))
        if handler:
            shapes[name] = {"type": type(module).__name__, **handler[0](module)}
    return shapes


def shape_changes(reference: nn.Module, model: nn.Module) -> dict[str, dict[str, Any]]:
    """Shapes in `model` that differ from the freshly built `reference` of the same architecture."""
    before = layer_shapes(reference)
    return {name: shape for name, shape in layer_shapes(model).items() if before.get(name) != shape}


def apply_shape_changes(model: nn.Module, changes: dict[str, dict[str, Any]]) -> nn.Module:
    """Replace the named layers of `model` with freshly built ones of the recorded shapes (in place)."""
    modules = dict(model.named_modules())
    for name, shape in changes.items():
        old = modules.get(name)
        if old is None:
            raise ArtifactError(f"arch spec names layer {name!r}, which the model does not have")
        handler = SHAPE_HANDLERS.get(type(old))
        if handler is None or shape.get("type") != type(old).__name__:
            raise ArtifactError(f"arch spec layer {name!r}: cannot rebuild a {type(old).__name__} as {shape.get('type')}")
        new = handler[1](old, shape)
        parent_name, _, attr = name.rpartition(".")
        setattr(modules[parent_name] if parent_name else model, attr, new)
    return model

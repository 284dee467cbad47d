"""Record and re-apply the shapes that differ from a model's default build (e.g. after pruning).

A pruned network is its builder plus a table of what changed; that table goes into `arch.json`,
so the pruned model rebuilds from JSON alone and its weights load without pickle.

The table is generic, so it covers any module type — subclasses of Conv/Linear/norm layers
(timm's BatchNormAct2d), modules that hold a bare parameter (LayerScale's gamma, a ViT's
cls_token and pos_embed), attention blocks: for every module it records

- `tensors`: the shape of each of its own parameters and buffers that changed, and
- `attrs`: each plain attribute (number, flag, string, tuple/list of those) whose value changed —
  channel counts, `num_features`, `normalized_shape`, `num_heads`, `head_dim`, whatever a pruner
  rewrote.

Rebuilding swaps in tensors of the recorded shapes (sliced from the fresh build, so a model
rebuilt for training from scratch keeps its initialisation scheme) and sets the attributes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from slimvision.errors import ArtifactError

PLAIN_TYPES = (bool, int, float, str)


def _plain(value: Any) -> bool:
    """True for values that JSON carries exactly: numbers, flags, strings and tuples/lists of them."""
    if isinstance(value, PLAIN_TYPES) or value is None:
        return True
    return isinstance(value, (tuple, list)) and all(isinstance(v, PLAIN_TYPES) for v in value)


def _own_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    tensors = {n: p for n, p in module.named_parameters(recurse=False)}
    tensors.update({n: b for n, b in module.named_buffers(recurse=False) if b is not None})
    return tensors


def _attrs(module: nn.Module) -> dict[str, Any]:
    return {k: v for k, v in vars(module).items() if not k.startswith("_") and k != "training" and _plain(v)}


def _as_json(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def shape_changes(reference: nn.Module, model: nn.Module) -> dict[str, dict[str, Any]]:
    """{module name: {type, tensors, attrs}} for each module of `model` that differs from `reference` in shape or attributes."""
    reference_modules = dict(reference.named_modules())
    changes: dict[str, dict[str, Any]] = {}
    for name, module in model.named_modules():
        before = reference_modules.get(name)
        if before is None or type(before) is not type(module):
            raise ArtifactError(f"layer {name!r} ({type(module).__name__}) is not in the default build; cannot record it")
        old_tensors = _own_tensors(before)
        tensors = {
            key: list(tensor.shape) for key, tensor in _own_tensors(module).items()
            if key in old_tensors and tuple(old_tensors[key].shape) != tuple(tensor.shape)
        }
        old_attrs = _attrs(before)
        attrs = {key: _as_json(value) for key, value in _attrs(module).items() if key in old_attrs and old_attrs[key] != value}
        if tensors or attrs:
            changes[name] = {"type": type(module).__name__, "tensors": tensors, "attrs": attrs}
    return changes


def _resized(tensor: torch.Tensor, shape: list[int]) -> torch.Tensor:
    """`tensor` cut (or zero-padded) to `shape`: keeps the fresh build's initial values where they fit."""
    if len(shape) != tensor.dim():
        return torch.zeros(shape, dtype=tensor.dtype)
    out = torch.zeros(shape, dtype=tensor.dtype)
    overlap = tuple(slice(0, min(a, b)) for a, b in zip(shape, tensor.shape))
    out[overlap] = tensor.detach()[overlap]
    return out


def _apply_one(module: nn.Module, name: str, change: dict[str, Any]) -> None:
    own = _own_tensors(module)
    for key, shape in change.get("tensors", {}).items():
        if key not in own:
            raise ArtifactError(f"arch spec layer {name!r} records tensor {key!r}, which a {type(module).__name__} does not have")
        old = own[key]
        new = _resized(old, [int(s) for s in shape])
        if isinstance(old, nn.Parameter):
            setattr(module, key, nn.Parameter(new, requires_grad=old.requires_grad))
        else:
            module._buffers[key] = new
    current = vars(module)
    for key, value in change.get("attrs", {}).items():
        if key not in current:
            raise ArtifactError(f"arch spec layer {name!r} records attribute {key!r}, which a {type(module).__name__} does not have")
        setattr(module, key, tuple(value) if isinstance(current[key], tuple) else value)


def apply_shape_changes(model: nn.Module, changes: dict[str, dict[str, Any]]) -> nn.Module:
    """Give the named layers of `model` the recorded tensor shapes and attributes (in place)."""
    modules = dict(model.named_modules())
    for name, change in changes.items():
        module = modules.get(name)
        if module is None:
            raise ArtifactError(f"arch spec names layer {name!r}, which the model does not have")
        if change.get("type") != type(module).__name__:
            raise ArtifactError(f"arch spec layer {name!r}: cannot rebuild a {type(module).__name__} as {change.get('type')}")
        if "tensors" in change or "attrs" in change:
            _apply_one(module, name, change)
        else:
            _apply_one(module, name, _from_legacy_entry(module, change))
    return model


# Specs written before the generic table (format version 1 had per-type entries such as
# {"type": "Conv2d", "in_channels": 8, "out_channels": 16, "groups": 1}); still read.
def _from_legacy_entry(module: nn.Module, entry: dict[str, Any]) -> dict[str, Any]:
    attrs = {k: v for k, v in entry.items() if k != "type"}
    if isinstance(module, nn.modules.conv._ConvNd):
        per_group = attrs["in_channels"] // attrs["groups"]
        tensors = {"weight": [attrs["out_channels"], per_group, *module.kernel_size]}
        if module.bias is not None:
            tensors["bias"] = [attrs["out_channels"]]
    elif isinstance(module, nn.Linear):
        tensors = {"weight": [attrs["out_features"], attrs["in_features"]]}
        if module.bias is not None:
            tensors["bias"] = [attrs["out_features"]]
    elif isinstance(module, nn.LayerNorm):
        tensors = {k: list(attrs["normalized_shape"]) for k in ("weight", "bias") if getattr(module, k, None) is not None}
    elif "num_features" in attrs:
        tensors = {k: [attrs["num_features"]] for k in _own_tensors(module) if k != "num_batches_tracked"}
    elif "out_channels" in attrs and "channel_map" in _own_tensors(module):  # the CIFAR option-A shortcut
        tensors = {"channel_map": [attrs["out_channels"]]}
    else:
        raise ArtifactError(f"arch spec layer {type(module).__name__}: unknown legacy shape entry {sorted(entry)}")
    return {"type": entry["type"], "tensors": tensors, "attrs": attrs}

"""The model registry: `@register_model` on a builder, `create_model(name, **kw)` to build."""

from __future__ import annotations

from typing import Any, Callable

import torch.nn as nn

from slimvision.errors import ConfigError
from slimvision.registry import Registry

# NAS spaces and supernets sit above the zoo and register their nas_* networks when imported.
MODELS: Registry[Callable[..., nn.Module]] = Registry("model", plugins=("slimvision.nas.spaces", "slimvision.nas.supernet"))


def register_model(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a builder under its function name; a second builder with the same name is an error."""
    return MODELS.register()(builder)


def create_model(name: str, num_classes: int = 10, in_chans: int = 3, **kwargs: Any) -> nn.Module:
    """Build zoo model `name`; the call's arguments are its JSON arch spec (see `slimvision.io`)."""
    builder = MODELS.get(name)
    try:
        return builder(num_classes=num_classes, in_chans=in_chans, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"model {name!r}: bad arguments {kwargs} ({exc})") from None


def list_models() -> list[str]:
    return MODELS.names()

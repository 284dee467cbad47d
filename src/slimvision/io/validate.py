"""Checks an artifact must pass before it is trusted: arch.json and meta.json against a schema, weights by dtype and finiteness.

Every error names the file and the field or tensor that is wrong. Unknown extra fields are
allowed (newer writers may add some); known fields must have the right type and range.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Optional

import torch
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError

from slimvision.errors import ArtifactError

ALLOW_NONFINITE_ENV = "SLIMVISION_ALLOW_NONFINITE"
Number = StrictInt | StrictFloat


class _Open(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class ArchKwargs(_Open):
    num_classes: Optional[StrictInt] = Field(default=None, ge=1)
    in_chans: Optional[StrictInt] = Field(default=None, ge=1)


class ArchFile(_Open):
    """The fields of arch.json that loading relies on."""

    format: Optional[str] = None  # present and equal to "slimvision-arch": checked by ArchSpec.from_dict, with its message
    version: Optional[StrictInt] = None
    model: str = Field(min_length=1)
    kwargs: ArchKwargs = Field(default_factory=ArchKwargs)
    shapes: dict[str, dict[str, Any]] = Field(default_factory=dict)


class DataFields(_Open):
    """The data spec recorded in meta.json: what preprocessing and input size the model needs."""

    name: str
    num_classes: StrictInt = Field(ge=1)
    in_chans: StrictInt = Field(ge=1)
    image_size: StrictInt = Field(ge=1)
    mean: list[Number]
    std: list[Number]
    options: dict[str, Any] = Field(default_factory=dict)


class MetaFile(_Open):
    """The fields of meta.json that loading and evaluation rely on."""

    data: Optional[DataFields] = None
    metrics: Optional[dict[str, Any]] = None
    parent: Optional[str] = None


def _validate(schema: type[BaseModel], data: Any, source: str) -> None:
    try:
        schema.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        raise ArtifactError(f"{source}: field {where!r}: {error['msg']}") from None


def validate_arch(data: Any, source: str) -> None:
    """Refuse an arch.json whose known fields have the wrong type or range (names the file and field)."""
    _validate(ArchFile, data, source)


def validate_meta(data: Any, source: str) -> None:
    """Refuse a meta.json whose data spec or known fields are malformed (image_size >= 1, ...)."""
    _validate(MetaFile, data, source)
    std = ((data.get("data") or {}).get("std")) or []
    if any(value <= 0 for value in std):
        raise ArtifactError(f"{source}: field 'data.std': every value must be > 0, got {std}")


def check_dtypes(expected: dict[str, torch.Tensor], state: dict[str, Any], source: str) -> None:
    """Refuse weights whose kind (float / integer / bool) differs from what the architecture holds.

    A float tensor relabelled as int32 has the same size and would be cast silently by
    load_state_dict into garbage; widening or narrowing within floats is a real conversion and allowed.
    """
    for key, tensor in state.items():
        if not torch.is_tensor(tensor):
            raise ArtifactError(f"{source}: {key} is a {type(tensor).__name__}, not a tensor")
        own = expected.get(key)
        if own is None:
            continue
        kind = (tensor.is_floating_point(), tensor.dtype == torch.bool, tensor.is_complex())
        if kind != (own.is_floating_point(), own.dtype == torch.bool, own.is_complex()):
            raise ArtifactError(f"{source}: {key} is stored as {str(tensor.dtype).replace('torch.', '')}, the architecture expects {str(own.dtype).replace('torch.', '')}")


def check_finite(state: dict[str, torch.Tensor], source: str, allow_nonfinite: bool | None = None) -> None:
    """Refuse weights holding NaN or Inf unless allowed (argument, or SLIMVISION_ALLOW_NONFINITE=1), then only warn."""
    if allow_nonfinite is None:
        allow_nonfinite = os.environ.get(ALLOW_NONFINITE_ENV, "") not in ("", "0")
    for key, tensor in state.items():
        if tensor.is_floating_point() or tensor.is_complex():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                message = f"{source}: {key} holds {bad} NaN/Inf values of {tensor.numel()}"
                if not allow_nonfinite:
                    raise ArtifactError(f"{message}; set {ALLOW_NONFINITE_ENV}=1 to load it anyway")
                warnings.warn(message, stacklevel=2)

"""Turn a CLI model argument (zoo name or artifact directory) into a module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch.nn as nn

from slimvision.errors import ArtifactError
from slimvision.io.artifact import ArchSpec, is_artifact_dir, load_artifact
from slimvision.models import MODELS


def resolve_model(name_or_dir: str, **create_kwargs: Any) -> tuple[nn.Module, ArchSpec, dict[str, Any]]:
    """(module, arch spec, meta) for a saved model directory, or a fresh zoo model built with `create_kwargs`."""
    if is_artifact_dir(name_or_dir):
        artifact = load_artifact(name_or_dir)
        return artifact.model, artifact.arch, artifact.meta
    if name_or_dir in MODELS.names():
        arch = ArchSpec(name_or_dir, {k: v for k, v in create_kwargs.items() if v is not None})
        return arch.build(), arch, {}
    if Path(name_or_dir).exists():
        raise ArtifactError(f"{name_or_dir}: not a model directory (no arch.json)")
    raise ArtifactError(f"{name_or_dir!r} is neither a model directory nor a zoo model; known models: {', '.join(MODELS.names())}")

"""Turn any model source (artifact directory, zoo name, builder, timm:/torchvision: name) into a module.

This is the one place every verb goes through to get a model: `slimvision.models.sources` parses
and builds, this module adds artifact directories and user weights (tensors only, never pickle).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch.nn as nn

from slimvision.errors import ArtifactError, ConfigError
from slimvision.io.artifact import META_FILE, ArchSpec, is_artifact_dir, load_artifact, load_state_file, load_weights_into, read_json
from slimvision.models import MODELS
from slimvision.models.sources import TIMM, TORCHVISION, ZOO, ModelSource, check_json_kwargs, import_builder, parse_model_source

WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
# Data-derived defaults a builder receives when the user did not set them: our zoo and timm take
# both, torchvision only the class count; a user's builder those of the two its signature names.
DATA_KEYS = ("num_classes", "in_chans")
DATA_DEFAULTS = {ZOO: DATA_KEYS, TIMM: DATA_KEYS, TORCHVISION: ("num_classes",)}


def resolve_model(source: str | Path | ModelSource, **data_defaults: Any) -> tuple[nn.Module, ArchSpec, dict[str, Any]]:
    """(module, arch spec, meta) for a model source; `data_defaults` (num_classes, in_chans) fill builder kwargs the user left out.

    An artifact directory gives its saved model and meta; any other source gives a freshly built
    module (with `source.weights` loaded into it, if given) and an empty meta.
    """
    source = source if isinstance(source, ModelSource) else ModelSource(str(source))
    if is_artifact_dir(source.spec):
        if source.kwargs or source.weights:
            raise ConfigError(f"{source.spec} is a saved model directory: --model-kwargs and --weights apply only to a builder")
        artifact = load_artifact(source.spec)
        return artifact.model, artifact.arch, artifact.meta
    arch = source_arch(source, **data_defaults)
    model = arch.build()
    if source.weights:
        load_user_weights(model, source.weights)
    return model, arch, {}


def source_meta(source: str | Path | ModelSource) -> dict[str, Any]:
    """The recorded meta.json of an artifact-directory source ({} for any other source), without building the model."""
    spec = source.spec if isinstance(source, ModelSource) else str(source)
    if not is_artifact_dir(spec):
        source_arch(source)  # names a bad source before any data is loaded for it
        return {}
    if not Path(spec, META_FILE).is_file():
        return {}
    return read_json(Path(spec, META_FILE))


def source_arch(source: str | ModelSource, **data_defaults: Any) -> ArchSpec:
    """The arch spec (kind, target, kwargs) a non-directory model source builds from."""
    source = source if isinstance(source, ModelSource) else ModelSource(str(source))
    kind, target = parse_model_source(source.spec)
    if kind == ZOO:
        _check_zoo_name(source.spec)
    kwargs = dict(check_json_kwargs(source.kwargs))
    given = {key: value for key, value in data_defaults.items() if value is not None and key not in kwargs}
    if given:
        for key in _data_keys(kind, target):
            if key in given:
                kwargs[key] = given[key]
    return ArchSpec(target, kwargs, source=kind)


def _data_keys(kind: str, target: str) -> tuple[str, ...]:
    """The data defaults a builder takes: fixed per library; for a user's builder, those its signature names.

    A builder that takes only **kwargs gets none (it may pass them on to something that rejects them).
    """
    if kind in DATA_DEFAULTS:
        return DATA_DEFAULTS[kind]
    try:
        parameters = inspect.signature(import_builder(kind, target)).parameters
    except (TypeError, ValueError):  # builtins and some C callables have no signature
        return ()
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(key for key in DATA_KEYS if key in parameters and parameters[key].kind in named)


def load_user_weights(model: nn.Module, weights: str | Path) -> None:
    """Load a user's .pt/.pth (weights_only) or .safetensors file into `model`, naming mismatched tensors."""
    path = Path(weights).expanduser()
    if path.suffix not in WEIGHT_SUFFIXES:
        raise ConfigError(f"--weights {path}: expected a {' / '.join(WEIGHT_SUFFIXES)} file of tensors")
    state = load_state_file(path)
    if isinstance(state.get("model"), dict):  # training checkpoints often nest the weights under "model"
        state = state["model"]
    load_weights_into(model, state, str(path))


def _check_zoo_name(name: str) -> None:
    if name in MODELS.names():
        return
    path = Path(name)
    if path.suffix == ".py":
        raise ConfigError(f"{name}: name the builder function in the file, e.g. {name}:build")
    if path.suffix in WEIGHT_SUFFIXES:
        raise ConfigError(f"{name}: a weights file needs a builder for its architecture, e.g. --model models.py:build --weights {name}")
    if path.exists():
        raise ArtifactError(f"{name}: not a model directory (no arch.json)")
    if "/" in name or "\\" in name:
        raise ArtifactError(f"model directory not found: {name}")
    raise ArtifactError(
        f"{name!r} is neither a model directory nor a zoo model (nor module:function, file.py:function, timm:NAME, torchvision:NAME); "
        f"known models: {', '.join(MODELS.names())}"
    )

"""Model artifacts: a directory with `model.safetensors` + `arch.json` + `meta.json`.

`arch.json` is enough to rebuild the module without pickle: the zoo name, its keyword arguments,
and the layer shapes that differ from the default build (pruned widths). `meta.json` holds the
data spec, measured metrics with their conditions, versions and the parent artifact.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from slimvision import __version__
from slimvision.errors import ArtifactError
from slimvision.io.atomic import atomic_directory, atomic_write_bytes, atomic_write_json
from slimvision.io.validate import check_dtypes, check_finite, validate_arch, validate_meta
from slimvision.models import create_model
from slimvision.models.surgery import apply_shape_changes, shape_changes

ARCH_FORMAT = "slimvision-arch"
ARCH_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
ARCH_FILE = "arch.json"
META_FILE = "meta.json"


@dataclass
class ArchSpec:
    """Zoo model name + builder kwargs + layer shapes changed from the default build."""

    model: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    shapes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def build(self) -> nn.Module:
        """A freshly initialised module of this architecture."""
        module = create_model(self.model, **self.kwargs)
        if self.shapes:
            apply_shape_changes(module, self.shapes)
        return module

    def with_shapes_of(self, model: nn.Module) -> "ArchSpec":
        """This spec updated with the layer shapes `model` has now (after pruning, say)."""
        reference = create_model(self.model, **self.kwargs)
        return ArchSpec(self.model, dict(self.kwargs), shape_changes(reference, model))

    def to_dict(self) -> dict[str, Any]:
        return {"format": ARCH_FORMAT, "version": ARCH_VERSION, "model": self.model, "kwargs": self.kwargs, "shapes": self.shapes}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "arch spec") -> "ArchSpec":
        if not isinstance(data, dict) or data.get("format") != ARCH_FORMAT:
            raise ArtifactError(f"{source}: not a slimvision arch spec (missing format {ARCH_FORMAT!r})")
        if data.get("version") != ARCH_VERSION:
            raise ArtifactError(f"{source}: arch spec version {data.get('version')} is not supported (expected {ARCH_VERSION})")
        return cls(data["model"], dict(data.get("kwargs", {})), dict(data.get("shapes", {})))


@dataclass
class Artifact:
    """A loaded model directory."""

    model: nn.Module
    arch: ArchSpec
    meta: dict[str, Any]
    path: Path

    @property
    def data_spec(self) -> dict[str, Any] | None:
        return self.meta.get("data")


def environment_record() -> dict[str, str]:
    return {
        "slimvision": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def save_artifact(model: nn.Module, arch: ArchSpec, out_dir: str | Path, meta: dict[str, Any] | None = None) -> Path:
    """Write the model directory atomically: an existing `out_dir` is replaced only on success."""
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as tmp:
        write_artifact_files(model, arch, tmp, meta)
    return out_dir


def write_artifact_files(model: nn.Module, arch: ArchSpec, out_dir: str | Path, meta: dict[str, Any] | None = None) -> None:
    """Write the three artifact files into an existing directory, each file atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    full_meta = {"format": "slimvision-artifact", "version": 1, **(meta or {}), "environment": environment_record()}
    save_safetensors_atomic(state, out_dir / WEIGHTS_FILE)
    atomic_write_json(out_dir / ARCH_FILE, arch.to_dict())
    atomic_write_json(out_dir / META_FILE, full_meta)


def save_safetensors_atomic(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """safetensors.save_file, written to a temp name then renamed."""
    atomic_write_bytes(path, save(tensors, metadata))


def read_json(path: Path) -> dict[str, Any]:
    """Parse a JSON file, naming it in the error if it is missing or malformed."""
    if not path.is_file():
        raise ArtifactError(f"missing file: {path}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file (or a .pt read with weights_only=True), with clear errors."""
    if not path.is_file():
        raise ArtifactError(f"missing file: {path}")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (SafetensorError, RuntimeError, OSError, ValueError, EOFError) as exc:
        raise ArtifactError(f"{path}: corrupt or truncated weights file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    except Exception as exc:  # weights_only refuses pickled objects with an UnpicklingError
        raise ArtifactError(f"{path}: refused to load ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ArtifactError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


def load_weights_into(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """load_state_dict(strict) with an error that names the mismatching keys and shapes."""
    own = model.state_dict()
    check_dtypes(own, state, source)
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ArtifactError(f"{source}: weights do not match the architecture (missing {missing[:5]}, unexpected {unexpected[:5]})")
    for key, tensor in state.items():
        if own[key].shape != tensor.shape:
            raise ArtifactError(f"{source}: {key} has shape {tuple(tensor.shape)}, architecture expects {tuple(own[key].shape)}")
    model.load_state_dict(state, strict=True)


def load_artifact(path: str | Path, allow_nonfinite: bool | None = None) -> Artifact:
    """Rebuild and load the model in directory `path` (schema, dtype and NaN/Inf checks: see `slimvision.io.validate`)."""
    path = Path(path)
    if not path.is_dir():
        raise ArtifactError(f"model directory not found: {path}")
    arch_data = read_json(path / ARCH_FILE)
    validate_arch(arch_data, str(path / ARCH_FILE))
    arch = ArchSpec.from_dict(arch_data, str(path / ARCH_FILE))
    meta = read_json(path / META_FILE) if (path / META_FILE).exists() else {}
    validate_meta(meta, str(path / META_FILE))
    try:
        model = arch.build()
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, RuntimeError) as exc:
        raise ArtifactError(f"{path / ARCH_FILE}: cannot build {arch.model!r} from it ({type(exc).__name__}: {str(exc)[:200]})") from None
    state = load_state_file(path / WEIGHTS_FILE)
    load_weights_into(model, state, str(path / WEIGHTS_FILE))
    check_finite(state, str(path / WEIGHTS_FILE), allow_nonfinite)
    model.eval()
    return Artifact(model, arch, meta, path)


def is_artifact_dir(path: str | Path) -> bool:
    return Path(path, ARCH_FILE).is_file()

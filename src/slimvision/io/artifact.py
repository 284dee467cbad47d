"""Model artifacts: a directory with `model.safetensors` + `arch.json` + `meta.json`.

`arch.json` is enough to rebuild the module without pickle: the model source (a zoo name, a
`module:function` or `/abs/file.py:function` builder, `timm:`/`torchvision:` names), its keyword
arguments, and the layer shapes that differ from the default build (pruned widths). `meta.json`
holds the data spec, measured metrics with their conditions, versions and the parent artifact.
Before anything is written, the module is rebuilt from exactly what would be written, so a saved
directory always reloads.
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
from slimvision.errors import ArtifactError, SlimvisionError
from slimvision.io.atomic import atomic_directory, atomic_write_bytes, atomic_write_json
from slimvision.io.validate import check_dtypes, check_finite, validate_arch, validate_meta
from slimvision.models.sources import SOURCE_KINDS, ZOO, build_model, check_json_kwargs
from slimvision.models.surgery import apply_shape_changes, shape_changes

ARCH_FORMAT = "slimvision-arch"
ARCH_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
ARCH_FILE = "arch.json"
META_FILE = "meta.json"


@dataclass
class ArchSpec:
    """Model source (kind + target) + builder kwargs + layer shapes changed from the default build.

    `model` is the source's target: a zoo name, `module:function`, `/abs/path/file.py:function`, or a
    timm / torchvision model name; `source` says which (see `slimvision.models.sources`).
    """

    model: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    shapes: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ZOO

    def build_default(self) -> nn.Module:
        """A freshly initialised module as its builder makes it (recorded shape changes not applied)."""
        return build_model(self.source, self.model, self.kwargs)

    def build(self) -> nn.Module:
        """A freshly initialised module of this architecture."""
        module = self.build_default()
        if self.shapes:
            apply_shape_changes(module, self.shapes)
        return module

    def with_shapes_of(self, model: nn.Module) -> "ArchSpec":
        """This spec updated with the layer shapes `model` has now (after pruning, say)."""
        return ArchSpec(self.model, dict(self.kwargs), shape_changes(self.build_default(), model), self.source)

    def to_dict(self) -> dict[str, Any]:
        check_json_kwargs(self.kwargs, f"builder kwargs of {self.model}")
        return {"format": ARCH_FORMAT, "version": ARCH_VERSION, "source": self.source, "model": self.model, "kwargs": self.kwargs, "shapes": self.shapes}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "arch spec") -> "ArchSpec":
        if not isinstance(data, dict) or data.get("format") != ARCH_FORMAT:
            raise ArtifactError(f"{source}: not a slimvision arch spec (missing format {ARCH_FORMAT!r})")
        if data.get("version") != ARCH_VERSION:
            raise ArtifactError(f"{source}: arch spec version {data.get('version')} is not supported (expected {ARCH_VERSION})")
        kind = data.get("source", ZOO)  # specs written before model sources existed name zoo models
        if kind not in SOURCE_KINDS:
            raise ArtifactError(f"{source}: unknown model source {kind!r} (expected one of {', '.join(SOURCE_KINDS)})")
        return cls(data["model"], dict(data.get("kwargs", {})), dict(data.get("shapes", {})), kind)


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


def save_artifact(
    model: nn.Module, arch: ArchSpec, out_dir: str | Path, meta: dict[str, Any] | None = None, input_size: tuple[int, ...] | None = None
) -> Path:
    """Write the model directory atomically: an existing `out_dir` is replaced only on success.

    The module is first rebuilt from the arch spec and weights about to be written (see
    `check_rebuilds`); `input_size` (C, H, W) defaults to the data recorded in `meta`.
    """
    out_dir = Path(out_dir)
    with atomic_directory(out_dir) as tmp:
        write_artifact_files(model, arch, tmp, meta, input_size, label=str(out_dir))
    return out_dir


def write_artifact_files(
    model: nn.Module, arch: ArchSpec, out_dir: str | Path, meta: dict[str, Any] | None = None,
    input_size: tuple[int, ...] | None = None, label: str | None = None,
) -> None:
    """Check that the artifact rebuilds, then write its three files into a directory, each file atomically."""
    out_dir = Path(out_dir)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    arch_dict = arch.to_dict()
    # through JSON and back, so the check sees exactly what load_artifact will (tuples become lists)
    check_rebuilds(ArchSpec.from_dict(json.loads(json.dumps(arch_dict))), state, input_size or recorded_input_size(meta), label or str(out_dir))
    full_meta = {"format": "slimvision-artifact", "version": 1, **(meta or {}), "environment": environment_record()}
    validate_meta(json.loads(json.dumps(full_meta)), f"{label or out_dir}: meta.json")  # what load_artifact will check
    out_dir.mkdir(parents=True, exist_ok=True)
    save_safetensors_atomic(state, out_dir / WEIGHTS_FILE)
    atomic_write_json(out_dir / ARCH_FILE, arch_dict)
    atomic_write_json(out_dir / META_FILE, full_meta)


def recorded_input_size(meta: dict[str, Any] | None) -> tuple[int, ...] | None:
    """(C, H, W) of the data spec in `meta`, if it has one."""
    data = (meta or {}).get("data")
    if not isinstance(data, dict) or "in_chans" not in data or "image_size" not in data:
        return None
    return (int(data["in_chans"]), int(data["image_size"]), int(data["image_size"]))


def check_rebuilds(arch: ArchSpec, state: dict[str, torch.Tensor], input_size: tuple[int, ...] | None, label: str) -> None:
    """Rebuild from `arch`, check every tensor of `state` fits it, and run one forward pass on `input_size`.

    This is what `load_artifact` will do, done before writing: a shape that pruning changed but
    the arch spec did not record is named here instead of in a directory that no longer reloads.
    """
    try:
        with torch.random.fork_rng(devices=[]):  # building initialises weights: leave the caller's random stream as it was
            rebuilt = arch.build()
    except SlimvisionError as exc:
        raise ArtifactError(f"cannot save {label}: its arch spec does not rebuild ({exc})") from None
    expected = rebuilt.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if unexpected:
        raise ArtifactError(f"cannot save {label}: the model has tensor {unexpected[0]!r}, which the arch spec does not rebuild "
                            f"({len(unexpected)} such tensors)")
    if missing:
        raise ArtifactError(f"cannot save {label}: the arch spec rebuilds tensor {missing[0]!r}, which the model does not have "
                            f"({len(missing)} such tensors)")
    for key, tensor in state.items():
        if expected[key].shape != tensor.shape:
            raise ArtifactError(f"cannot save {label}: {key} has shape {tuple(tensor.shape)}, but the arch spec rebuilds it "
                                f"as {tuple(expected[key].shape)} (a changed shape was not recorded)")
    rebuilt.load_state_dict(state, strict=True)
    if input_size is None:
        return
    example = torch.randn(1, *input_size, generator=torch.Generator().manual_seed(0))
    try:
        with torch.no_grad():
            rebuilt.eval()(example)
    except Exception as exc:  # any failure here means the saved directory would not run
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ArtifactError(f"cannot save {label}: the model rebuilt from its arch spec fails on input {tuple(example.shape)} "
                            f"({type(exc).__name__}: {first})") from None


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

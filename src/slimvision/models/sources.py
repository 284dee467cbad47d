"""Model sources: every way a model can be named, and the one function that builds it.

A source is what `--model`, `--teacher` and `--student` take (an artifact directory is handled one
level up, in `slimvision.io.resolve`, because loading one needs the weights too):

    resnet20                     a zoo model (`slimvision models`)
    mypkg.models:build           any importable callable returning an nn.Module
    path/to/models.py:build      a function in a Python file (recorded with its absolute path)
    timm:resnet18                timm's `create_model`, when timm is installed
    torchvision:resnet18         torchvision's `get_model`, when torchvision is installed

The kind and target go into `arch.json`, so a saved model is rebuilt by importing the same builder.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch.nn as nn

from slimvision.errors import ConfigError

ZOO, CALLABLE, FILE, TIMM, TORCHVISION = "zoo", "callable", "file", "timm", "torchvision"
SOURCE_KINDS = (ZOO, CALLABLE, FILE, TIMM, TORCHVISION)
LIBRARY_KINDS = (TIMM, TORCHVISION)
INSTALL_HINT = "pip install 'slimvision[models]' (timm and torchvision must match the installed torch)"
# Packages whose callables are never model builders but can run commands, load pickles or fetch code.
REFUSED_PACKAGES = frozenset(sys.stdlib_module_names) | {"torch", "numpy", "pandas", "joblib", "dill", "cloudpickle", "slimvision"}
# Keyword arguments that would make a library download pretrained weights at build time.
DOWNLOAD_KWARGS = ("pretrained", "weights", "pretrained_cfg", "pretrained_cfg_overlay")


@dataclass(frozen=True)
class ModelSource:
    """What the user named (`spec`), the builder's keyword arguments and an optional weights file."""

    spec: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None

    def __str__(self) -> str:
        return self.spec


def parse_model_source(spec: str) -> tuple[str, str]:
    """(kind, target) for a source string; a file target is made absolute. Zoo names are not checked here."""
    spec = str(spec).strip()
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in LIBRARY_KINDS:
        if not rest:
            raise ConfigError(f"model source {spec!r}: name the {prefix} model after the colon, e.g. {prefix}:resnet18")
        return prefix, rest
    module, sep, function = spec.rpartition(":")
    if not sep:
        return ZOO, spec
    if not module or not function:
        raise ConfigError(f"model source {spec!r}: expected module:function or path/to/file.py:function")
    if module.endswith(".py"):
        return FILE, f"{Path(module).expanduser().resolve()}:{function}"
    if not all(part.isidentifier() for part in module.split(".")):
        raise ConfigError(f"model source {spec!r}: {module!r} is neither an importable module name nor a .py file")
    return CALLABLE, spec


def check_json_kwargs(kwargs: dict[str, Any], what: str = "model kwargs") -> dict[str, Any]:
    """`kwargs` itself if it is a JSON object (they are recorded in arch.json), else a ConfigError."""
    if not isinstance(kwargs, dict):
        raise ConfigError(f"{what} must be a JSON object such as '{{\"num_classes\": 10}}', got {type(kwargs).__name__}")
    try:
        json.dumps(kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what} must hold only JSON values, since arch.json records them ({exc})") from None
    return kwargs


def parse_model_kwargs(text: str | None) -> dict[str, Any]:
    """The `--model-kwargs` JSON object as a dict ({} when not given)."""
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--model-kwargs is not valid JSON ({exc}): {text}") from None
    return check_json_kwargs(value, "--model-kwargs")


def build_model(kind: str, target: str, kwargs: dict[str, Any] | None = None) -> nn.Module:
    """A freshly initialised module from source (`kind`, `target`) called with `kwargs`."""
    kwargs = dict(kwargs or {})
    if kind == ZOO:
        from slimvision.models.registry import create_model

        return create_model(target, **kwargs)
    if kind in LIBRARY_KINDS:
        refused = [k for k in DOWNLOAD_KWARGS if k in kwargs]
        if refused:
            raise ConfigError(f"{kind}:{target}: {refused[0]!r} would download weights; pass a local file with --weights instead")
        library = import_library(kind)
        builder = (lambda **kw: library.create_model(target, pretrained=False, **kw)) if kind == TIMM else (lambda **kw: library.models.get_model(target, weights=None, **kw))
        return _call_builder(builder, f"{kind}:{target}", kwargs)
    if kind in (CALLABLE, FILE):
        return _call_builder(import_builder(kind, target), target, kwargs)
    raise ConfigError(f"unknown model source kind {kind!r}; expected one of {', '.join(SOURCE_KINDS)}")


def import_library(kind: str):
    """The timm or torchvision module, or a one-line error saying how to install it."""
    try:
        return importlib.import_module(kind)
    except ImportError as exc:
        if getattr(exc, "name", None) == kind:
            raise ConfigError(f"{kind}:NAME sources need {kind}, which is not installed: {INSTALL_HINT}") from None
        raise ConfigError(f"{kind} is installed but fails to import ({_first_line(exc)}): {INSTALL_HINT}") from None
    except Exception as exc:  # e.g. torchvision built for another torch: "operator torchvision::nms does not exist"
        raise ConfigError(f"{kind} is installed but fails to import ({_first_line(exc)}): {INSTALL_HINT}") from None


def import_builder(kind: str, target: str) -> Callable[..., Any]:
    """The callable named by a `module:function` or `/abs/file.py:function` target."""
    location, _, attribute = target.rpartition(":")
    if kind == CALLABLE and location.split(".")[0] in REFUSED_PACKAGES:
        # arch.json names the builder, so a crafted one could call e.g. subprocess:run or torch.hub:load on load
        raise ConfigError(f"model source {target}: builders from {location.split('.')[0]!r} are refused; name a function in your own code")
    owner = _import_file(Path(location)) if kind == FILE else _import_module(location)
    value: Any = owner
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise ConfigError(f"{location} has no attribute {attribute!r} (model source {target})")
        value = getattr(value, part)
    if not callable(value):
        raise ConfigError(f"{location}:{attribute} is a {type(value).__name__}, not a function that builds a model")
    return value


def _import_module(name: str):
    try:
        return importlib.import_module(name)
    except Exception as exc:  # any failure while importing user code is reported in one line
        hint = f"; {INSTALL_HINT}" if name.split(".")[0] in LIBRARY_KINDS else ""
        raise ConfigError(f"cannot import module {name!r} for the model builder ({type(exc).__name__}: {_first_line(exc)}){hint}") from None


def _import_file(path: Path):
    """Import a .py file once per process under a stable private name (its classes stay the same objects)."""
    if not path.is_file():
        raise ConfigError(f"model builder file not found: {path}")
    name = f"slimvision_user_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"cannot import model builder file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    # The file may import its neighbours (`from layers import Block`), as it would when run as a script.
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ConfigError(f"importing model builder file {path} failed ({type(exc).__name__}: {_first_line(exc)})") from None
    finally:
        sys.path.remove(str(path.parent))
    return module


def _call_builder(builder: Callable[..., Any], label: str, kwargs: dict[str, Any]) -> nn.Module:
    try:
        model = builder(**kwargs)
    except ConfigError:
        raise
    except Exception as exc:  # a builder can fail in any way; name it and its arguments
        raise ConfigError(f"model builder {label} failed with kwargs {kwargs} ({type(exc).__name__}: {_first_line(exc)})") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model builder {label} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

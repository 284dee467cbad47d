"""Small config helpers shared by the verbs: number parsing and YAML loading with clear errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from slimvision.errors import ConfigError

_SUFFIXES = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


def parse_count(text: str | float | int) -> float:
    """Parse '30M', '1.5G', '250k' or a plain number into a float."""
    if isinstance(text, (int, float)):
        return float(text)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kKmMgGtT]?)\s*", str(text))
    if not match:
        raise ConfigError(f"cannot read {text!r} as a number (examples: 30M, 1.5G, 250k, 1200)")
    return float(match.group(1)) * _SUFFIXES[match.group(2).lower()]


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Load a YAML mapping from `path`, naming the file in any error."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data

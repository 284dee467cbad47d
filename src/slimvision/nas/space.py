"""The search-space interface: a space is named choices, an architecture is a JSON-serialisable dict."""

from __future__ import annotations

import json
import random
from abc import ABC, abstractmethod
from typing import Any

import torch.nn as nn

from slimvision.registry import Registry

Arch = dict[str, Any]


class SearchSpace(ABC):
    """Samples, mutates and instantiates architectures; strategies only talk to this interface."""

    name: str = ""
    model_name: str = ""  # the zoo builder that rebuilds an arch from `model_kwargs(arch)` (for saved artifacts)

    @abstractmethod
    def choices(self) -> dict[str, list[Any]]:
        """{decision name: allowed values}; an arch assigns one value to each decision."""

    @abstractmethod
    def build(self, arch: Arch, num_classes: int = 10, in_chans: int = 3) -> nn.Module:
        """A standalone, freshly initialised module for `arch`."""

    def model_kwargs(self, arch: Arch) -> dict[str, Any]:
        """Arguments of the `model_name` zoo builder that rebuild `arch`."""
        return {"arch": arch}

    def largest(self) -> Arch:
        """Every decision at its last choice (spaces list sizes in increasing order)."""
        return {name: values[-1] for name, values in self.choices().items()}

    def smallest(self) -> Arch:
        return {name: values[0] for name, values in self.choices().items()}

    def sample(self, rng: random.Random) -> Arch:
        return {name: rng.choice(values) for name, values in self.choices().items()}

    def mutate(self, arch: Arch, rng: random.Random, prob: float = 0.2) -> Arch:
        choices = self.choices()
        child = dict(arch)
        for name, values in choices.items():
            if rng.random() < prob:
                child[name] = rng.choice(values)
        return child

    def crossover(self, first: Arch, second: Arch, rng: random.Random) -> Arch:
        return {name: (first if rng.random() < 0.5 else second)[name] for name in self.choices()}

    def encode(self, arch: Arch) -> str:
        """Canonical string of an arch (dictionary keys sorted), usable as a table key."""
        return json.dumps(arch, sort_keys=True, separators=(",", ":"))

    def validate(self, arch: Arch) -> Arch:
        from slimvision.errors import ConfigError

        choices = self.choices()
        for name, values in choices.items():
            if name not in arch:
                raise ConfigError(f"{self.name} arch is missing decision {name!r}")
            if arch[name] not in values:
                raise ConfigError(f"{self.name} arch: {name}={arch[name]!r} is not one of {values}")
        extra = set(arch) - set(choices)
        if extra:
            raise ConfigError(f"{self.name} arch has unknown decisions {sorted(extra)}")
        return arch


SPACES: Registry[type[SearchSpace]] = Registry("search space", plugins=("slimvision.nas.spaces",))

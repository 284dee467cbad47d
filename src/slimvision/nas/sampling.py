"""Subnet samplers for supernet training.

- `uniform`: one random subnet per step (single-path).
- `sandwich`: largest + smallest + N random; the others learn from the largest's predictions
  (in-place distillation, BigNAS/OFA).
- `complexity`: ElasticViT's complexity-aware sampling: MACs buckets; the bucket a step samples
  from moves by at most one step from the previous one, so consecutive subnets have similar
  size and their gradients do not conflict.
- `performance`: complexity-aware plus a memory bank of the best (lowest-loss) subnets seen per
  bucket; with probability `exploit` a step samples a mutation of a banked subnet.
"""

from __future__ import annotations

import bisect
import random
from typing import Any

import numpy as np

from slimvision.errors import ConfigError
from slimvision.nas.space import Arch, SearchSpace

SAMPLERS = ("uniform", "sandwich", "complexity", "performance")


class Sampler:
    """`sample()` -> the subnets for one training step (the first one is the distillation target if `distill`)."""

    distill = False

    def __init__(self, space: SearchSpace, seed: int = 0):
        self.space = space
        self.rng = random.Random(seed)

    def sample(self) -> list[Arch]:
        return [self.space.sample(self.rng)]

    def observe(self, arch: Arch, loss: float) -> None:
        """Feedback after a step (used by the performance-aware sampler)."""

    def state_dict(self) -> dict[str, Any]:
        return {"rng": list(self.rng.getstate()[1]), "rng_pos": self.rng.getstate()[2]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.setstate((3, tuple(state["rng"]), state["rng_pos"]))


class SandwichSampler(Sampler):
    distill = True

    def __init__(self, space: SearchSpace, seed: int = 0, random_subnets: int = 2):
        super().__init__(space, seed)
        self.random_subnets = random_subnets

    def sample(self) -> list[Arch]:
        return [self.space.largest(), self.space.smallest()] + [self.space.sample(self.rng) for _ in range(self.random_subnets)]


class ComplexitySampler(Sampler):
    def __init__(self, space: SearchSpace, seed: int = 0, buckets: int = 8, macs_of=None):
        super().__init__(space, seed)
        self.macs_of = macs_of or space.macs
        probe = random.Random(seed + 1)
        reference = sorted(self.macs_of(space.sample(probe)) for _ in range(1000))
        self.edges = [float(np.quantile(reference, q)) for q in np.linspace(0, 1, buckets + 1)[1:-1]]
        self.buckets = buckets
        self.bucket = buckets // 2

    def bucket_of(self, arch: Arch) -> int:
        return bisect.bisect_right(self.edges, self.macs_of(arch))

    def _next_bucket(self) -> int:
        self.bucket = min(self.buckets - 1, max(0, self.bucket + self.rng.choice((-1, 0, 1))))
        return self.bucket

    def _in_bucket(self, bucket: int, tries: int = 300) -> Arch:
        arch = self.space.sample(self.rng)
        for _ in range(tries):
            if self.bucket_of(arch) == bucket:
                return arch
            arch = self.space.sample(self.rng)
        return arch  # a bucket that random sampling almost never hits: take the last draw

    def sample(self) -> list[Arch]:
        return [self._in_bucket(self._next_bucket())]


class PerformanceSampler(ComplexitySampler):
    def __init__(self, space: SearchSpace, seed: int = 0, buckets: int = 8, bank_size: int = 5, exploit: float = 0.5, macs_of=None):
        super().__init__(space, seed, buckets, macs_of)
        self.bank: dict[int, list[tuple[float, Arch]]] = {b: [] for b in range(buckets)}
        self.bank_size = bank_size
        self.exploit = exploit

    def sample(self) -> list[Arch]:
        bucket = self._next_bucket()
        bank = self.bank[bucket]
        if bank and self.rng.random() < self.exploit:
            parent = self.rng.choice(bank)[1]
            child = self.space.mutate(parent, self.rng, 0.1)
            if self.bucket_of(child) == bucket:
                return [child]
        return [self._in_bucket(bucket)]

    def observe(self, arch: Arch, loss: float) -> None:
        bank = self.bank[self.bucket_of(arch)]
        bank.append((loss, arch))
        bank.sort(key=lambda item: item[0])
        del bank[self.bank_size :]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "bank": {str(k): v for k, v in self.bank.items()}, "bucket": self.bucket}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.bank = {int(k): [(loss, arch) for loss, arch in v] for k, v in state["bank"].items()}
        self.bucket = state["bucket"]


def create_sampler(name: str, space: SearchSpace, seed: int = 0) -> Sampler:
    factories = {"uniform": Sampler, "sandwich": SandwichSampler, "complexity": ComplexitySampler, "performance": PerformanceSampler}
    if name not in factories:
        raise ConfigError(f"unknown sampler {name!r}; use one of {', '.join(SAMPLERS)}")
    return factories[name](space, seed)

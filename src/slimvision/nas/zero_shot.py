"""Zero-shot search: aging evolution over a space, scored by a (zero-cost) evaluator, under a MACs limit."""

from __future__ import annotations

import random
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from slimvision.errors import ConfigError
from slimvision.nas.evaluator import Evaluator
from slimvision.nas.space import Arch, SearchSpace


@dataclass
class ZeroShotResult:
    best_arch: Arch
    best_score: float
    best_macs: int
    n_evaluated: int  # candidates visited (a repeated arch is scored once, from cache)
    n_unique: int  # distinct archs scored
    n_rejected: int  # candidates over the MACs limit (not scored)
    seconds: float
    history: list[dict[str, Any]]


def zero_shot_search(space: SearchSpace, evaluator: Evaluator, n_candidates: int = 5000, max_macs: float | None = None,
                     population: int = 100, tournament: int = 10, seed: int = 0, input_size: tuple[int, int, int] = (1, 8, 8),
                     num_classes: int = 10, progress: bool = False) -> ZeroShotResult:
    """Aging evolution: score `n_candidates` archs within `max_macs` (per image); returns the best found."""
    from rich.progress import Progress

    from slimvision.nas.proxies.measures import conv_linear_macs

    if n_candidates < 1 or population < 2 or tournament < 1:
        raise ConfigError("zero-shot search needs n_candidates >= 1, population >= 2, tournament >= 1")
    rng = random.Random(seed)
    macs_cache: dict[str, int] = {}
    scores: dict[str, float] = {}

    def macs_of(arch: Arch) -> int:
        key = space.encode(arch)
        if key not in macs_cache:
            macs_cache[key] = conv_linear_macs(space.build(arch, num_classes, input_size[0]), input_size)
        return macs_cache[key]

    alive: deque[tuple[Arch, float]] = deque()
    history: list[dict[str, Any]] = []
    rejected = 0
    start = time.perf_counter()
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("zero-shot search", total=n_candidates)
        while len(history) < n_candidates:
            if len(alive) < population:
                candidate = space.sample(rng)
            else:
                parent = max(rng.sample(list(alive), min(tournament, len(alive))), key=lambda item: item[1])[0]
                candidate = space.mutate(parent, rng, prob=1.0 / len(space.choices()))
            if max_macs is not None and macs_of(candidate) > max_macs:
                rejected += 1
                if rejected > 100 * n_candidates:
                    raise ConfigError(f"max_macs={max_macs:g} rejects almost every architecture")
                continue
            key = space.encode(candidate)
            if key not in scores:
                scores[key] = evaluator.score(candidate)
            alive.append((candidate, scores[key]))
            if len(alive) > population:
                alive.popleft()
            history.append({"arch": candidate, "score": scores[key]})
            bar.advance(task)
    best = max(history, key=lambda item: item["score"])
    return ZeroShotResult(best["arch"], best["score"], macs_of(best["arch"]), len(history), len(scores), rejected,
                          time.perf_counter() - start, history)

"""CPU/GPU latency: warm-up, then the median and p90 of timed repeats with a pinned thread count."""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

import numpy as np
import torch


@dataclass
class LatencyStats:
    batch_size: int
    median_ms: float
    p90_ms: float
    repeats: int
    warmup: int

    def to_dict(self) -> dict:
        return asdict(self)


@contextlib.contextmanager
def pinned_threads(threads: int | None) -> Iterator[int]:
    """Set torch's intra-op thread count for the block; yields the count in force."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)


def time_callable(run: Callable[[], object], warmup: int = 5, repeats: int = 20, sync: Callable[[], None] | None = None) -> tuple[float, float]:
    """(median_ms, p90_ms) of `run()` over `repeats` calls after `warmup` untimed calls."""
    for _ in range(warmup):
        run()
    if sync:
        sync()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        if sync:
            sync()
        samples.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(samples)), float(np.percentile(samples, 90))


def measure_latency(
    model: torch.nn.Module, input_size: tuple[int, ...], batch_size: int = 1, warmup: int = 5, repeats: int = 20
) -> LatencyStats:
    """Latency of model(x) in eval mode under no_grad for a (batch_size, *input_size) input."""
    device = next(model.parameters()).device if any(True for _ in model.parameters()) else torch.device("cpu")
    example = torch.randn(batch_size, *input_size, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            median_ms, p90_ms = time_callable(lambda: model(example), warmup, repeats, sync)
    finally:
        model.train(was_training)
    return LatencyStats(batch_size, median_ms, p90_ms, repeats, warmup)

"""One `profile()` call: params, MACs, latency at batch 1 and 32, peak memory, with conditions."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field

import torch
from rich.table import Table

from slimvision.measure.complexity import count_macs, count_params, run_forward
from slimvision.measure.latency import LatencyStats, measure_latency, pinned_threads
from slimvision.measure.memory import peak_forward_memory_bytes


@dataclass
class Profile:
    """Measured size and speed of a model, with the conditions the numbers were taken under."""

    model: str
    params: int
    macs: int
    input_size: list[int]
    latency_ms: dict[str, dict[str, float]]
    peak_memory_bytes: dict[str, int]
    threads: int
    device: str
    conditions: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_table(self) -> Table:
        table = Table(title=f"profile: {self.model}  input {tuple(self.input_size)}  device {self.device}  threads {self.threads}")
        table.add_column("metric")
        table.add_column("value", justify="right")
        table.add_row("params", f"{self.params:,}")
        table.add_row("MACs (per image)", f"{self.macs / 1e6:,.2f} M")
        for batch, stats in self.latency_ms.items():
            table.add_row(f"latency bs={batch} (median / p90)", f"{stats['median']:.2f} / {stats['p90']:.2f} ms")
        for batch, peak in self.peak_memory_bytes.items():
            table.add_row(f"peak activation memory bs={batch}", f"{peak / 2**20:.2f} MiB")
        return table


def profile(
    model: torch.nn.Module,
    input_size: tuple[int, int, int],
    name: str | None = None,
    batch_sizes: tuple[int, ...] = (1, 32),
    threads: int | None = None,
    warmup: int = 5,
    repeats: int = 20,
    device: str = "cpu",
) -> Profile:
    """Measure `model` on `input_size` (C, H, W): params, MACs per image, latency and peak memory per batch size."""
    model = model.to(device).eval()
    run_forward(model, torch.zeros(1, *input_size, device=device))  # clear error on a wrong input size first
    latency: dict[str, dict[str, float]] = {}
    memory: dict[str, int] = {}
    with pinned_threads(threads) as threads_used:
        macs = count_macs(model, input_size)
        for batch in batch_sizes:
            stats: LatencyStats = measure_latency(model, input_size, batch, warmup, repeats)
            latency[str(batch)] = {"median": stats.median_ms, "p90": stats.p90_ms}
            memory[str(batch)] = peak_forward_memory_bytes(model, input_size, batch)
    conditions = {
        "warmup": warmup,
        "repeats": repeats,
        "mode": "eval, inference_mode, float32",
        "macs_counted": "conv, linear, matmul (FLOPs/2); element-wise ops excluded",
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
    }
    return Profile(
        name or model.__class__.__name__, count_params(model), macs, list(input_size),
        latency, memory, threads_used, device, conditions,
    )

"""Measure a run's artifacts side by side: params, MACs, bytes on disk, accuracy, and latency in interleaved rounds.

Latency: every artifact is timed at batch 1 and 32 in the same process, round after round (the
order rotates each round), and the reported value is the median over rounds of each round's median,
so drifts of a shared machine hit every artifact alike.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

BATCH_SIZES = (1, 32)


@dataclass
class ArtifactEntry:
    """One model of a run: a float artifact directory or an INT8 one, and the float model it came from."""

    stage: str
    label: str
    kind: str  # the stage kind that wrote it: train, prune, distill, quantize
    path: Path
    parent: Path | None = None  # the float model a pruned/quantized artifact was made from


@dataclass
class _Loaded:
    entry: ArtifactEntry
    run: Callable[[int], Callable[[], object]]  # batch size -> a call to time
    row: dict[str, Any] = field(default_factory=dict)


def _conv_widths(model: torch.nn.Module) -> dict[str, int]:
    return {name: module.out_channels for name, module in model.named_modules() if isinstance(module, torch.nn.Conv2d)}


def _load(entry: ArtifactEntry, threads: int | None) -> _Loaded:
    from slimvision.data import dataset_from_spec
    from slimvision.io import load_artifact, recorded_input_size
    from slimvision.measure import accuracy, count_macs, count_params
    from slimvision.quant.run import is_quantized_dir, load_quantized_runtime
    from slimvision.quant.run import recorded_input_size as quant_input_size
    from slimvision.quant.runtimes import runtime_predictions

    if is_quantized_dir(entry.path):
        runtime, meta = load_quantized_runtime(entry.path, threads=threads)
        input_size = quant_input_size(meta)
        test = dataset_from_spec(meta["data"], "test")
        predictions = runtime_predictions(runtime, test.images)
        parent = load_artifact(entry.parent).model if entry.parent else None
        inputs = {b: np.random.default_rng(b).standard_normal((b, *input_size), dtype=np.float32) for b in BATCH_SIZES}
        row = {
            # auto may deploy the float model (precision fp32/bf16) when INT8 does not pay; the label says which
            "runtime": f"{meta['backend']} {meta.get('precision', 'int8')}", "accuracy": float((predictions == test.labels.numpy()).mean()),
            "params": count_params(parent) if parent is not None else None, "macs": count_macs(parent, input_size) if parent is not None else None,
            "size_bytes": (entry.path / meta["file"]).stat().st_size,
        }
        if meta.get("quantize"):  # its decisions (auto's candidates, block search, placement) go into the report
            row["quantize"] = meta["quantize"]
        return _Loaded(entry, lambda b: (lambda: runtime.run(inputs[b])), row)
    artifact = load_artifact(entry.path)
    model = artifact.model.eval()
    input_size = recorded_input_size(artifact.meta)
    test = dataset_from_spec(artifact.meta["data"], "test")
    inputs = {b: torch.randn(b, *input_size, generator=torch.Generator().manual_seed(b)) for b in BATCH_SIZES}
    row = {
        "runtime": "torch eager fp32", "accuracy": accuracy(model, test), "params": count_params(model),
        "macs": count_macs(model, input_size), "size_bytes": (entry.path / "model.safetensors").stat().st_size,
    }
    if entry.kind == "prune" and entry.parent is not None:
        before, after = _conv_widths(load_artifact(entry.parent).model), _conv_widths(model)
        row["layer_widths"] = {name: [before.get(name), width] for name, width in after.items()}

    def call(batch: int) -> Callable[[], object]:
        def forward() -> object:
            with torch.inference_mode():
                return model(inputs[batch])

        return forward

    return _Loaded(entry, call, row)


def measure_entries(entries: list[ArtifactEntry], threads: int | None = None, rounds: int = 5, repeats: int = 10, warmup: int = 3) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One summary row per artifact and the measurement conditions; latencies interleaved across artifacts."""
    from slimvision.measure import pinned_threads, time_callable

    with pinned_threads(threads) as used:
        loaded = [_load(entry, threads) for entry in entries]
        samples: dict[tuple[int, int], list[float]] = {(i, b): [] for i in range(len(loaded)) for b in BATCH_SIZES}
        for round_index in range(rounds):
            order = list(range(len(loaded)))
            shift = round_index % len(order)
            for i in order[shift:] + order[:shift]:
                for batch in BATCH_SIZES:
                    samples[(i, batch)].append(time_callable(loaded[i].run(batch), warmup, repeats)[0])
    rows = []
    for i, item in enumerate(loaded):
        latency = {str(b): float(np.median(samples[(i, b)])) for b in BATCH_SIZES}
        rows.append({"stage": item.entry.stage, "label": item.entry.label, "kind": item.entry.kind, **item.row, "latency_ms": latency})
    base = rows[0]["latency_ms"]
    for row in rows:
        row["speedup"] = {b: base[b] / row["latency_ms"][b] for b in base}
    conditions = {
        "device": "CPU", "cpu": cpu_name(), "threads": used, "logical_cpus": os.cpu_count(),
        "rounds": rounds, "repeats_per_round": repeats, "warmup_per_round": warmup, "batch_sizes": list(BATCH_SIZES),
        "latency": "median over rounds of each round's median; artifacts interleaved, order rotated each round, one process",
        "speedup": f"latency of '{rows[0]['label']}' divided by each row's, same batch size",
        "accuracy": "top-1 on the test split recorded in each artifact",
        "macs": "per image, torch.utils.flop_counter (conv/linear/matmul), FLOPs/2; INT8 rows show their float parent's",
        "versions": versions(),
    }
    return rows, conditions


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    """Versions of the libraries the numbers depend on."""
    from importlib import metadata

    found = {"python": platform.python_version()}
    for package in ("slimvision", "torch", "onnxruntime", "openvino", "torch-pruning", "numpy"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found

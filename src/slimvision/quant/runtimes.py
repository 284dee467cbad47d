"""Inference runtimes behind one small interface: run(batch) -> logits, for timing and accuracy."""

from __future__ import annotations

import time
from functools import cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from slimvision.errors import SlimvisionError
from slimvision.measure import time_callable
from slimvision.quant.export import INPUT_NAME


class Runtime:
    """A loaded model on one engine. `label` says which engine and precision, e.g. 'openvino int8'."""

    label = ""

    def run(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class OrtRuntime(Runtime):
    def __init__(self, onnx_path: str | Path, threads: int | None = None, label: str = "onnxruntime"):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No spin-waiting: after a call returns, spinning worker threads keep the cores busy and slow whatever
        # runs next in the process (OpenVINO bf16 on mobilevitv2_050 at batch 32 timed right after onnxruntime:
        # 19.96 ms median against 8.86 ms after a non-spinning session), and on a shared 2-core machine they
        # slow onnxruntime itself at batch 32 (deit-tiny 46.8 vs 24.6 ms); the cost is about 0.3 ms of wake-up
        # at batch 1 on small models (mobilevitv2_050 0.38 vs 0.73 ms).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.label = label

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {INPUT_NAME: batch})[0]


@cache
def openvino_core():
    """The process's one OpenVINO Core, shared by every OpenVINO runtime.

    Each Core installs its own alternate signal stack on the calling thread and, when destroyed, frees it and
    restores the stack that was current when it was created. Two Cores destroyed in creation order therefore
    leave a freed alternate stack installed, and the next signal handled on that thread (SIGCHLD from any
    subprocess) kills the process with SIGSEGV (benchmarks/openvino_altstack_repro.py). One Core that lives as
    long as the process never frees it.
    """
    try:
        import openvino as ov
    except ImportError:
        raise SlimvisionError("the openvino runtime is not installed (pip install openvino)") from None
    return ov.Core()


class OpenVinoRuntime(Runtime):
    """OpenVINO CPU plugin, compiled once per batch size with a static input shape.

    precision 'f32' pins fp32 math (on CPUs with AMX/BF16 the default would be bf16). Static shapes
    are not only faster: with a dynamic batch dimension OpenVINO 2025.4 to 2026.4 (not 2025.3 or older) miscomputes the
    channel Concat of a ResNet option-A shortcut inside a quantized graph, which is what collapsed
    resnet20/56 INT8 accuracy (benchmarks/results/openvino_collapse.md).
    """

    def __init__(self, onnx_path: str | Path, threads: int | None = None, precision: str = "f32", label: str = "openvino"):
        self.config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = threads
        self.core = openvino_core()
        self.model = self.core.read_model(str(onnx_path))
        self.requests: dict[int, object] = {}
        self.label = label

    def _request(self, batch_size: int):
        """The infer request compiled for `batch_size` (compiled on first use)."""
        if batch_size not in self.requests:
            import openvino as ov

            model = self.model.clone()
            graph_input = model.inputs[0]
            model.reshape({graph_input.get_any_name(): ov.PartialShape([batch_size, *graph_input.get_partial_shape()[1:]])})
            self.requests[batch_size] = self.core.compile_model(model, "CPU", self.config).create_infer_request()
        return self.requests[batch_size]

    def run(self, batch: np.ndarray) -> np.ndarray:
        return self._request(len(batch)).infer({0: batch})[0].copy()


class TorchRuntime(Runtime):
    """Any torch callable (eager module, compiled module)."""

    def __init__(self, module: Callable[[torch.Tensor], torch.Tensor], label: str = "torch eager"):
        self.module = module
        self.label = label

    def run(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.module(torch.from_numpy(batch)).numpy()


def runtime_latency_ms(runtime: Runtime, input_size: tuple[int, ...], batch_sizes=(1, 32), warmup: int = 5, repeats: int = 20) -> dict[str, float]:
    """Median latency per batch size of `runtime` on random inputs."""
    rng = np.random.default_rng(0)
    result = {}
    for batch in batch_sizes:
        data = rng.standard_normal((batch, *input_size), dtype=np.float32)
        result[str(batch)] = time_callable(lambda: runtime.run(data), warmup, repeats)[0]
    return result


def interleaved_order(items: list, round_index: int) -> list:
    """The order of `items` in interleaved round `round_index`: rotated every other round, reversed in odd rounds.

    Rotation alone keeps the cyclic order, so every item would always run right after the same one, and a
    runtime that slows whatever follows it (threads still busy after its call returned) would always hit
    the same neighbour. Reversing every other round gives each item both neighbours as predecessors.
    """
    shift = (round_index // 2) % len(items) if items else 0
    ordered = items[shift:] + items[:shift]
    return ordered[::-1] if round_index % 2 else ordered


def time_runtime_ms(runtime: Runtime, batch: np.ndarray, warmup: int, repeats: int, min_total_ms: float = 0.0) -> float:
    """Median wall time in ms of `runtime.run(batch)` over at least `repeats` calls (and `min_total_ms` of them) after `warmup` untimed calls."""
    for _ in range(warmup):
        runtime.run(batch)
    samples: list[float] = []
    while len(samples) < repeats or sum(samples) < min_total_ms:
        start = time.perf_counter()
        runtime.run(batch)
        samples.append((time.perf_counter() - start) * 1000.0)
    return float(np.median(samples))


def interleaved_latency_ms(
    runtimes: list[Runtime], input_size: tuple[int, ...], batch_sizes=(1, 32), warmup: int = 5, repeats: int = 20, rounds: int = 5,
    min_round_ms: float = 0.0,
) -> list[dict[str, float]]:
    """Latency per batch size of every runtime, timed in interleaved rounds (`interleaved_order`); median of the round medians.

    Timing one runtime after the other lets a burst of load on a shared machine land on one of them
    only; rounds spread it over all of them, so the ratios between runtimes hold.
    """
    rounds_ms = interleaved_rounds_ms(runtimes, input_size, batch_sizes, warmup, repeats, rounds, min_round_ms)
    return [{batch: float(np.median(values)) for batch, values in per_batch.items()} for per_batch in rounds_ms]


def interleaved_rounds_ms(
    runtimes: list[Runtime], input_size: tuple[int, ...], batch_sizes=(1, 32), warmup: int = 5, repeats: int = 20, rounds: int = 5,
    min_round_ms: float = 0.0,
) -> list[dict[str, list[float]]]:
    """Every runtime's median per interleaved round, per batch size: entry i of two runtimes' lists was timed in the same round.

    A runtime's turn in a round is `repeats // rounds` calls, and with `min_round_ms` one untimed call first and at
    least that much timed work: a few sub-millisecond calls right after another runtime ran measure a cold start (caches
    and predictors refilled; convnext_atto at batch 1 on one thread: 0.30-0.39 ms in 5-call turns, 0.26 ms in 50 ms turns).
    """
    rng = np.random.default_rng(0)
    per_round = max(1, repeats // rounds)
    results: list[dict[str, list[float]]] = [{} for _ in runtimes]
    for batch in batch_sizes:
        data = rng.standard_normal((batch, *input_size), dtype=np.float32)
        medians: list[list[float]] = [[] for _ in runtimes]
        for runtime in runtimes:
            for _ in range(warmup):
                runtime.run(data)
        for round_index in range(rounds):
            for index in interleaved_order(list(range(len(runtimes))), round_index):
                medians[index].append(time_runtime_ms(runtimes[index], data, 1 if min_round_ms else 0, per_round, min_round_ms))
        for index, values in enumerate(medians):
            results[index][str(batch)] = [float(v) for v in values]
    return results


def paired_ratio(numerator_rounds: list[float], denominator_rounds: list[float]) -> float:
    """Median over rounds of one runtime's round median divided by another's from the same round.

    Load on a shared machine comes in states lasting seconds; one interleaved round is shorter, so the two
    runtimes of a round mostly ran under the same load, and the ratio within a round keeps what the ratio of
    two overall medians loses when the load states fell unevenly on them.
    """
    return float(np.median([a / b for a, b in zip(numerator_rounds, denominator_rounds)]))


def runtime_predictions(runtime: Runtime, images: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """Top-1 class per image, in batches of `batch_size` (a short last batch is zero-padded, so static-shape engines compile one shape)."""
    preds = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].numpy()
        count = len(batch)
        if count < batch_size and len(images) > batch_size:
            batch = np.concatenate([batch, np.zeros((batch_size - count, *batch.shape[1:]), batch.dtype)])
        preds.append(runtime.run(batch)[:count].argmax(axis=1))
    return np.concatenate(preds)

"""Q-T score: how INT8-friendly a search space is on this machine (after SpaceEvo).

SpaceEvo rates a candidate space by the quality of its best quantized models under a set of INT8
latency limits, with latency measured on the target hardware. Here: sample `samples` archs,
measure each one's INT8 latency with onnxruntime (static QDQ, per-channel weights, calibrated on
real images) at batch 1, score each with any evaluator, and for every latency limit average the
`top_k` best scores among the archs that meet it. The Q-T score is the mean of those averages; a
limit no sampled arch meets contributes the space's worst score, so a space whose INT8 models
are slow is penalised. SpaceEvo's accuracy term comes from a quantization-aware supernet; the
evaluator plays that role here (a proxy for a quick look, `oneshot` or `train` for a real one),
so compare spaces only with the same evaluator.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimvision.errors import ConfigError
from slimvision.nas.evaluator import Evaluator
from slimvision.nas.space import SearchSpace
from slimvision.progress import progress_bar


@dataclass
class QTConfig:
    latency_limits_ms: tuple[float, ...]
    samples: int = 20
    top_k: int = 3
    image_size: int = 32
    data: str = "digits"
    threads: int = 1
    seed: int = 0


@dataclass
class QTResult:
    score: float
    per_limit: dict[str, float]
    archs: list[dict[str, Any]] = field(default_factory=list)  # arch, evaluator score, int8 and fp32 latency


def int8_latency_ms(model, input_size: tuple[int, int, int], calibration, threads: int) -> tuple[float, float]:
    """(INT8, fp32) onnxruntime latency at batch 1, median of repeats, of `model` exported and statically quantized."""
    from slimvision.quant import export_onnx
    from slimvision.quant.onnx_int8 import quantize_static_qdq
    from slimvision.quant.runtimes import OrtRuntime, runtime_latency_ms

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model.eval(), input_size, Path(tmp) / "fp32.onnx")
        int8 = quantize_static_qdq(fp32, Path(tmp) / "int8.onnx", calibration)
        return tuple(runtime_latency_ms(OrtRuntime(path, threads), input_size, batch_sizes=(1,), repeats=30)["1"] for path in (int8, fp32))


def qt_score(space: SearchSpace, evaluator: Evaluator, config: QTConfig, progress: bool = True) -> QTResult:
    from slimvision.data import get_dataset

    if not config.latency_limits_ms or config.samples < 1 or config.top_k < 1:
        raise ConfigError("the Q-T score needs at least one latency limit, samples >= 1 and top_k >= 1")
    train = get_dataset(config.data, "train", config.image_size)
    calibration, input_size = train.images[:64], train.spec.input_size
    rng = random.Random(config.seed)
    rows = []
    with progress_bar(progress) as bar:
        task = bar.add_task("Q-T score", total=config.samples)
        for _ in range(config.samples):
            arch = space.sample(rng)
            int8_ms, fp32_ms = int8_latency_ms(space.build(arch, train.spec.num_classes, train.spec.in_chans), input_size, calibration, config.threads)
            rows.append({"arch": arch, "score": float(evaluator.score(arch)), "int8_ms": int8_ms, "fp32_ms": fp32_ms})
            bar.advance(task)
    worst = min(row["score"] for row in rows)
    per_limit = {}
    for limit in config.latency_limits_ms:
        within = sorted((row["score"] for row in rows if row["int8_ms"] <= limit), reverse=True)[: config.top_k]
        per_limit[f"{limit:g}"] = sum(within) / len(within) if within else worst
    return QTResult(sum(per_limit.values()) / len(per_limit), per_limit, rows)

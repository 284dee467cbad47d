"""Budget mode: turn `--target latency=2ms@bs1 | macs=20M | params=100k | size=200KB` into a recipe (prune, distill, INT8).

MACs and params budgets become the prune stage's ratio directly (prune itself bisects to the
measured count). A latency budget is found by bisection on the MACs ratio: each candidate is pruned
and its fp32 latency measured on this machine; the largest ratio within the budget is kept, and INT8
afterwards only makes it faster. A size budget (bytes on disk of the final INT8 file) is found by
bisection on the params ratio: each candidate is pruned, exported and quantized to the same QDQ ONNX
file the quantize stage writes, and that file's size is measured. A budget the smallest prunable
model still misses stops with the closest point reached.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from slimvision.errors import ConfigError
from slimvision.pipeline.recipe import Recipe, recipe_from_dict

_TARGET = re.compile(
    r"^(?P<kind>latency)=(?P<value>[0-9.]+)ms@bs(?P<batch>[0-9]+)$"
    r"|^(?P<count>macs|params)=(?P<number>[0-9.]+)(?P<unit>[kMG]?)$"
    r"|^(?P<size>size)=(?P<bytes>[0-9.]+)(?P<byte_unit>B|kB|KB|MB|GB|KiB|MiB|GiB)$"
)
_UNITS = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}
_BYTE_UNITS = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
SMALLEST_RATIO = 0.05  # prune keeps at least this fraction of the MACs
BISECTION_STEPS = 6
INTERPOLATION_TOLERANCE = 0.99  # a size budget is met closely enough within 1% below it


@dataclass(frozen=True)
class Target:
    """A budget: `kind` is latency (ms at `batch`), macs, params or size (bytes on disk of the final artifact)."""

    kind: str
    value: float
    batch: int = 1


def parse_target(text: str) -> Target:
    """`latency=2ms@bs1`, `macs=20M`, `params=100k` or `size=200KB` as a Target."""
    match = _TARGET.match(text.strip())
    if match is None:
        raise ConfigError(
            f"--target {text!r}: expected latency=<ms>ms@bs<batch>, macs=<n>[k|M|G], params=<n>[k|M|G] or size=<n><B|KB|MB|GB|KiB|MiB|GiB>"
        )
    if match["kind"]:
        target = Target("latency", float(match["value"]), int(match["batch"]))
    elif match["size"]:
        target = Target("size", float(match["bytes"]) * _BYTE_UNITS[match["byte_unit"]])
    else:
        target = Target(match["count"], float(match["number"]) * _UNITS[match["unit"]])
    if target.value <= 0 or target.batch < 1:
        raise ConfigError(f"--target {text!r}: the budget must be positive")
    return target


class _OutOfReach(Exception):
    """The smallest prunable model still misses the budget: `smallest` and `full` are what was measured."""

    def __init__(self, smallest: float, full: float):
        self.smallest, self.full = smallest, full


def _largest_ratio(measure_at, goal: float, interpolate: bool = False) -> tuple[float, float]:
    """(largest ratio in [SMALLEST_RATIO, 1] whose measured value is within `goal`, that value).

    Bisection; with `interpolate` (a value nearly linear in the ratio and free of noise, like a file
    size) the next ratio is the linear interpolation between the bracket ends, which lands within
    a percent of the goal in two or three measurements instead of six.
    """
    full = measure_at(1.0)
    if full <= goal:
        return 1.0, full
    smallest = measure_at(SMALLEST_RATIO)
    if smallest > goal:
        raise _OutOfReach(smallest, full)
    (low, low_value), (high, high_value) = (SMALLEST_RATIO, smallest), (1.0, full)
    for _ in range(BISECTION_STEPS):
        if interpolate:
            middle = low + (high - low) * (goal - low_value) / (high_value - low_value)
            middle = min(max(middle, low + 0.01 * (high - low)), high - 0.01 * (high - low))  # stay strictly inside the bracket
        else:
            middle = (low + high) / 2
        measured = measure_at(middle)
        if measured <= goal:
            low, low_value = middle, measured
            if interpolate and measured >= INTERPOLATION_TOLERANCE * goal:
                break
        else:
            high, high_value = middle, measured
    return low, low_value


def _pruned(model, input_size: tuple[int, ...], budget: str, ratio: float):
    import copy

    import torch

    from slimvision.prune import PruneConfig, prune

    if ratio >= 1.0:
        return model
    return prune(copy.deepcopy(model), torch.zeros(1, *input_size), PruneConfig(method="l1", **{budget: ratio})).model.eval()


def _latency_ratio(model, input_size: tuple[int, ...], target: Target, threads: int | None) -> tuple[float, float]:
    """(largest MACs ratio whose pruned fp32 latency meets the target, its latency); ConfigError when none does."""
    from slimvision.measure import measure_latency, pinned_threads

    def latency_at(ratio: float) -> float:
        return measure_latency(_pruned(model, input_size, "macs_ratio", ratio), input_size, target.batch, warmup=3, repeats=10).median_ms

    with pinned_threads(threads):
        try:
            return _largest_ratio(latency_at, target.value)
        except _OutOfReach as miss:
            raise ConfigError(
                f"--target latency={target.value}ms@bs{target.batch} is out of reach on this machine: pruned to {SMALLEST_RATIO:.0%} of its MACs "
                f"the model still takes {miss.smallest:.2f} ms (unpruned {miss.full:.2f} ms) in fp32 eager, the closest point reached; choose a larger budget or a smaller model"
            ) from None


def int8_file_bytes(model, input_size: tuple[int, ...]) -> int:
    """Bytes of the static QDQ INT8 ONNX file of `model`, written as the quantize stage writes it (calibration values do not change its size)."""
    import tempfile
    from pathlib import Path

    import torch

    from slimvision.quant.export import export_onnx
    from slimvision.quant.onnx_int8 import quantize_static_qdq

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, input_size, Path(tmp) / "fp32.onnx", check=False)
        int8 = quantize_static_qdq(fp32, Path(tmp) / "int8.onnx", torch.randn(8, *input_size, generator=torch.Generator().manual_seed(0)))
        return int8.stat().st_size


def _size_ratio(model, input_size: tuple[int, ...], target: Target) -> tuple[float, float]:
    """(largest params ratio whose INT8 file fits the size budget, that file's bytes); ConfigError when none does."""
    try:
        return _largest_ratio(lambda ratio: float(int8_file_bytes(_pruned(model, input_size, "params_ratio", ratio), input_size)), target.value, interpolate=True)
    except _OutOfReach as miss:
        raise ConfigError(
            f"--target size={target.value:,.0f} bytes is out of reach: pruned to {SMALLEST_RATIO:.0%} of its params the model's INT8 file "
            f"still takes {miss.smallest:,.0f} bytes (unpruned {miss.full:,.0f} bytes), the closest point reached; choose a larger budget or a smaller model"
        ) from None


def budget_recipe(
    model: str, data: str, target: Target, image_size: int | None = None, data_root: str | None = None,
    model_kwargs: dict[str, Any] | None = None, weights: str | None = None, distill_epochs: int = 3, threads: int | None = None,
) -> tuple[Recipe, dict[str, Any]]:
    """A recipe (prune -> distill from the given model -> INT8 auto) that meets `target`, and how the ratio was chosen."""
    from slimvision.data import get_dataset
    from slimvision.io import resolve_model
    from slimvision.measure import count_macs, count_params
    from slimvision.models import ModelSource

    spec = get_dataset(data, "val", image_size, root=data_root).spec
    module, _, _ = resolve_model(ModelSource(model, model_kwargs or {}, weights), num_classes=spec.num_classes, in_chans=spec.in_chans)
    module.eval()
    if target.kind == "latency":
        ratio, measured = _latency_ratio(module, spec.input_size, target, threads)
        choice = {"macs_ratio": ratio, "fp32_latency_ms": measured, "batch": target.batch}
        budget = {"macs_ratio": ratio}
    elif target.kind == "size":
        ratio, measured = _size_ratio(module, spec.input_size, target)
        choice = {"params_ratio": ratio, "int8_size_bytes": int(measured)}
        budget = {"params_ratio": ratio}
    else:
        current = count_macs(module, spec.input_size) if target.kind == "macs" else count_params(module)
        ratio = target.value / current
        if ratio < SMALLEST_RATIO:
            raise ConfigError(
                f"--target {target.kind}={target.value:,.0f} is out of reach: the model has {current:,} {target.kind}, and pruning keeps at least "
                f"{SMALLEST_RATIO:.0%} ({SMALLEST_RATIO * current:,.0f})"
            )
        choice = {f"{target.kind}_ratio": min(ratio, 1.0), f"{target.kind}_before": current}
        budget = {f"{target.kind}_ratio": min(ratio, 1.0)}
    stages: list[dict[str, Any]] = []
    if next(iter(budget.values())) < 1.0:
        stages += [
            {"stage": "prune", "label": "pruned to budget", "method": "l1", **budget},
            {"stage": "distill", "label": "pruned + NKD", "teacher": model, "teacher_kwargs": model_kwargs or {}, "teacher_weights": weights,
             "loss": "nkd", "epochs": distill_epochs},
        ]
    # `auto` may keep an fp32 deployment when INT8 is not faster; a size budget needs the INT8 file, which
    # onnxruntime always writes (OpenVINO would run the same QDQ file)
    stages.append({"stage": "quantize", "label": "INT8", "backend": "onnxruntime" if target.kind == "size" else "auto"})
    recipe = {
        "model": model, "model_kwargs": model_kwargs or {}, "weights": weights,
        "data": {"name": data, "image_size": image_size, "root": data_root}, "threads": threads, "stages": stages,
    }
    return recipe_from_dict(recipe, "--target recipe"), choice

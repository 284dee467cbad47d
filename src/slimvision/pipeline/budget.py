"""Budget mode: turn `--target latency=2ms@bs1 | macs=20M | params=100k` into a recipe (prune, distill, INT8).

MACs and params budgets become the prune stage's ratio directly (prune itself bisects to the
measured count). A latency budget is found by bisection on the MACs ratio: each candidate is pruned
and its fp32 latency measured on this machine; the largest ratio within the budget is kept, and INT8
afterwards only makes it faster. A budget the smallest prunable model still misses stops with the
closest point reached.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from slimvision.errors import ConfigError
from slimvision.pipeline.recipe import Recipe, recipe_from_dict

_TARGET = re.compile(r"^(?P<kind>latency)=(?P<value>[0-9.]+)ms@bs(?P<batch>[0-9]+)$|^(?P<count>macs|params)=(?P<number>[0-9.]+)(?P<unit>[kMG]?)$")
_UNITS = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}
SMALLEST_RATIO = 0.05  # prune keeps at least this fraction of the MACs
BISECTION_STEPS = 6


@dataclass(frozen=True)
class Target:
    """A budget: `kind` is latency (ms at `batch`), macs or params."""

    kind: str
    value: float
    batch: int = 1


def parse_target(text: str) -> Target:
    """`latency=2ms@bs1`, `macs=20M` or `params=100k` as a Target."""
    match = _TARGET.match(text.strip())
    if match is None:
        raise ConfigError(f"--target {text!r}: expected latency=<ms>ms@bs<batch>, macs=<n>[k|M|G] or params=<n>[k|M|G]")
    if match["kind"]:
        target = Target("latency", float(match["value"]), int(match["batch"]))
    else:
        target = Target(match["count"], float(match["number"]) * _UNITS[match["unit"]])
    if target.value <= 0 or target.batch < 1:
        raise ConfigError(f"--target {text!r}: the budget must be positive")
    return target


def _latency_ratio(model, input_size: tuple[int, ...], target: Target, threads: int | None) -> tuple[float, float]:
    """(largest MACs ratio whose pruned fp32 latency meets the target, its latency); ConfigError when none does."""
    import copy

    import torch

    from slimvision.measure import measure_latency, pinned_threads
    from slimvision.prune import PruneConfig, prune

    example = torch.zeros(1, *input_size)

    def latency_at(ratio: float) -> float:
        candidate = model if ratio >= 1.0 else prune(copy.deepcopy(model), example, PruneConfig(method="l1", macs_ratio=ratio)).model
        return measure_latency(candidate.eval(), input_size, target.batch, warmup=3, repeats=10).median_ms

    with pinned_threads(threads):
        full = latency_at(1.0)
        if full <= target.value:
            return 1.0, full
        smallest = latency_at(SMALLEST_RATIO)
        if smallest > target.value:
            raise ConfigError(
                f"--target latency={target.value}ms@bs{target.batch} is out of reach on this machine: pruned to {SMALLEST_RATIO:.0%} of its MACs "
                f"the model still takes {smallest:.2f} ms (unpruned {full:.2f} ms) in fp32 eager, the closest point reached; choose a larger budget or a smaller model"
            )
        low, high, best = SMALLEST_RATIO, 1.0, (SMALLEST_RATIO, smallest)
        for _ in range(BISECTION_STEPS):
            middle = (low + high) / 2
            measured = latency_at(middle)
            if measured <= target.value:
                low, best = middle, (middle, measured)
            else:
                high = middle
        return best


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
    stages.append({"stage": "quantize", "label": "INT8", "backend": "auto"})
    recipe = {
        "model": model, "model_kwargs": model_kwargs or {}, "weights": weights,
        "data": {"name": data, "image_size": image_size, "root": data_root}, "threads": threads, "stages": stages,
    }
    return recipe_from_dict(recipe, "--target recipe"), choice

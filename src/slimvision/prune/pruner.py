"""`prune()`: physical channel removal with torch-pruning's dependency graph, to a MACs/params/channel budget.

The budget is met by bisection on torch-pruning's channel ratio: each trial prunes a copy and
measures MACs (or params) with the same counter `slimvision profile` uses, so the reported ratio
is measured, not estimated.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import torch
import torch.nn as nn
import torch_pruning as tp

from slimvision.errors import ConfigError, SlimvisionError
from slimvision.measure import count_macs, count_params
from slimvision.models.cifar_resnet import ChannelMapShortcut
from slimvision.prune.criteria import CRITERIA, Criterion
from slimvision.prune.shortcut import CUSTOM_PRUNERS

# Leaf modules whose parameters torch-pruning (plus our shortcut pruner) knows how to slice.
PRUNABLE_TYPES = (
    nn.modules.conv._ConvNd, nn.Linear, nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm,
    nn.PReLU, nn.Embedding, nn.MultiheadAttention, ChannelMapShortcut,
)
BISECTION_STEPS = 14


@dataclass
class PruneConfig:
    """How much to remove and how to choose it. Exactly one of the three ratios must be set."""

    method: str = "l1"
    macs_ratio: float | None = None  # keep this fraction of the MACs
    params_ratio: float | None = None  # keep this fraction of the parameters
    channel_ratio: float | None = None  # keep this fraction of each layer's channels
    global_pruning: bool = False  # rank channels across layers instead of the same ratio per layer
    iterative_steps: int = 1
    ignore_layers: Sequence[str] = ()
    max_layer_ratio: float = 0.9  # never remove more than this fraction of one layer's channels
    round_to: int | None = None
    seed: int = 0
    saliency: str = "snip"  # precrop: snip or synflow
    sparsity_epochs: int = 0  # bn: epochs of L1-on-gamma training before pruning
    sparsity_strength: float = 1e-4

    def __post_init__(self) -> None:
        given = [n for n in ("macs_ratio", "params_ratio", "channel_ratio") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ConfigError("give exactly one budget: --macs-ratio, --params-ratio or --channel-ratio")
        value = getattr(self, given[0])
        if not 0.0 < value <= 1.0:
            raise ConfigError(f"--{given[0].replace('_', '-')} must be in (0, 1], got {value}")
        if self.method not in CRITERIA:
            raise ConfigError(f"unknown pruning method {self.method!r}; known: {', '.join(CRITERIA.names())}")
        if self.saliency not in ("snip", "synflow"):
            raise ConfigError(f"saliency must be snip or synflow, got {self.saliency!r}")
        if self.iterative_steps < 1:
            raise ConfigError(f"iterative steps must be >= 1, got {self.iterative_steps}")

    @property
    def budget(self) -> tuple[str, float]:
        for name in ("macs_ratio", "params_ratio", "channel_ratio"):
            if getattr(self, name) is not None:
                return name, getattr(self, name)
        raise AssertionError("unreachable: validated in __post_init__")


@dataclass
class PruneResult:
    model: nn.Module
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    channel_ratio_used: list[float] = field(default_factory=list)

    @property
    def macs_kept(self) -> float:
        return self.macs_after / self.macs_before

    @property
    def params_kept(self) -> float:
        return self.params_after / self.params_before


def find_unsupported_layers(model: nn.Module, ignored: set[nn.Module]) -> list[str]:
    """Names of leaf modules that hold parameters torch-pruning cannot slice and that are not ignored."""
    bad = []
    for name, module in model.named_modules():
        own_params = list(module.parameters(recurse=False))
        if own_params and not isinstance(module, PRUNABLE_TYPES) and module not in ignored:
            bad.append(f"{name} ({type(module).__name__})")
    return bad


def resolve_ignored(model: nn.Module, names: Sequence[str]) -> list[nn.Module]:
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise ConfigError(f"--ignore-layers names unknown layers {missing}; e.g. {list(modules)[1:6]}")
    return [modules[n] for n in names]


def classifier_layers(model: nn.Module, example_inputs: torch.Tensor) -> list[nn.Module]:
    """The final Linear layer(s): their outputs are the classes and must keep their width."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        out_features = model(example_inputs).shape[-1]
    return [m for m in linears if m.out_features == out_features]


def build_pruner(
    model: nn.Module,
    example_inputs: torch.Tensor,
    criterion: Criterion,
    ratio: float,
    config: PruneConfig,
    ignored: list[nn.Module],
    ratio_dict: dict[nn.Module, float] | None = None,
) -> tp.pruner.MetaPruner:
    return tp.pruner.MetaPruner(
        model,
        example_inputs,
        importance=criterion.importance(),
        global_pruning=config.global_pruning,
        pruning_ratio=ratio,
        pruning_ratio_dict=ratio_dict,
        max_pruning_ratio=config.max_layer_ratio,
        ignored_layers=ignored,
        round_to=config.round_to,
        customized_pruners=CUSTOM_PRUNERS,
    )


def prune_once(
    model: nn.Module,
    example_inputs: torch.Tensor,
    criterion: Criterion,
    ratio: float,
    config: PruneConfig,
    ignore_names: Sequence[str],
    calib_batches: Sequence[tuple[torch.Tensor, torch.Tensor]] = (),
    ratio_dict_fn: Callable[[nn.Module, float], dict[nn.Module, float]] | None = None,
) -> nn.Module:
    """Remove `ratio` of the channels of `model` in place (torch-pruning's ratio semantics)."""
    ignored = resolve_ignored(model, ignore_names) + classifier_layers(model, example_inputs)
    criterion.prepare(model, calib_batches)
    ratio_dict = ratio_dict_fn(model, ratio) if ratio_dict_fn else None
    pruner = build_pruner(model, example_inputs, criterion, ratio, config, ignored, ratio_dict)
    pruner.step()
    model.zero_grad(set_to_none=True)
    return model


def _measure(model: nn.Module, input_size: tuple[int, ...], budget: str) -> float:
    if budget == "params_ratio":
        return float(count_params(model))
    return float(count_macs(model, input_size))


def prune_to_fraction(
    model: nn.Module,
    example_inputs: torch.Tensor,
    criterion: Criterion,
    config: PruneConfig,
    target: float,
    reference: float,
    calib_batches: Sequence[tuple[torch.Tensor, torch.Tensor]] = (),
    ratio_dict_fn: Callable[[nn.Module, float], dict[nn.Module, float]] | None = None,
) -> tuple[nn.Module, float]:
    """Prune a copy of `model` until its MACs/params are closest to `target` x `reference`; returns (pruned, ratio)."""
    budget, _ = config.budget
    input_size = tuple(example_inputs.shape[1:])

    def attempt(ratio: float) -> nn.Module:
        candidate = copy.deepcopy(model)
        torch.manual_seed(config.seed)  # the random criterion must pick the same channels in every trial
        return prune_once(candidate, example_inputs, criterion, ratio, config, config.ignore_layers, calib_batches, ratio_dict_fn)

    if budget == "channel_ratio":
        ratio = 1.0 - target
        return attempt(ratio), ratio
    # Channel counts are integers, so kept MACs move in steps: bracket the target and return
    # whichever side lands closer to it.
    low, high = 0.0, config.max_layer_ratio
    under: tuple[float, nn.Module, float] | None = None  # (kept, model, ratio) with kept <= target
    over: tuple[float, nn.Module, float] | None = None
    for _ in range(BISECTION_STEPS):
        middle = (low + high) / 2
        candidate = attempt(middle)
        kept = _measure(candidate, input_size, budget) / reference
        if kept > target:
            low, over = middle, (kept, candidate, middle)
        else:
            high, under = middle, (kept, candidate, middle)
        if abs(kept - target) < 0.002:
            break
    if under is None:
        candidate = attempt(high)
        kept = _measure(candidate, input_size, budget) / reference
        if kept > target * 1.05:
            name = budget.replace("_", "-")
            raise ConfigError(
                f"--{name} {target:.3f} is not reachable: removing {config.max_layer_ratio:.0%} of every layer's channels "
                f"still keeps {kept:.3f} (fixed layers dominate); raise the ratio or prune more layers"
            )
        under = (kept, candidate, high)
    best = under if over is None or target - under[0] <= over[0] - target else over
    return best[1], best[2]


def prune(
    model: nn.Module,
    example_inputs: torch.Tensor,
    config: PruneConfig,
    calib_batches: Iterable[tuple[torch.Tensor, torch.Tensor]] = (),
    between_steps: Callable[[nn.Module, int], None] | None = None,
    ratio_dict_fn: Callable[[nn.Module, float], dict[nn.Module, float]] | None = None,
) -> PruneResult:
    """Physically remove channels of `model` (a pruned copy is returned) to meet the budget in `config`.

    With `iterative_steps` N > 1 the budget is reached in N geometric steps and
    `between_steps(model, step)` (e.g. fine-tuning) runs after each step but the last.
    """
    model = copy.deepcopy(model).eval()
    input_size = tuple(example_inputs.shape[1:])
    ignored = set(resolve_ignored(model, config.ignore_layers))
    unsupported = find_unsupported_layers(model, ignored)
    if unsupported:
        raise SlimvisionError(
            f"cannot prune layers with parameters of unsupported types: {', '.join(unsupported[:5])}; "
            "exclude them with --ignore-layers NAME"
        )
    criterion = CRITERIA.get(config.method)()
    if criterion.during_training:
        raise ConfigError(f"{config.method} prunes during training: use prune_artifact (CLI: --finetune-epochs >= 1)")
    calib = list(calib_batches)
    params_before, macs_before = count_params(model), count_macs(model, input_size)
    budget, fraction = config.budget
    reference = float(params_before if budget == "params_ratio" else macs_before)
    ratios = []
    for step in range(1, config.iterative_steps + 1):
        if budget == "channel_ratio":
            # keep (1 - r_total) overall: step s removes the share that brings the survivors to fraction^(s/N)
            kept_now = fraction ** ((step - 1) / config.iterative_steps)
            step_target = (fraction ** (step / config.iterative_steps)) / kept_now
            model, ratio = prune_to_fraction(model, example_inputs, criterion, config, step_target, 1.0, calib, ratio_dict_fn)
        else:
            step_target = fraction ** (step / config.iterative_steps)
            model, ratio = prune_to_fraction(model, example_inputs, criterion, config, step_target, reference, calib, ratio_dict_fn)
        ratios.append(ratio)
        if between_steps and step < config.iterative_steps:
            between_steps(model, step)
    try:
        with torch.no_grad():
            model(example_inputs)
    except RuntimeError as exc:
        raise SlimvisionError(f"pruned model no longer runs ({str(exc).splitlines()[0]}); exclude the layer it names with --ignore-layers") from None
    return PruneResult(model, params_before, count_params(model), macs_before, count_macs(model, input_size), ratios)

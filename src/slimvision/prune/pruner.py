"""`prune()`: physical channel removal with torch-pruning's dependency graph, to a MACs/params/channel budget.

The budget is met by a bracketed search on torch-pruning's channel ratio: each trial prunes a
copy, checks that it still runs with the same output shape (keeping whole, and naming, what
broke), then measures MACs (or params) with the same counter `slimvision profile` uses, so the
reported ratio is measured, not estimated. Which structures need help and how is in `patterns`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import torch
import torch.nn as nn
import torch_pruning as tp

from slimvision.errors import ConfigError, SlimvisionError
from slimvision.measure import count_macs, count_params
from slimvision.prune.criteria import CRITERIA, Criterion
from slimvision.prune.patterns import (
    GuardedImportance, KeptGroups, bare_parameters, broken_layer, find_attention_blocks, own_bare_parameters,
    traced_forward, ungroupable_layers, update_attention_attributes,
)
from slimvision.prune.shortcut import CUSTOM_PRUNERS

BISECTION_STEPS = 14  # trials at most; interpolation usually needs 3-5
# A uniform ratio moves every layer at once; when the layers' channel steps coincide (e.g. grouped
# convs that lose one channel per group, 1/8 of the width at a time) kept MACs jump past the target.
# Inside a bracket this narrow, layers are then split between its two ratios instead.
MIXING_BRACKET = 0.02
MIXING_TOLERANCE = 0.005  # mix only when the best uniform ratio misses the target by more than this
MAX_REPAIRS = 12  # layers we may keep whole, one per failed trial, before giving up


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
    kept_layers: list[str] = field(default_factory=list)  # "layer: why" for channels kept so the model still runs

    @property
    def macs_kept(self) -> float:
        return self.macs_after / self.macs_before

    @property
    def params_kept(self) -> float:
        return self.params_after / self.params_before


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


@dataclass
class PruneState:
    """What one `prune()` call knows across its trials: the output shape, layers never pruned
    (the classifier), layers kept whole after a trial broke, and groups kept, with reasons."""

    expected_shape: tuple[int, ...]
    fixed_names: list[str]
    keep_names: list[str] = field(default_factory=list)
    kept: KeptGroups = field(default_factory=KeptGroups)
    ungroupable_checked: bool = False

    @classmethod
    def for_model(cls, model: nn.Module, example_inputs: torch.Tensor) -> "PruneState":
        """One forward pass: the output shape every pruned copy must keep and the classifier layer names."""
        names = {module: name for name, module in model.named_modules()}
        return cls(tuple(_output(model, example_inputs).shape), [names[m] for m in classifier_layers(model, example_inputs)])


def _output(model: nn.Module, example_inputs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(example_inputs)


def build_pruner(
    model: nn.Module,
    example_inputs: torch.Tensor,
    criterion: Criterion,
    ratio: float,
    config: PruneConfig,
    ignored: list[nn.Module],
    ratio_dict: dict[nn.Module, float] | None = None,
    kept: KeptGroups | None = None,
) -> tp.pruner.MetaPruner:
    """torch-pruning's MetaPruner, told about attention heads, bare parameters and our shortcut pruner."""
    names = {module: name for name, module in model.named_modules()}
    ignored_params = own_bare_parameters(ignored)
    attention = find_attention_blocks(model)
    try:
        return tp.pruner.MetaPruner(
            model,
            example_inputs,
            forward_fn=traced_forward,  # records reshape shapes, so reshapes into heads are recognised
            importance=GuardedImportance(criterion.importance(), names, kept if kept is not None else KeptGroups(), ignored_params),
            global_pruning=config.global_pruning,
            pruning_ratio=ratio,
            pruning_ratio_dict=ratio_dict,
            max_pruning_ratio=config.max_layer_ratio,
            ignored_layers=ignored,
            round_to=config.round_to,
            num_heads={block.qkv: block.module.num_heads for block in attention},
            unwrapped_parameters=bare_parameters(model),
            customized_pruners=CUSTOM_PRUNERS,
        )
    except Exception as exc:  # torch-pruning traces the whole forward; never let its traceback reach the user
        raise GroupingError(f"torch-pruning cannot trace {type(model).__name__}: {_first_line(exc)}") from None


class GroupingError(SlimvisionError):
    """torch-pruning could not build or group the dependency graph of the model."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


class LayerPruneError(SlimvisionError):
    """torch-pruning failed while slicing the group rooted at `layer`."""

    def __init__(self, layer: str, message: str):
        super().__init__(f"pruning layer {layer!r} failed: {message}")
        self.layer = layer


def prune_once(
    model: nn.Module,
    example_inputs: torch.Tensor,
    criterion: Criterion,
    ratio: float,
    config: PruneConfig,
    ignore_names: Sequence[str],
    calib_batches: Sequence[tuple[torch.Tensor, torch.Tensor]] = (),
    ratio_dict_fn: Callable[[nn.Module, float], dict[nn.Module, float]] | None = None,
    kept: KeptGroups | None = None,
) -> nn.Module:
    """Remove `ratio` of the channels of `model` in place (torch-pruning's ratio semantics); `ignore_names` stay whole."""
    ignored = resolve_ignored(model, ignore_names)
    criterion.prepare(model, calib_batches)
    ratio_dict = ratio_dict_fn(model, ratio) if ratio_dict_fn else None
    pruner = build_pruner(model, example_inputs, criterion, ratio, config, ignored, ratio_dict, kept)
    names = {module: name for name, module in model.named_modules()}
    groups = pruner.step(interactive=True)
    while True:
        try:
            group = next(groups)
        except StopIteration:
            break
        except Exception as exc:  # scoring or grouping inside torch-pruning
            raise GroupingError(f"torch-pruning failed while ranking channels of {type(model).__name__}: {_first_line(exc)}") from None
        try:
            group.prune()
        except Exception as exc:
            raise LayerPruneError(names.get(group[0][0].target.module, "?"), _first_line(exc)) from None
    update_attention_attributes(find_attention_blocks(model), pruner.num_heads)
    model.zero_grad(set_to_none=True)
    return model


def _layer_to_keep(model: nn.Module, broken: str, already: Sequence[str]) -> str | None:
    """The module to keep whole after `broken` failed: a block rather than a leaf (a leaf fails on
    what its producer left it), and one level further up if that block is already kept."""
    modules = dict(model.named_modules())
    name = broken
    module = modules.get(name)
    if module is not None and not list(module.children()) and "." in name:
        name = name.rpartition(".")[0]
    while name in already:
        if not name:
            return None
        name = name.rpartition(".")[0] if "." in name else ""
    return name or None


def _measure(model: nn.Module, input_size: tuple[int, ...], budget: str) -> float:
    if budget == "params_ratio":
        return float(count_params(model))
    return float(count_macs(model, input_size))


def prune_checked(
    model: nn.Module,
    example_inputs: torch.Tensor,
    criterion: Criterion,
    ratio: float,
    config: PruneConfig,
    state: PruneState,
    calib_batches: Sequence[tuple[torch.Tensor, torch.Tensor]] = (),
    ratio_dict_fn: Callable[[nn.Module, float], dict[nn.Module, float]] | None = None,
) -> nn.Module:
    """A pruned copy of `model` that runs and gives the unpruned output shape.

    When a trial breaks the forward pass, the layer that failed (or its block) is kept whole in
    `state` and the trial repeats; the checks run before any MACs are counted, so an error names
    the layer, not the input size.
    """
    for _ in range(MAX_REPAIRS + 1):
        candidate = copy.deepcopy(model)
        torch.manual_seed(config.seed)  # the random criterion must pick the same channels in every trial
        ignore_names = [*config.ignore_layers, *state.fixed_names, *state.keep_names]
        try:
            prune_once(candidate, example_inputs, criterion, ratio, config, ignore_names, calib_batches, ratio_dict_fn, state.kept)
            failure = broken_layer(candidate, example_inputs, state.expected_shape)
        except LayerPruneError as exc:
            failure = (exc.layer, str(exc))
        except GroupingError:
            if state.ungroupable_checked:
                raise
            _keep_ungroupable(model, example_inputs, state)
            continue
        if failure is None:
            return compact_tensors(candidate)
        layer, message = failure
        keep = _layer_to_keep(model, layer, state.keep_names) if len(state.keep_names) < MAX_REPAIRS else None
        if keep is None:
            where = f"layer {layer!r} ({type(dict(model.named_modules())[layer]).__name__})" if layer else "the model output"
            raise SlimvisionError(
                f"pruned model no longer runs: {where} failed with {message}"
                + (f" (already kept whole: {', '.join(state.keep_names)})" if state.keep_names else "")
                + "; keep it with --ignore-layers NAME"
            )
        state.keep_names.append(keep)
        state.kept.reasons[keep] = f"kept whole: pruning broke {layer or 'the output'} ({message})"
    raise AssertionError("unreachable: the loop returns or raises")


def _keep_ungroupable(model: nn.Module, example_inputs: torch.Tensor, state: PruneState) -> None:
    """Keep whole the layers whose channel group torch-pruning fails to build (once per `prune()` call)."""
    state.ungroupable_checked = True
    try:
        failed = ungroupable_layers(model, example_inputs, CUSTOM_PRUNERS)
    except Exception as exc:
        raise GroupingError(f"torch-pruning cannot trace {type(model).__name__}: {_first_line(exc)}") from None
    state.fixed_names.extend(name for name in failed if name not in state.fixed_names)
    state.kept.reasons.update(failed)


def compact_tensors(model: nn.Module) -> nn.Module:
    """Give every parameter and buffer its own dense, contiguous storage (in place); returns `model`.

    Slicing can leave a tensor as a strided view or sharing a larger storage; such tensors are
    slower to read than the same values freshly laid out, so the pruned model is timed fairly.
    """
    for module in model.modules():
        for key, param in list(module._parameters.items()):
            if param is not None and _needs_compaction(param):
                module._parameters[key] = nn.Parameter(param.detach().clone(memory_format=torch.contiguous_format), param.requires_grad)
        for key, buffer in list(module._buffers.items()):
            if buffer is not None and _needs_compaction(buffer):
                module._buffers[key] = buffer.clone(memory_format=torch.contiguous_format)
    return model


def _needs_compaction(tensor: torch.Tensor) -> bool:
    whole_storage = tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()
    return not tensor.is_contiguous() or not whole_storage or tensor.storage_offset() != 0


def _interpolate(low: float, high: float, root_low: float, root_high: float, root_target: float) -> float:
    """The ratio where the line through (low, root_low), (high, root_high) meets root_target, kept
    at least 10% of the bracket away from its ends so the bracket always shrinks."""
    if root_low <= root_high:
        return (low + high) / 2
    guess = low + (root_low - root_target) * (high - low) / (root_low - root_high)
    margin = 0.1 * (high - low)
    return min(max(guess, low + margin), high - margin)


def prune_to_fraction(
    model: nn.Module,
    example_inputs: torch.Tensor,
    criterion: Criterion,
    config: PruneConfig,
    target: float,
    reference: float,
    calib_batches: Sequence[tuple[torch.Tensor, torch.Tensor]] = (),
    ratio_dict_fn: Callable[[nn.Module, float], dict[nn.Module, float]] | None = None,
    state: PruneState | None = None,
) -> tuple[nn.Module, float]:
    """Prune a copy of `model` until its MACs/params are closest to `target` x `reference`; returns (pruned, ratio)."""
    budget, _ = config.budget
    input_size = tuple(example_inputs.shape[1:])
    state = state if state is not None else PruneState.for_model(model, example_inputs)

    def attempt(ratio: float) -> nn.Module:
        return prune_checked(model, example_inputs, criterion, ratio, config, state, calib_batches, ratio_dict_fn)

    if budget == "channel_ratio":
        ratio = 1.0 - target
        return attempt(ratio), ratio
    # Channel counts are integers, so kept MACs move in steps: bracket the target and return
    # whichever side lands closer to it.
    # MACs and params shrink roughly with the square of the kept width, so sqrt(kept) is close to
    # linear in the ratio: interpolating it inside the bracket needs a few trials where halving
    # the bracket needs ten (each trial traces, prunes and counts a full copy).
    low, high = 0.0, config.max_layer_ratio
    root_low = math.sqrt(_measure(model, input_size, budget) / reference)
    root_high = root_low * (1.0 - high)  # an estimate until `high` is tried
    # Mixing sets per-layer ratios itself: not with a caller's per-layer ratios or one global ranking.
    mixing = ratio_dict_fn is None and not config.global_pruning
    under: tuple[float, nn.Module, float] | None = None  # (kept, model, ratio) with kept <= target
    over: tuple[float, nn.Module, float] | None = None
    for _ in range(BISECTION_STEPS):
        ratio = _interpolate(low, high, root_low, root_high, math.sqrt(target))
        candidate = attempt(ratio)
        kept = _measure(candidate, input_size, budget) / reference
        if kept > target:
            low, root_low, over = ratio, math.sqrt(kept), (kept, candidate, ratio)
        else:
            high, root_high, under = ratio, math.sqrt(kept), (kept, candidate, ratio)
        if abs(kept - target) < 0.002 or high - low < 1e-4:
            break
        if mixing and under is not None and over is not None and high - low < MIXING_BRACKET:
            break
    if mixing and under is not None and over is not None and min(over[0] - target, target - under[0]) > MIXING_TOLERANCE:
        under, over = _mix_bracket_ratios(model, example_inputs, criterion, config, target, reference, calib_batches, state, under, over)
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


Trial = tuple[float, nn.Module, float]  # (kept fraction, pruned model, channel ratio)


def _mix_bracket_ratios(
    model: nn.Module,
    example_inputs: torch.Tensor,
    criterion: Criterion,
    config: PruneConfig,
    target: float,
    reference: float,
    calib_batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    state: PruneState,
    under: Trial,
    over: Trial,
) -> tuple[Trial, Trial]:
    """(under, over) after giving the first k prunable layers the bracket's higher ratio and the rest its lower one.

    Kept MACs only fall as k grows (each group's ratio is one of its layers'), so k is bisected;
    each step moves one layer's group, far finer than the jump a uniform ratio makes. The ratio
    reported for a mixed model is the mean over the layers.
    """
    low, high = over[2], under[2]
    input_size = tuple(example_inputs.shape[1:])
    layers = [name for name, module in model.named_modules() if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear))]

    def first_layers_higher(count: int) -> Callable[[nn.Module, float], dict[nn.Module, float]]:
        def ratio_dict(candidate: nn.Module, ratio: float) -> dict[nn.Module, float]:
            modules = dict(candidate.named_modules())
            return {modules[name]: (high if index < count else low) for index, name in enumerate(layers)}

        return ratio_dict

    fewer, more = 0, len(layers)  # layers at the higher ratio: `fewer` keeps more than the target, `more` less
    while more - fewer > 1 and abs(under[0] - target) >= 0.002 and abs(over[0] - target) >= 0.002:
        count = (fewer + more) // 2
        candidate = prune_checked(model, example_inputs, criterion, low, config, state, calib_batches, first_layers_higher(count))
        kept = _measure(candidate, input_size, config.budget[0]) / reference
        trial = (kept, candidate, low + (high - low) * count / len(layers))
        if kept > target:
            fewer, over = count, trial
        else:
            more, under = count, trial
    return under, over


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
    resolve_ignored(model, config.ignore_layers)  # unknown names fail before any work
    state = PruneState.for_model(model, example_inputs)
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
            model, ratio = prune_to_fraction(model, example_inputs, criterion, config, step_target, 1.0, calib, ratio_dict_fn, state)
        else:
            step_target = fraction ** (step / config.iterative_steps)
            model, ratio = prune_to_fraction(model, example_inputs, criterion, config, step_target, reference, calib, ratio_dict_fn, state)
        ratios.append(ratio)
        if between_steps and step < config.iterative_steps:
            between_steps(model, step)
    return PruneResult(
        model, params_before, count_params(model), macs_before, count_macs(model, input_size), ratios, state.kept.describe()
    )

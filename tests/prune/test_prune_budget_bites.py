"""The MACs-budget bisection on a synthetic step function: it must return the side of the target that lands closer."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from slimvision.errors import ConfigError
from slimvision.prune import pruner
from slimvision.prune.pruner import PruneConfig, prune_to_fraction

REFERENCE_MACS = 1000.0
EXAMPLE = torch.zeros(1, 1, 4, 4)
SOURCE = nn.Linear(2, 2)
CRITERION, CALIB, STATE = object(), [(torch.zeros(1), torch.zeros(1))], object()


def RATIO_FN(model, ratio):  # noqa: N802 - a sentinel the bisection must pass through
    return {}


class _Pruned(nn.Module):
    def __init__(self, kept: float):
        super().__init__()
        self.kept = kept


@pytest.fixture
def calls(monkeypatch):
    """Removing a fraction r of channels keeps 1 - floor(10 r) / 10 of REFERENCE_MACS (channels are integers)."""
    seen: list[tuple] = []

    def prune_checked(candidate, example, criterion, ratio, config, state, calib, ratio_dict_fn):
        seen.append((candidate, example, criterion, ratio, config, state, calib, ratio_dict_fn))
        return _Pruned(1.0 - math.floor(10 * ratio + 1e-9) / 10)

    def measure(model, input_size, budget):
        assert input_size == (1, 4, 4) and budget == "macs_ratio"
        return getattr(model, "kept", 1.0) * REFERENCE_MACS  # the unpruned source keeps everything

    monkeypatch.setattr(pruner, "prune_checked", prune_checked)
    monkeypatch.setattr(pruner, "_measure", measure)
    return seen


def _kept(target: float, **config) -> tuple[float, float]:
    config = PruneConfig(macs_ratio=target, ignore_layers=("fc",), **config)
    model, ratio = prune_to_fraction(SOURCE, EXAMPLE, CRITERION, config, target, REFERENCE_MACS, CALIB, RATIO_FN, state=STATE)
    return model.kept, ratio


@pytest.mark.parametrize("target, closest", [(0.52, 0.5), (0.58, 0.6), (0.31, 0.3), (0.69, 0.7)])
def test_bisection_returns_the_step_closest_to_the_target(calls, target, closest):
    kept, ratio = _kept(target)
    assert kept == pytest.approx(closest)
    assert 1.0 - math.floor(10 * ratio + 1e-9) / 10 == pytest.approx(closest)  # the ratio reported is the one that produced it


def test_every_trial_prunes_with_the_callers_settings(calls):
    _kept(0.52)
    assert calls
    for candidate, example, criterion, _, config, state, calib, ratio_fn in calls:
        assert candidate is SOURCE  # prune_checked copies it: the caller's model is never pruned in place
        assert example is EXAMPLE and criterion is CRITERION and calib is CALIB and ratio_fn is RATIO_FN and state is STATE
        assert isinstance(config, PruneConfig) and config.ignore_layers == ("fc",)


def test_an_exact_hit_stops_the_search(calls):
    assert _kept(0.5)[0] == pytest.approx(0.5)
    kept = [1.0 - math.floor(10 * c[3] + 1e-9) / 10 for c in calls]
    assert kept[-1] == pytest.approx(0.5) and all(k != pytest.approx(0.5) for k in kept[:-1])  # no trial after the hit
    assert len(calls) < pruner.BISECTION_STEPS


def test_a_target_above_every_step_keeps_the_closest_from_below(calls):
    assert _kept(1.0)[0] == pytest.approx(1.0)


def test_the_highest_ratio_is_accepted_within_five_percent(calls):
    # max ratio 0.5 keeps 0.5; target 0.49 is within 5% of it (0.49 * 1.05 = 0.5145)
    assert _kept(0.49, max_layer_ratio=0.5)[0] == pytest.approx(0.5)


def test_unreachable_target_names_the_budget(calls):
    # max ratio 0.5 keeps 0.5 > 0.4 * 1.05
    with pytest.raises(ConfigError, match="--macs-ratio 0.400 is not reachable"):
        _kept(0.4, max_layer_ratio=0.5)


def test_channel_ratio_budget_removes_that_fraction_directly(calls):
    config = PruneConfig(channel_ratio=0.3)
    model, ratio = prune_to_fraction(SOURCE, EXAMPLE, CRITERION, config, 0.7, 1.0, CALIB, RATIO_FN, state=STATE)
    assert ratio == pytest.approx(0.3) and model.kept == pytest.approx(0.7) and len(calls) == 1 and calls[0][3] == pytest.approx(0.3)

"""The MACs-budget bisection on a synthetic step function: it must return the side of the target that lands closer."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from slimvision.errors import ConfigError
from slimvision.prune import pruner
from slimvision.prune.pruner import PruneConfig, prune_to_fraction


class _Pruned(nn.Module):
    def __init__(self, kept: float):
        super().__init__()
        self.kept = kept


@pytest.fixture
def steps_of_a_tenth(monkeypatch):
    """Removing a fraction r of channels keeps 1 - floor(10 r) / 10 of the MACs (channels are integers)."""

    def prune_once(candidate, example, criterion, ratio, *args):
        return _Pruned(1.0 - math.floor(10 * ratio + 1e-9) / 10)

    monkeypatch.setattr(pruner, "prune_once", prune_once)
    monkeypatch.setattr(pruner, "_measure", lambda model, input_size, budget: model.kept)


def _kept(target: float, **config) -> tuple[float, float]:
    model, ratio = prune_to_fraction(nn.Identity(), torch.zeros(1, 1, 4, 4), None, PruneConfig(macs_ratio=target, **config), target, 1.0)
    return model.kept, ratio


@pytest.mark.parametrize("target, closest", [(0.52, 0.5), (0.58, 0.6), (0.31, 0.3), (0.69, 0.7)])
def test_bisection_returns_the_step_closest_to_the_target(steps_of_a_tenth, target, closest):
    kept, ratio = _kept(target)
    assert kept == pytest.approx(closest)
    assert 1.0 - math.floor(10 * ratio + 1e-9) / 10 == pytest.approx(closest)  # the ratio reported is the one that produced it


def test_unreachable_target_names_the_budget(steps_of_a_tenth):
    with pytest.raises(ConfigError, match="--macs-ratio 0.050 is not reachable"):
        _kept(0.05, max_layer_ratio=0.5)

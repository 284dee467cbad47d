"""ModelEMA: the update rule checked by hand, with and without the warm-up."""

import pytest
import torch.nn as nn

from slimvision.train import ModelEMA


def _scalar_model(value: float) -> nn.Module:
    model = nn.Linear(1, 1, bias=False)
    nn.init.constant_(model.weight, value)
    return model


@pytest.mark.parametrize("warmup, expected", [(False, [0.003, 0.008997]), (True, [1.5, 3.0])])
def test_ema_follows_weights_zero_three_six_by_hand(warmup, expected):
    model = _scalar_model(0.0)
    ema = ModelEMA(model, decay=0.999, warmup=warmup)
    seen = []
    for value in (3.0, 6.0):
        nn.init.constant_(model.weight, value)
        ema.update(model)
        seen.append(ema.module.weight.item())
    # no warm-up: 0.001 * 3, then 0.999 * 0.003 + 0.001 * 6; warm-up: the mean of (0, 3), then of (0, 3, 6)
    assert seen == pytest.approx(expected, rel=1e-5)


def test_warmed_up_decay_reaches_the_set_decay_and_stays():
    model = _scalar_model(1.0)
    ema = ModelEMA(model, decay=0.9, warmup=True)
    for _ in range(20):
        ema.update(model)
    nn.init.constant_(model.weight, 11.0)
    ema.update(model)  # the 21st update: min(0.9, 1 - 1/22) = 0.9
    assert ema.module.weight.item() == pytest.approx(0.9 * 1.0 + 0.1 * 11.0)

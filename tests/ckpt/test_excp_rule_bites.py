"""The official ExCP keep rule on hand-worked tensors: lower median (even count), f = min(2.5, alpha / sqrt(mean v))."""

from __future__ import annotations

import numpy as np
import pytest

from slimvision.ckpt.excp import lower_median, momentum_mask, official_weight_mask

# |r| = 1, 2, 4, 5, 6, 30: lower median 4, midpoint median 5, mean 8; signs mixed
RESIDUAL = np.array([1.0, -2.0, 4.0, -5.0, 6.0, -30.0], dtype=np.float32)
ALPHA = 5e-5


def _second_moment(scale: float) -> np.ndarray:
    """v whose mean is (alpha / scale)^2 but whose elements differ (a per-element rule would see that)."""
    mean_v = (ALPHA / scale) ** 2
    return (mean_v * np.array([0.5, 1.5, 1.0, 1.0, 2.0, 0.0])).astype(np.float64)


def test_lower_median_of_an_even_count_is_the_lower_middle_value():
    assert lower_median(np.abs(RESIDUAL)) == 4.0
    assert lower_median(np.array([3.0, 1.0, 2.0])) == 2.0
    assert lower_median(np.zeros(0)) == 0.0


def test_adam_scale_is_alpha_over_root_mean_v():
    keep, scale = official_weight_mask(RESIDUAL, _second_moment(1.2), ALPHA)
    assert scale == pytest.approx(1.2, rel=1e-6)
    # threshold 1.2 * 4 = 4.8: keeps 5, 6, 30 (midpoint median -> 6.0 keeps 30 only; mean -> 9.6 keeps 30 only;
    # an inverted scale 1/1.2 -> 3.33 also keeps 4)
    assert keep.tolist() == [False, False, False, True, True, True]


def test_adam_scale_is_capped_at_two_and_a_half():
    keep, scale = official_weight_mask(RESIDUAL, _second_moment(40.0), ALPHA)
    assert scale == pytest.approx(2.5)
    assert keep.tolist() == [False, False, False, False, False, True]  # threshold 10


def test_small_scale_keeps_everything_above_a_fraction_of_the_median():
    keep, scale = official_weight_mask(RESIDUAL, _second_moment(0.3), ALPHA)
    assert scale == pytest.approx(0.3, rel=1e-6)
    assert keep.tolist() == [False, True, True, True, True, True]  # threshold 1.2


def test_without_second_moment_the_scale_is_the_cap():
    keep, scale = official_weight_mask(RESIDUAL, None, ALPHA)
    assert scale == 2.5 and keep.tolist() == [False, False, False, False, False, True]


def test_momentum_kept_above_beta_mean_and_only_where_the_weight_was_kept():
    momentum = np.array([0.1, -5.0, 0.2, 3.0, -0.1, 0.6])  # mean |m| = 1.5; beta 1.5 -> threshold 2.25
    weight_kept = np.array([True, False, True, True, True, True])
    assert momentum_mask(momentum, weight_kept, 1.5).tolist() == [False, False, False, True, False, False]
    assert momentum_mask(momentum, np.ones(6, bool), 0.3).tolist() == [False, True, False, True, False, True]  # threshold 0.45


def test_all_zero_second_moment_falls_back_to_the_cap():
    keep, scale = official_weight_mask(RESIDUAL, np.zeros(6), ALPHA)
    assert scale == 2.5 and keep.tolist() == [False, False, False, False, False, True]


def test_a_residual_equal_to_the_threshold_is_dropped():
    # |r| = 2, 2, 2, 5 with f = 2.5 (no v): threshold 2.5 * 2 = 5, and 5 is not above it
    keep, _ = official_weight_mask(np.array([2.0, -2.0, 2.0, 5.0]), None, ALPHA)
    assert keep.tolist() == [False, False, False, False]
    assert momentum_mask(np.array([1.0, 1.0, 4.0, 2.0]), np.ones(4, bool), 1.0).tolist() == [False, False, True, False]  # mean 2: 2 is not above


def test_lower_median_flattens_a_multi_dimensional_tensor():
    assert lower_median(np.array([[5.0, 1.0], [3.0, 2.0]])) == 2.0


def test_mean_of_v_is_accumulated_in_float64():
    # float32 v (as checkpoints store it): a float32 mean moves f in the 8th digit, enough to flip a residual placed
    # between the two thresholds; the rule uses the float64 mean so the mask does not depend on summation order
    rng = np.random.default_rng(1)
    v = (rng.random(10001).astype(np.float32) * np.float32(2 * (ALPHA / 1.2) ** 2)).astype(np.float32)
    scale64 = ALPHA / np.sqrt(np.mean(v, dtype=np.float64))
    scale32 = ALPHA / float(np.sqrt(np.mean(v)))
    assert scale64 != scale32
    between = (scale64 + scale32) / 2
    residual = np.concatenate([np.ones(10000), [between]])
    keep, scale = official_weight_mask(residual, v, ALPHA)
    assert scale == pytest.approx(scale64, rel=1e-12)
    assert bool(keep[-1]) == (between > scale64)

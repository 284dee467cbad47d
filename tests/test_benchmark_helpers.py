"""The statistics the benchmark pages print next to every difference, checked by hand."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from _common import difference, per_seed  # noqa: E402


def test_difference_is_in_points_with_the_welch_standard_error():
    # variances 0.0002 (n=2) and 0 (n=3): s.e. = sqrt(0.0002 / 2) = 0.01, i.e. 1 point
    assert difference([0.90, 0.92], [0.88, 0.88, 0.88]) == "+3.00 ± 1.00"
    # both sides vary: sqrt(0.02 / 2 + 0.005 / 2) = 0.1118
    assert difference([0.6, 0.8], [0.55, 0.65]) == "+10.00 ± 11.18"


def test_a_single_baseline_run_adds_no_variance():
    assert difference([0.6, 0.8], [0.5]) == "+20.00 ± 10.00"


def test_per_seed_lists_every_value():
    assert per_seed([0.4252, 0.9029, 0.9078]) == "0.4252 / 0.9029 / 0.9078"

"""The helpers behind the benchmark pages: their statistics, checked by hand, and the record a resumed study keeps."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from _common import conditions_markdown, cpu_model, difference, per_seed, recorded_cpus, resumable  # noqa: E402


def test_difference_is_in_points_with_the_welch_standard_error():
    # variances 0.0002 (n=2) and 0 (n=3): s.e. = sqrt(0.0002 / 2) = 0.01, i.e. 1 point
    assert difference([0.90, 0.92], [0.88, 0.88, 0.88]) == "+3.00 ± 1.00"
    # both sides vary: sqrt(0.02 / 2 + 0.005 / 2) = 0.1118
    assert difference([0.6, 0.8], [0.55, 0.65]) == "+10.00 ± 11.18"


def test_a_single_baseline_run_adds_no_variance():
    assert difference([0.6, 0.8], [0.5]) == "+20.00 ± 10.00"


def test_per_seed_lists_every_value():
    assert per_seed([0.4252, 0.9029, 0.9078]) == "0.4252 / 0.9029 / 0.9078"


def test_a_resumed_study_records_which_cpu_computed_each_run(tmp_path):
    (tmp_path / "finished.jsonl").write_text('{"key": "old", "result": 0.5}\n')  # recorded before the CPU was kept
    calls = []
    assert resumable(tmp_path, "new", lambda: calls.append(1) or 0.75) == 0.75
    assert resumable(tmp_path, "new", lambda: calls.append(1) or 0.0) == 0.75  # recorded: not computed again
    assert resumable(tmp_path, "old", lambda: calls.append(1) or 0.0) == 0.5
    assert calls == [1]
    assert recorded_cpus(tmp_path) == {"not recorded": 1, cpu_model(): 1}


def test_conditions_list_a_mapping_on_one_line():
    assert conditions_markdown({"cpu": "x", "runs by cpu": {"A": 3, "B": 2}}) == ["## Conditions", "", "- cpu: x", "- runs by cpu: A: 3; B: 2", ""]

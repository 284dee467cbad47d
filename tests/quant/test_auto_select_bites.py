"""`select_deployment` verdicts and boundaries worked out by hand from given latencies and accuracies (no real runtime)."""

from __future__ import annotations

import numpy as np
import pytest

from slimvision.quant.select import Candidate, SelectionConfig, select_deployment

LABELS = np.arange(100) % 10


class _Runtime:
    """Latency and top-1 set by the test; `fails` makes every run raise (a runtime that builds but cannot run)."""

    def __init__(self, name: str, ms: float, accuracy: float = 1.0, fails: bool = False):
        self.name, self.ms, self.fails, self.runs = name, ms, fails, 0
        self.predictions = LABELS.copy()
        wrong = int(round((1 - accuracy) * len(LABELS)))
        self.predictions[:wrong] = (LABELS[:wrong] + 1) % 10

    def run(self, batch):
        self.runs += 1
        if self.fails:
            raise RuntimeError("bad shape")
        return np.zeros((len(batch), 10), np.float32)


def _select(specs: dict, limit: float = 0.01, **config):
    """{name: ms or (ms, accuracy) or a make() callable} -> (winner name, verdicts by name, runtimes, timer calls)."""
    calls = []

    def clock(runtime, batch, warmup, repeats, min_total_ms=0.0):
        calls.append((runtime.name, batch.shape, batch.dtype, warmup, repeats, min_total_ms))
        return runtime.ms

    candidates = []
    for name, spec in specs.items():
        if callable(spec):
            make = spec
        else:
            ms, accuracy = spec if isinstance(spec, tuple) else (spec, 1.0)
            make = lambda name=name, ms=ms, accuracy=accuracy: _Runtime(name, ms, accuracy)  # noqa: E731
        candidates.append(Candidate(*name.split(), make))
    winner, verdicts, runtimes = select_deployment(
        candidates, lambda runtime: runtime.predictions, LABELS, LABELS, limit, (1, 4, 4), SelectionConfig(**config), timer=clock,
    )
    return winner.name if winner else None, {v.name: v for v in verdicts}, runtimes, calls


def test_every_verdict_says_why_in_numbers_worked_out_by_hand():
    # bar: onnxruntime int8 at 4 ms; 1.5 x 4 = 6: openvino fp32 at exactly 6 stays (the cut is strictly above), 10 is cut
    winner, verdicts, _, _ = _select({"onnxruntime fp32": 10.0, "openvino fp32": 6.0, "onnxruntime int8": 4.0, "openvino int8": 5.0})
    assert winner == "onnxruntime int8"
    assert verdicts["onnxruntime int8"].reason == "4.00 ms, fastest within the accuracy limit (1.25x faster than openvino int8, 1.50x faster than openvino fp32)"
    assert verdicts["openvino int8"].reason == "5.00 ms, 1.25x the chosen onnxruntime int8 (4.00 ms)"
    assert verdicts["openvino fp32"].status == "slower" and verdicts["openvino fp32"].reason == "6.00 ms, 1.50x the chosen onnxruntime int8 (4.00 ms)"
    assert verdicts["onnxruntime fp32"].status == "pruned"
    assert verdicts["onnxruntime fp32"].reason == "screening round: fastest pass 10.00 ms, 2.50x onnxruntime int8's median pass (4.00 ms) > 1.5x"


def test_fp32_kept_over_a_marginally_faster_int8_says_by_how_much():
    winner, verdicts, _, _ = _select({"openvino fp32": 10.0, "openvino int8": 9.9})
    assert winner == "openvino fp32"
    assert verdicts["openvino fp32"].reason == "10.00 ms, the fastest fp32; openvino int8 is only 1.0% faster, below the margin, so the exact model is kept"
    assert verdicts["openvino int8"].reason == "9.90 ms, 0.99x the chosen openvino fp32 (10.00 ms): less than 3% faster than fp32, so the exact model is kept"


def test_int8_as_fast_as_fp32_is_not_called_faster():
    winner, verdicts, _, _ = _select({"onnxruntime fp32": 5.0, "onnxruntime int8": 5.0})
    assert winner == "onnxruntime fp32"
    assert verdicts["onnxruntime fp32"].reason == "5.00 ms, fastest within the accuracy limit (1.00x faster than onnxruntime int8)"
    assert verdicts["onnxruntime int8"].reason == "5.00 ms, 1.00x the chosen onnxruntime fp32 (5.00 ms)"


def test_int8_exactly_at_the_margin_wins():
    winner, _, _, _ = _select({"onnxruntime fp32": 4.0, "onnxruntime int8": 3.0}, min_gain=0.25)  # 3.0 <= 0.75 x 4.0
    assert winner == "onnxruntime int8"
    winner, _, _, _ = _select({"onnxruntime fp32": 4.0, "onnxruntime int8": 3.01}, min_gain=0.25)
    assert winner == "onnxruntime fp32"


def test_inaccurate_candidate_reason_names_the_drop_and_the_limit():
    winner, verdicts, _, _ = _select({"onnxruntime fp32": 5.0, "openvino int8": (1.0, 0.95)})
    assert winner == "onnxruntime fp32" and verdicts["onnxruntime fp32"].reason == "5.00 ms, the only candidate left"
    assert verdicts["openvino int8"].reason == "top-1 0.9500 is 5.0 points below fp32 1.0000 (limit 1.0)"


def test_every_candidate_past_the_cut_is_pruned_not_only_the_first():
    winner, verdicts, _, _ = _select({"onnxruntime int8": 1.0, "onnxruntime fp32": 2.0, "openvino fp32": 3.0})
    assert winner == "onnxruntime int8"
    assert verdicts["onnxruntime fp32"].status == verdicts["openvino fp32"].status == "pruned"


def test_timer_gets_the_batch_and_budgets_of_the_config():
    config = dict(batch_size=3, screen_rounds=2, screen_repeats=2, screen_ms=10.0, rounds=2, repeats=3, round_ms=7.0, warmup=2)
    _, _, runtimes, calls = _select({"onnxruntime fp32": 5.0, "onnxruntime int8": 4.0}, **config)
    shape = (3, 1, 4, 4)
    screening, rounds = calls[:4], calls[4:]
    # screening: no warm-up (done at build), 10 ms spread over 2 passes; rounds: one warm-up call, 7 ms each
    assert [c[1:] for c in screening] == [(shape, np.float32, 0, 2, 5.0)] * 4
    assert [c[1:] for c in rounds] == [(shape, np.float32, 1, 3, 7.0)] * 4
    assert [c[0] for c in rounds] == ["onnxruntime int8", "onnxruntime fp32", "onnxruntime fp32", "onnxruntime int8"]  # order rotated
    assert all(runtime.runs == 2 for runtime in runtimes.values())  # the build's warm-up calls


def test_a_runtime_that_builds_but_cannot_run_is_dropped_with_its_error():
    winner, verdicts, runtimes, calls = _select({
        "openvino int8": lambda: _Runtime("openvino int8", 1.0, fails=True), "onnxruntime fp32": 5.0,
        "onnxruntime int8": lambda: (_ for _ in ()).throw(RuntimeError()),
    })
    assert winner == "onnxruntime fp32" and set(runtimes) == {"onnxruntime fp32"}
    assert verdicts["openvino int8"].status == "failed" and verdicts["openvino int8"].reason == "RuntimeError: bad shape"
    assert verdicts["onnxruntime int8"].reason == "RuntimeError: "  # an error without a message still names its type
    assert {c[0] for c in calls} == {"onnxruntime fp32"}
    assert verdicts["openvino int8"].build_s is None and 0.0 <= verdicts["onnxruntime fp32"].build_s < 60.0


@pytest.mark.parametrize("limit, status", [(0.05, "slower"), (0.0499, "inaccurate")])
def test_accuracy_limit_boundary_is_inclusive(limit, status):
    _, verdicts, _, _ = _select({"onnxruntime fp32": 5.0, "openvino int8": (4.9, 0.95)}, limit=limit)
    assert verdicts["openvino int8"].status == status


def test_reasons_print_the_margin_and_the_limit_as_percent_and_points():
    winner, verdicts, _, _ = _select({"onnxruntime fp32": 10.0, "onnxruntime int8": 8.0, "openvino int8": (1.0, 0.5)}, limit=0.2, min_gain=0.6)
    assert winner == "onnxruntime fp32"  # 8 ms is 20% faster, short of the 60% margin
    assert verdicts["onnxruntime fp32"].reason == "10.00 ms, the fastest fp32; onnxruntime int8 is only 20.0% faster, below the margin, so the exact model is kept"
    assert verdicts["onnxruntime int8"].reason == "8.00 ms, 0.80x the chosen onnxruntime fp32 (10.00 ms): less than 60% faster than fp32, so the exact model is kept"
    assert verdicts["openvino int8"].reason == "top-1 0.5000 is 50.0 points below fp32 1.0000 (limit 20.0)"


def test_the_fastest_fp32_is_the_fastest_not_the_first_by_name():
    # "onnxruntime fp32" sorts before "openvino fp32" but is slower: the winner's reason compares with openvino fp32 only
    winner, verdicts, _, _ = _select({"onnxruntime fp32": 6.0, "openvino fp32": 5.0, "onnxruntime int8": 4.0})
    assert winner == "onnxruntime int8"
    assert verdicts["onnxruntime int8"].reason == "4.00 ms, fastest within the accuracy limit (1.25x faster than openvino fp32)"

"""The fixed-backend rows of `quantize` are timed in interleaved rounds, not one runtime after the other."""

import itertools

import numpy as np
import pytest
import torch

from slimvision.quant import export_onnx
from slimvision.quant.runtimes import OrtRuntime, interleaved_latency_ms, interleaved_order, interleaved_rounds_ms, paired_ratio


class RecordingRuntime:
    def __init__(self, name: str, calls: list):
        self.name, self.calls = name, calls

    def run(self, batch):
        self.calls.append(self.name)
        return np.zeros((len(batch), 2), np.float32)


def test_every_runtime_is_timed_in_every_round_in_rotated_and_reversed_order():
    calls: list = []
    runtimes = [RecordingRuntime(name, calls) for name in "abc"]
    latencies = interleaved_latency_ms(runtimes, (1, 2, 2), batch_sizes=(1,), warmup=1, repeats=8, rounds=4)
    assert [sorted(latency) for latency in latencies] == [["1"]] * 3
    timed = calls[3:]  # after one warm-up call each
    rounds = [timed[i : i + 6] for i in range(0, len(timed), 6)]  # 3 runtimes x 2 calls per round
    assert len(rounds) == 4
    assert [r[::2] for r in rounds] == [["a", "b", "c"], ["c", "b", "a"], ["b", "c", "a"], ["a", "c", "b"]]


@pytest.mark.parametrize("count", [2, 3, 5])
def test_no_runtime_always_runs_right_after_the_same_other_one(count):
    """A runtime whose threads stay busy after its call slows whatever runs next: that must not always be the same runtime."""
    items = list(range(count))
    rounds = [interleaved_order(items, round_index) for round_index in range(4)]
    assert all(sorted(order) == items for order in rounds)
    for item in items:  # within rounds (between rounds a runtime's warm-up call may sit in between)
        predecessors = {order[i - 1] for order in rounds for i in range(1, count) if order[i] == item}
        assert len(predecessors) >= min(2, count - 1), (item, rounds)


def test_onnxruntime_sessions_do_not_spin_wait(tmp_path):
    """Spinning worker threads keep the cores busy after a call and slow the next runtime timed in the process."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()
    path = export_onnx(model, (1, 2, 2), tmp_path / "tiny.onnx")
    options = OrtRuntime(path, threads=2).session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"


def test_rounds_are_kept_per_runtime_and_paired_ratios_compare_runtimes_within_a_round():
    calls: list = []
    runtimes = [RecordingRuntime(name, calls) for name in "ab"]
    rounds = interleaved_rounds_ms(runtimes, (1, 2, 2), batch_sizes=(1, 2), warmup=0, repeats=6, rounds=3)
    assert [sorted(per_batch) for per_batch in rounds] == [["1", "2"]] * 2
    assert all(len(values) == 3 for per_batch in rounds for values in per_batch.values())
    # a burst of load slows both runtimes of round 2 fourfold: the ratio within each round stays 2
    assert paired_ratio([2.0, 8.0, 2.0], [1.0, 4.0, 1.0]) == 2.0
    # a load that began between b's and a's turns of round 2: the medians (8 vs 1) say 8x, the rounds 2x
    a, b = [2.0, 8.0, 8.0], [1.0, 1.0, 4.0]
    assert paired_ratio(a, b) == 2.0 and float(np.median(a) / np.median(b)) == 8.0


def test_a_minimum_round_time_warms_each_turn_and_times_enough_calls(monkeypatch):
    """Sub-millisecond models: a turn of a few calls right after another runtime measures a cold start."""
    import types

    from slimvision.quant import runtimes as runtimes_module

    clock = [0.0]
    monkeypatch.setattr(runtimes_module, "time", types.SimpleNamespace(perf_counter=lambda: clock[0]))

    class TwoMilliseconds(RecordingRuntime):
        def run(self, batch):
            clock[0] += 0.002
            return super().run(batch)

    calls: list = []
    runtimes = [TwoMilliseconds(name, calls) for name in "ab"]
    rounds = interleaved_rounds_ms(runtimes, (1, 2, 2), batch_sizes=(1,), warmup=0, repeats=2, rounds=2, min_round_ms=10.0)
    runs = [len(list(group)) for _, group in itertools.groupby(calls)]
    # turns a, b | b, a (the second round is reversed, so b's two turns are back to back); each turn is one
    # untimed call plus 10 ms / 2 ms = 5 timed ones
    assert runs == [6, 12, 6]
    assert all(values == pytest.approx([2.0, 2.0]) for per_batch in rounds for values in per_batch.values())

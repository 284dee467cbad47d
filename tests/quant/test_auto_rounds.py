"""`auto`'s interleaved rounds stop early only when the order cannot change, and the selection reports where its time went."""

import itertools

import numpy as np

from slimvision.quant.select import Candidate, SelectionConfig, select_deployment

LABELS = np.arange(50) % 10


class FakeRuntime:
    def __init__(self, latencies):
        self.latencies = latencies  # an iterator of ms, one per timed call of the selection

    def run(self, batch):
        return np.zeros((len(batch), 10), np.float32)


def _select(latencies: dict[str, list[float]], **config):
    """(verdicts by name, phases) with each candidate's timer returning the given latencies in turn (cycled)."""
    candidates = [Candidate(*name.split(), (lambda values=values: FakeRuntime(itertools.cycle(values)))) for name, values in latencies.items()]
    phases: dict = {}
    _, verdicts, _ = select_deployment(
        candidates, lambda runtime: LABELS, LABELS, LABELS, 0.01, (1, 4, 4), SelectionConfig(**config),
        timer=lambda runtime, batch, warmup, repeats, min_total_ms=0.0: next(runtime.latencies), phases=phases,
    )
    return {v.name: v for v in verdicts}, phases


def test_rounds_stop_after_the_minimum_when_the_fastest_won_every_round():
    verdicts, phases = _select({"onnxruntime fp32": [10.0], "onnxruntime int8": [5.0]}, rounds=7, min_rounds=3, prune_ratio=10.0)
    assert [len(v.round_ms) for v in verdicts.values()] == [3, 3]
    assert verdicts["onnxruntime int8"].status == "chosen"
    assert set(phases) == {"build_s", "screen_s", "accuracy_s", "rounds_s"} and all(v >= 0 for v in phases.values())


def test_rounds_run_to_the_end_when_the_candidates_overlap():
    # int8 is faster in the median but lost one round in three: the order is not settled, every round runs
    verdicts, _ = _select({"onnxruntime fp32": [10.0, 10.0, 10.0], "onnxruntime int8": [5.0, 5.0, 12.0]}, rounds=7, min_rounds=3, prune_ratio=10.0)
    assert [len(v.round_ms) for v in verdicts.values()] == [7, 7]
    assert verdicts["onnxruntime int8"].status == "chosen"


def test_one_burst_in_the_bars_screening_does_not_shield_a_hopeless_candidate():
    # onnxruntime int8's second screening pass was caught in a burst of other load (measured at batch 1 under load)
    verdicts, _ = _select({"onnxruntime int8": [0.25, 38.6, 0.25], "openvino fp32": [4.0]})
    assert verdicts["openvino fp32"].status == "pruned" and verdicts["openvino fp32"].accuracy is None
    assert "median pass (0.25 ms)" in verdicts["openvino fp32"].reason

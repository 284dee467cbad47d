"""`auto` picks the fastest deployment within the accuracy limit, fp32 included, and says why (timing mocked, plus one real run)."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from slimvision.data import get_dataset
from slimvision.quant import QuantConfig, quantize
from slimvision.quant.run import load_quantized_runtime
from slimvision.quant.select import Candidate, SelectionConfig, select_deployment

LABELS = np.arange(100) % 10


class FakeRuntime:
    """A runtime whose latency and accuracy are set by the test."""

    def __init__(self, ms: float, accuracy: float):
        self.ms, self.timed_calls = ms, 0
        wrong = int(round((1 - accuracy) * len(LABELS)))
        self.predictions = LABELS.copy()
        self.predictions[:wrong] = (LABELS[:wrong] + 1) % 10

    def run(self, batch):
        return np.zeros((len(batch), 10), np.float32)


def fake_timer(runtime, batch, warmup, repeats, min_total_ms=0.0):
    runtime.timed_calls += repeats
    return runtime.ms


def select(specs, limit=0.01, **config):
    """Run the selection on {name: (ms, accuracy)} with a mocked timer; returns (winner name, verdicts by name, runtimes)."""
    built = {}

    def maker(name, ms, accuracy):
        def make():
            built[name] = FakeRuntime(ms, accuracy)
            return built[name]

        return make

    candidates = [Candidate(*name.split(), maker(name, ms, acc)) for name, (ms, acc) in specs.items()]
    winner, verdicts, _ = select_deployment(
        candidates, lambda runtime: runtime.predictions, LABELS, LABELS, limit, (1, 4, 4), SelectionConfig(**config), timer=fake_timer,
    )
    return winner.name if winner else None, {v.name: v for v in verdicts}, built


def accurate_named_candidates(latencies):
    """Candidates for {name: ms}, all fully accurate, whose runtimes carry their name (for per-name timers)."""
    def maker(name, ms):
        def make():
            runtime = FakeRuntime(ms, 1.0)
            runtime.name = name
            return runtime

        return make

    return [Candidate(*name.split(), maker(name, ms)) for name, ms in latencies.items()]


def test_fastest_accurate_candidate_wins_and_every_other_says_why():
    winner, verdicts, _ = select({"onnxruntime fp32": (10.0, 1.0), "openvino fp32": (9.0, 1.0), "onnxruntime int8": (7.0, 1.0), "openvino int8": (5.0, 0.95)})
    assert winner == "onnxruntime int8"  # openvino int8 is faster but 5 points off
    assert verdicts["openvino int8"].status == "inaccurate" and "5.0 points below" in verdicts["openvino int8"].reason
    assert verdicts["openvino fp32"].status == "slower" and "1.29x the chosen onnxruntime int8" in verdicts["openvino fp32"].reason
    assert verdicts["onnxruntime int8"].status == "chosen" and "faster than openvino fp32" in verdicts["onnxruntime int8"].reason


def test_int8_slower_than_fp32_is_never_chosen():
    winner, verdicts, _ = select({"onnxruntime fp32": (4.0, 1.0), "openvino fp32": (6.0, 1.0), "onnxruntime int8": (5.0, 1.0), "openvino int8": (4.5, 1.0)})
    assert winner == "onnxruntime fp32"
    assert verdicts["openvino int8"].status == "slower"


def test_int8_only_marginally_faster_than_fp32_keeps_the_exact_model():
    winner, verdicts, _ = select({"openvino fp32": (10.0, 1.0), "openvino int8": (9.9, 0.999)}, limit=0.01)
    assert winner == "openvino fp32" and "below the margin" in verdicts["openvino fp32"].reason
    winner, _, _ = select({"openvino fp32": (10.0, 1.0), "openvino int8": (9.0, 1.0)})
    assert winner == "openvino int8"


def test_accuracy_limit_is_a_hard_limit_even_when_the_inaccurate_one_is_much_faster():
    winner, verdicts, _ = select({"onnxruntime fp32": (10.0, 1.0), "openvino int8": (1.0, 0.98)}, limit=0.01)
    assert winner == "onnxruntime fp32" and verdicts["openvino int8"].status == "inaccurate"
    winner, _, _ = select({"onnxruntime fp32": (10.0, 1.0), "openvino int8": (1.0, 0.98)}, limit=0.03)
    assert winner == "openvino int8"


def test_hopeless_candidates_are_dropped_after_the_short_screening_round():
    winner, verdicts, built = select({"onnxruntime fp32": (10.0, 1.0), "openvino int8": (2.0, 1.0), "onnxruntime int8": (2.1, 1.0)}, rounds=4, min_rounds=4, repeats=5, screen_repeats=1)
    assert winner == "openvino int8"
    assert verdicts["onnxruntime fp32"].status == "pruned" and "5.00x openvino int8's median pass" in verdicts["onnxruntime fp32"].reason
    assert built["onnxruntime fp32"].timed_calls == 3 and verdicts["onnxruntime fp32"].accuracy is None  # 3 screening passes, no evaluation
    assert built["onnxruntime int8"].timed_calls == 3 + 4 * 5 and len(verdicts["onnxruntime int8"].round_ms) == 4


def test_pruning_is_relative_to_the_fastest_accurate_candidate_not_an_inaccurate_one():
    winner, verdicts, _ = select({"openvino int8": (1.0, 0.5), "onnxruntime int8": (3.0, 1.0), "onnxruntime fp32": (4.0, 1.0)})
    assert winner == "onnxruntime int8"  # 3x the inaccurate one, but it must not be pruned by it
    assert verdicts["openvino int8"].status == "inaccurate" and verdicts["onnxruntime fp32"].status == "slower"


def test_one_noisy_screening_pass_does_not_prune_a_candidate():
    bursts = {"openvino int8": [50.0, 2.0, 2.0]}  # another job steals the cores during its first screening pass

    def noisy_timer(runtime, batch, warmup, repeats, min_total_ms=0.0):
        runtime.timed_calls += repeats
        queue = bursts.get(runtime.name)
        return queue.pop(0) if queue else runtime.ms

    winner, verdicts, _ = select_deployment(accurate_named_candidates({"openvino int8": 2.0, "onnxruntime fp32": 9.0}), lambda r: r.predictions, LABELS, LABELS, 0.01, (1, 4, 4), timer=noisy_timer)
    assert winner.name == "openvino int8"
    assert verdicts[0].screen_ms == 2.0 and verdicts[0].status == "chosen"


def test_a_lucky_fast_screening_pass_of_the_bar_does_not_prune_the_others():
    bursts = {"openvino bf16": [7.0, 40.0, 40.0]}  # the machine was briefly idle during one of its passes

    def noisy_timer(runtime, batch, warmup, repeats, min_total_ms=0.0):
        queue = bursts.get(runtime.name)
        return queue.pop(0) if queue else runtime.ms

    winner, verdicts, _ = select_deployment(accurate_named_candidates({"openvino bf16": 40.0, "openvino int8": 27.0}), lambda r: r.predictions, LABELS, LABELS, 0.01, (1, 4, 4), timer=noisy_timer)
    assert winner.name == "openvino int8" and verdicts[0].status == "slower"


def test_a_runtime_that_fails_to_build_loses_with_its_error_and_the_rest_still_compete():
    def broken():
        raise RuntimeError("unsupported op Foo\nlong trace")

    candidates = [Candidate("openvino", "int8", broken), Candidate("onnxruntime", "fp32", lambda: FakeRuntime(3.0, 1.0))]
    winner, verdicts, _ = select_deployment(candidates, lambda r: r.predictions, LABELS, LABELS, 0.01, (1, 4, 4), timer=fake_timer)
    assert winner.name == "onnxruntime fp32"
    assert verdicts[0].status == "failed" and verdicts[0].reason == "RuntimeError: unsupported op Foo"


def test_real_auto_run_picks_the_fastest_measured_accurate_deployment_and_saves_it(tmp_path):
    torch.manual_seed(0)
    train, test = get_dataset("digits", "train", 16), get_dataset("digits", "test", 16)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10)).eval()
    result = quantize(model, train, QuantConfig(backend="auto", calib_samples=64, threads=1, batch_size=8), evaluation=test)
    summary = result.summary
    timed = [c for c in summary["candidates"] if c["status"] in ("chosen", "slower")]
    chosen = next(c for c in timed if c["status"] == "chosen")
    assert {c["name"] for c in summary["candidates"]} >= {"onnxruntime fp32", "openvino fp32", "onnxruntime int8", "openvino int8"}
    assert chosen["name"] == summary["deployment"] and chosen["accuracy"] >= summary["accuracy_fp32"] - 0.01
    fastest_fp32 = min((c["latency_ms"] for c in summary["candidates"] if c["precision"] != "int8" and c["latency_ms"] is not None))
    assert chosen["latency_ms"] <= fastest_fp32  # never slower than the fastest fp32 runtime measured in the same run
    assert all(c["reason"] for c in summary["candidates"]) and summary["selection_seconds"] < 60
    out = result.save(tmp_path / "auto")
    runtime, meta = load_quantized_runtime(out, threads=1)
    assert meta["precision"] == result.precision == chosen["precision"] and meta["backend"] == chosen["backend"]
    predictions = runtime.run(test.images[:64].numpy()).argmax(1)
    assert (predictions == model(test.images[:64]).argmax(1).numpy()).mean() > 0.9


def test_auto_batch_size_must_be_positive():
    from slimvision.errors import ConfigError

    with pytest.raises(ConfigError, match="batch-size"):
        QuantConfig(backend="auto", batch_size=0)

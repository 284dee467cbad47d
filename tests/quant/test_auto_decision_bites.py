"""`quantize(backend="auto")` end to end with real runtimes and real accuracies; only the clock is replaced by given latencies.

The decision (screening, accuracy limit, INT8 margin, speed-up, the file saved) runs as in production,
so the expected winner and speed-up can be worked out by hand from the latencies below.
"""

from __future__ import annotations

import functools

import numpy as np

import onnx
import pytest
import torch
import torch.nn as nn

from slimvision.data.base import DataSpec, TensorImageDataset
from slimvision.errors import SlimvisionError
from slimvision.quant import QuantConfig
from slimvision.quant import run as quant_run
from slimvision.quant.select import select_deployment

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

BUILT: dict = {}  # the runtimes the last `_auto` built, by candidate name
SLOW_MS = 100.0  # any candidate the test gives no latency (e.g. OpenVINO bf16 on a CPU that has it)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 5)).eval()


def _sensitive_net() -> nn.Module:
    """INT8 weights ruin its Linear layer (one 1000 per row on a dead feature; see test_qdq_config_bites)."""
    net = _net()
    with torch.no_grad():
        net[2].weight[0] = 0.0
        net[2].bias[0] = -1.0
        net[5].weight[:, 0] = 1000.0
    return net


WRONG = 24  # labels the fp32 net gets wrong: its top-1 is (96 - 24) / 96 = 0.75, so accuracy (vs labels) and agreement (vs fp32) differ


def _evaluation(net: nn.Module, wrong: int = WRONG) -> TensorImageDataset:
    torch.manual_seed(1)
    images = torch.randn(96, 1, 8, 8)
    labels = net(images).argmax(1)
    labels[:wrong] = (labels[:wrong] + 1) % 5
    spec = DataSpec(name="tiny", num_classes=5, in_chans=1, image_size=8, mean=(0.0,), std=(1.0,))
    return TensorImageDataset(images, labels, spec, "test")


def _auto(monkeypatch, net: nn.Module, latencies: dict[str, float], accuracy_limit: float = 0.01, wrong: int = WRONG, threads: int = 1):
    """quantize(backend="auto") where each built runtime reports the latency given for its candidate name."""
    BUILT.clear()
    make_candidates = quant_run._auto_candidates

    def tagged_candidates(*args, **kwargs):
        candidates = make_candidates(*args, **kwargs)
        for candidate in candidates:
            def make(build=candidate.make, name=candidate.name):
                runtime = build()
                runtime.candidate_name = name
                BUILT[name] = runtime
                return runtime

            candidate.make = make
        return candidates

    def clock(runtime, batch, warmup, repeats, min_total_ms=0.0):
        return latencies.get(runtime.candidate_name, SLOW_MS)

    monkeypatch.setattr(quant_run, "_auto_candidates", tagged_candidates)
    monkeypatch.setattr(quant_run, "select_deployment", functools.partial(select_deployment, timer=clock))
    data = _evaluation(net, wrong)
    config = QuantConfig(backend="auto", calib_samples=64, batch_size=8, threads=threads, accuracy_limit=accuracy_limit)
    return quant_run.quantize(net, data.images, config, evaluation=data)


def _has_int8_nodes(onnx_bytes: bytes) -> bool:
    return any(n.op_type == "QuantizeLinear" for n in onnx.load_from_string(onnx_bytes).graph.node)


def test_auto_chooses_int8_clearly_faster_than_every_fp32_and_reports_the_speedup_over_the_fastest_fp32(monkeypatch):
    latencies = {"onnxruntime fp32": 10.4, "openvino fp32": 10.0, "onnxruntime int8": 7.0, "openvino int8": 8.0}
    result = _auto(monkeypatch, _net(), latencies)
    summary = result.summary
    assert summary["deployment"] == "onnxruntime int8" and result.precision == "int8" and result.backend == "onnxruntime"
    assert summary["speedup_vs_fastest_fp32"] == pytest.approx(10.0 / 7.0)  # openvino fp32 is the fastest fp32
    assert summary["speedup_basis"] == "vs openvino fp32, interleaved rounds"
    assert summary["latency_ms"] == 7.0 and summary["accuracy"] >= summary["accuracy_fp32"] - 0.01
    # the bar is onnxruntime int8 (7 ms): both fp32 runtimes are under 1.5 x 7 = 10.5 ms, so all four are timed in rounds
    status = {c["name"]: c["status"] for c in summary["candidates"]}
    assert [status[name] for name in ("onnxruntime fp32", "openvino fp32", "openvino int8")] == ["slower"] * 3
    # every runtime runs on the pinned thread count (--threads 1), or the latencies compared would not be like for like
    for name, runtime in BUILT.items():
        if name.startswith("onnxruntime"):
            assert runtime.session.get_session_options().intra_op_num_threads == 1, name
        else:
            assert runtime.config["INFERENCE_NUM_THREADS"] == 1, name
    # fp32 and INT8 on both ONNX engines, bf16 only on a CPU that has it, no torchao unless asked for
    bf16 = {"openvino bf16"} if "BF16" in quant_run._openvino_capabilities() else set()
    assert set(status) == {"onnxruntime fp32", "openvino fp32", "onnxruntime int8", "openvino int8"} | bf16
    assert _has_int8_nodes(result.onnx_int8)


def test_auto_keeps_fp32_when_int8_wins_by_less_than_the_margin_and_saves_the_fp32_file(monkeypatch):
    # openvino int8 is 2% faster than openvino fp32: under the 3% margin, the exact model wins
    latencies = {"onnxruntime fp32": 12.0, "openvino fp32": 10.0, "onnxruntime int8": 11.0, "openvino int8": 9.8}
    result = _auto(monkeypatch, _net(), latencies)
    assert result.summary["deployment"] == "openvino fp32" and result.precision == "fp32"
    assert result.summary["speedup_vs_fastest_fp32"] == 1.0 and result.summary["accuracy_int8"] is None
    assert result.summary["speedup_basis"] == "the chosen deployment is fp32"
    assert result.summary["accuracy"] == result.summary["accuracy_fp32"] == 0.75 and result.summary["agreement_top1"] == 1.0
    assert not _has_int8_nodes(result.onnx_int8)  # the artifact is the fp32 model that won, not the INT8 one
    assert "below the margin" in next(c["reason"] for c in result.summary["candidates"] if c["name"] == "openvino fp32")


def test_auto_refuses_the_fastest_int8_when_its_measured_accuracy_is_below_the_limit(monkeypatch):
    latencies = {"onnxruntime fp32": 12.0, "openvino fp32": 10.0, "onnxruntime int8": 2.0, "openvino int8": 3.0}
    result = _auto(monkeypatch, _sensitive_net(), latencies, accuracy_limit=0.05, wrong=0)
    summary = result.summary
    candidates = {c["name"]: c for c in summary["candidates"]}
    for name in ("onnxruntime int8", "openvino int8"):
        assert candidates[name]["status"] == "inaccurate" and candidates[name]["accuracy"] < 1.0 - 0.05
    assert summary["accuracy_fp32"] == 1.0
    # with both INT8 candidates out, the bar is openvino fp32: onnxruntime fp32 (12 < 1.5 x 10) is timed and loses
    assert summary["deployment"] == "openvino fp32" and candidates["onnxruntime fp32"]["status"] == "slower"
    assert not _has_int8_nodes(result.onnx_int8)


def test_auto_with_no_runtime_left_fails_in_one_line_naming_each_candidate(monkeypatch):
    make_candidates = quant_run._auto_candidates

    def broken_candidates(*args, **kwargs):
        candidates = make_candidates(*args, **kwargs)
        for candidate in candidates:
            def make(name=candidate.name):
                raise RuntimeError(f"{name} cannot load this file")

            candidate.make = make
        return candidates

    monkeypatch.setattr(quant_run, "_auto_candidates", broken_candidates)
    data = _evaluation(_net())
    with pytest.raises(SlimvisionError, match="auto found no deployment") as error:
        quant_run.quantize(_net(), data.images, QuantConfig(backend="auto", calib_samples=64, batch_size=8, threads=1), evaluation=data)
    assert "onnxruntime int8: RuntimeError: onnxruntime int8 cannot load this file" in str(error.value)


def test_auto_with_a_zero_accuracy_limit_still_accepts_the_exact_fp32_runtimes(monkeypatch):
    latencies = {"onnxruntime fp32": 12.0, "openvino fp32": 10.0, "onnxruntime int8": 9.0, "openvino int8": 8.0}
    result = _auto(monkeypatch, _net(), latencies, accuracy_limit=0.0)
    candidates = {c["name"]: c for c in result.summary["candidates"]}
    # fp32 on either engine drops 0 points: at a limit of 0 it is within the limit (the limit is inclusive)
    assert candidates["openvino fp32"]["status"] != "inaccurate" and candidates["onnxruntime fp32"]["status"] != "inaccurate"
    accepted = [c for c in candidates.values() if c["status"] in ("chosen", "slower", "pruned")]
    assert all(c["accuracy"] is None or c["accuracy"] >= result.summary["accuracy_fp32"] for c in accepted)
    assert result.summary["deployment"] in ("openvino int8", "onnxruntime int8", "openvino fp32")


def test_auto_speedup_falls_back_to_the_screening_round_when_every_fp32_was_pruned(monkeypatch):
    # bar: onnxruntime int8 at 7 ms; both fp32 runtimes are over 1.5 x 7 = 10.5 ms and never reach the rounds
    latencies = {"onnxruntime fp32": 12.0, "openvino fp32": 11.0, "onnxruntime int8": 7.0, "openvino int8": 8.0}
    summary = _auto(monkeypatch, _net(), latencies).summary
    assert summary["deployment"] == "onnxruntime int8"
    assert summary["speedup_vs_fastest_fp32"] == pytest.approx(11.0 / 7.0)
    assert summary["speedup_basis"] == "vs openvino fp32, screening round (every fp32 runtime was pruned there)"


def test_auto_without_any_fp32_runtime_reports_no_speedup(monkeypatch):
    make_candidates = quant_run._auto_candidates

    def without_fp32(*args, **kwargs):
        candidates = make_candidates(*args, **kwargs)
        for candidate in candidates:
            if candidate.precision != "int8":
                def make(name=candidate.name):
                    raise RuntimeError(f"{name} is unavailable")

                candidate.make = make
        return candidates

    monkeypatch.setattr(quant_run, "_auto_candidates", without_fp32)
    latencies = {"onnxruntime int8": 7.0, "openvino int8": 8.0}
    summary = _auto(monkeypatch, _net(), latencies).summary
    assert summary["deployment"] == "onnxruntime int8"
    assert summary["speedup_vs_fastest_fp32"] is None and summary["speedup_basis"] == "no fp32 runtime could run the model"


def test_auto_builds_a_torchao_candidate_from_the_converted_module(monkeypatch, tmp_path):
    """Candidate wiring only: torch.compile (tens of seconds) is replaced by a recorder; test_quant_torchao compiles for real."""
    from slimvision.quant import torchao_int8

    compiled = []

    def record(module, example):
        compiled.append((module, example))
        return module

    monkeypatch.setattr(torchao_int8, "compile_frozen", record)
    converted, example = _net(), torch.zeros(4, 1, 8, 8)
    config = QuantConfig(backend="auto", threads=1, auto_torchao=True)
    candidates = quant_run._auto_candidates(_net(), ["onnxruntime", "openvino", "torchao"], tmp_path / "fp32.onnx", None, converted, example, config)
    names = [c.name for c in candidates]
    assert names[-1] == "torchao int8" and "onnxruntime int8" not in names  # no ONNX INT8 file was made
    runtime = candidates[-1].make()
    assert compiled == [(converted, example)]
    batch = torch.randn(2, 1, 8, 8)
    assert np.array_equal(runtime.run(batch.numpy()), converted(batch).detach().numpy())
    # without a converted module (no torchao run), no torchao candidate
    assert "torchao int8" not in [c.name for c in quant_run._auto_candidates(_net(), ["onnxruntime", "openvino"], tmp_path / "f.onnx", None, None, example, config)]


def _threads_of(runtime) -> int:
    if hasattr(runtime, "session"):
        return runtime.session.get_session_options().intra_op_num_threads
    return runtime.config["INFERENCE_NUM_THREADS"]


def test_auto_with_two_threads_also_times_every_onnx_deployment_on_one_thread_and_keeps_the_count_it_chose(monkeypatch, tmp_path):
    # at batch 1 a small net can run faster on one thread: openvino int8 on one thread wins here
    latencies = {"onnxruntime fp32": 10.0, "openvino fp32": 9.0, "onnxruntime int8": 8.0, "openvino int8": 6.0,
                 "onnxruntime fp32 1-thread": 9.5, "openvino fp32 1-thread": 8.5, "onnxruntime int8 1-thread": 7.0, "openvino int8 1-thread": 5.0}
    result = _auto(monkeypatch, _net(), latencies, threads=2)
    summary = result.summary
    names = {c["name"] for c in summary["candidates"]}
    assert set(latencies) <= names and all(not name.startswith("torchao") for name in names)
    for name, runtime in BUILT.items():
        assert _threads_of(runtime) == (1 if name.endswith("1-thread") else 2), name
    assert summary["deployment"] == "openvino int8 1-thread" and summary["threads"] == 1 and result.threads == 1
    # the fastest fp32 is openvino fp32 on one thread (8.5 ms), whatever its thread count
    assert summary["speedup_vs_fastest_fp32"] == pytest.approx(8.5 / 5.0)
    assert _threads_of(result.runtime()) == 1 and _threads_of(result.runtime(threads=2)) == 2
    result.save(tmp_path / "q")
    runtime, meta = quant_run.load_quantized_runtime(tmp_path / "q")
    assert meta["threads"] == 1 and _threads_of(runtime) == 1


def test_auto_keeps_the_requested_thread_count_when_one_thread_is_slower(monkeypatch, tmp_path):
    latencies = {"onnxruntime fp32": 10.0, "openvino fp32": 9.0, "onnxruntime int8": 8.0, "openvino int8": 5.0,
                 "onnxruntime fp32 1-thread": 14.0, "openvino fp32 1-thread": 13.0, "onnxruntime int8 1-thread": 12.0, "openvino int8 1-thread": 9.0}
    result = _auto(monkeypatch, _net(), latencies, threads=2)
    assert result.summary["deployment"] == "openvino int8" and result.threads == 2
    assert _threads_of(result.runtime()) == 2

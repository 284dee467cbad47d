"""quantize(model, calibration, config): INT8 from an nn.Module, the code path the quantize verb runs."""


import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

from slimvision.data import get_dataset
from slimvision.errors import ConfigError
from slimvision.io import ArchSpec, save_artifact
from slimvision.quant import QuantConfig, quantize
from slimvision.quant.run import evaluate_quantized, load_quantized_runtime, profile_quantized, quantize_artifact


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    ).eval()


def test_module_to_int8_onnx_that_tracks_fp32(tmp_path):
    model = small_net()
    images = torch.randn(96, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    result = quantize(model, images, QuantConfig(backend="onnxruntime", calib_samples=64, threads=1))
    assert result.backend == "onnxruntime" and result.input_size == (1, 16, 16) and result.accuracy is None
    ops = {node.op_type for node in onnx.load_from_string(result.onnx_int8).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # a real QDQ INT8 graph, not the fp32 export
    logits = result.runtime(threads=1).run(images[64:].numpy())
    with torch.no_grad():
        reference = model(images[64:]).numpy()
    assert np.corrcoef(logits.ravel(), reference.ravel())[0, 1] > 0.98
    assert not np.allclose(logits, reference)  # it is quantized, so not bit-identical
    assert all(p.requires_grad for p in model.parameters()) and not model.training  # the caller's model is not touched

    out = result.save(tmp_path / "q", config=QuantConfig(backend="onnxruntime"))
    runtime, meta = load_quantized_runtime(out)
    assert meta["input_size"] == [1, 16, 16] and np.allclose(runtime.run(images[64:].numpy()), logits, atol=1e-5)
    assert profile_quantized(out, repeats=2)["input_size"] == [1, 16, 16]
    with pytest.raises(ConfigError, match="records no dataset"):
        evaluate_quantized(out)


def test_profile_runs_every_engine_on_the_thread_count_auto_chose(tmp_path, monkeypatch):
    """A torchao runtime runs on torch's threads, an ONNX one on its own: the recorded count must pin both."""
    import json

    from slimvision.quant import run as quant_run

    result = quantize(small_net(), torch.randn(32, 1, 16, 16), QuantConfig(backend="onnxruntime", calib_samples=32, threads=1))
    out = result.save(tmp_path / "q", config=QuantConfig(backend="onnxruntime"))
    meta = json.loads((out / "meta.json").read_text())
    (out / "meta.json").write_text(json.dumps({**meta, "threads": 1}))
    seen = {}
    real_latency = quant_run.runtime_latency_ms
    monkeypatch.setattr(quant_run, "runtime_latency_ms", lambda runtime, *a, **k: seen.update(torch=torch.get_num_threads(), session=runtime.session.get_session_options().intra_op_num_threads) or real_latency(runtime, *a, **k))
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert profile_quantized(out, repeats=2)["threads"] == 1 and seen == {"torch": 1, "session": 1}
        assert profile_quantized(out, threads=2, repeats=2)["threads"] == 2 and seen == {"torch": 2, "session": 2}
    finally:
        torch.set_num_threads(previous)


def test_calibration_can_be_a_loader_and_evaluation_data_gives_measured_rows():
    model = small_net()
    test = get_dataset("digits", "test", image_size=16)
    loader = DataLoader(TensorDataset(test.images[:64], test.labels[:64]), batch_size=16)
    result = quantize(model, loader, QuantConfig(backend="onnxruntime", calib_samples=64, threads=1, repeats=2), evaluation=test)
    summary = result.summary
    assert summary["accuracy_int8"] == result.accuracy and 0 <= summary["agreement_top1"] <= 1
    assert {row["runtime"] for row in summary["rows"]} == {"torch eager", "onnxruntime"}
    assert summary["speedup_bs32"] > 0 and "latency" in result.conditions


@pytest.mark.parametrize(
    "calibration,config,needle",
    [
        (torch.randn(8, 1, 16, 16), QuantConfig(calib_samples=16), "exceeds the 8 calibration images"),
        (torch.randn(8, 16, 16), QuantConfig(calib_samples=4), r"must be \(N, C, H, W\)"),
        ("images", QuantConfig(calib_samples=4), "yielded no image tensors"),
        (torch.randn(8, 1, 16, 16), QuantConfig(backend="auto", calib_samples=4), "pass labelled evaluation data"),
        (torch.randn(8, 1, 16, 16), QuantConfig(keep_float=1, calib_samples=4), "pass labelled validation data"),
        (torch.randn(8, 1, 16, 16), QuantConfig(backend="torchao", mode="qat", calib_samples=4), "pass a labelled dataset"),
    ],
)
def test_bad_calibration_or_config_is_one_clear_error(calibration, config, needle):
    with pytest.raises(ConfigError, match=needle):
        quantize(small_net(), calibration, config)


def test_the_quantize_verb_runs_through_quantize(tmp_path, monkeypatch):
    arch = ArchSpec("small_cnn", {"num_classes": 10, "in_chans": 1})
    save_artifact(arch.build().eval(), arch, tmp_path / "m", {"data": get_dataset("digits", "train").spec.to_dict()})
    calls = []
    real = quantize

    def spy(model, calibration, config, **kw):
        calls.append((type(model).__name__, len(calibration), sorted(kw)))
        return real(model, calibration, config, **kw)

    monkeypatch.setattr("slimvision.quant.run.quantize", spy)
    summary = quantize_artifact(tmp_path / "m", QuantConfig(calib_samples=32, threads=1, repeats=2), tmp_path / "q")
    assert calls == [("SmallCNN", 1078, ["evaluation", "validation"])]
    assert summary["backend"] == "onnxruntime" and (tmp_path / "q" / "model.onnx").is_file()

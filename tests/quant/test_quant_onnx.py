import json

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn

from slimvision.errors import ConfigError, SlimvisionError
from slimvision.quant import QuantConfig, export_onnx
from slimvision.quant.onnx_int8 import quantizable_nodes, quantize_static_qdq
from slimvision.quant.runtimes import OpenVinoRuntime, OrtRuntime, runtime_predictions


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from slimvision.cli import run

    out = tmp_path_factory.mktemp("q") / "sc"
    assert run(["train", "--model", "small_cnn", "--data", "digits", "--epochs", "6", "--out", str(out)]) == 0
    return out


def test_export_has_dynamic_batch_and_matches_torch(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()
    path = export_onnx(model, (1, 8, 8), tmp_path / "m.onnx")
    graph_input = onnx.load(str(path)).graph.input[0]
    assert graph_input.type.tensor_type.shape.dim[0].dim_param == "batch"
    runtime = OrtRuntime(path)
    for batch in (1, 5):
        x = torch.randn(batch, 1, 8, 8)
        assert np.abs(runtime.run(x.numpy()) - model(x).detach().numpy()).max() < 1e-5


def test_unsupported_op_gives_one_clear_error(tmp_path):
    class Weird(nn.Module):
        def forward(self, x):
            return torch.fft.fft2(x).real.flatten(1)

    with pytest.raises(SlimvisionError, match="ONNX export of Weird failed"):
        export_onnx(Weird(), (1, 4, 4), tmp_path / "w.onnx")
    assert not (tmp_path / "w.onnx").exists()


def test_static_qdq_quantizes_every_conv_and_linear_and_runs_on_both_engines(trained, tmp_path):
    from slimvision.data import get_dataset
    from slimvision.io import load_artifact

    model = load_artifact(trained).model
    fp32 = export_onnx(model, (1, 8, 8), tmp_path / "fp32.onnx")
    train, test = get_dataset("digits", "train"), get_dataset("digits", "test")
    int8 = quantize_static_qdq(fp32, tmp_path / "int8.onnx", train.images[:64])
    ops = [n.op_type for n in onnx.load(str(int8)).graph.node]
    assert ops.count("QuantizeLinear") >= len(quantizable_nodes(fp32))
    # activations unsigned 8-bit, weights signed 8-bit per channel
    initializers = {i.name: i for i in onnx.load(str(int8)).graph.initializer}
    zero_point_types = {initializers[n.input[2]].data_type for n in onnx.load(str(int8)).graph.node if n.op_type == "QuantizeLinear" and n.input[2] in initializers}
    assert onnx.TensorProto.UINT8 in zero_point_types
    reference = model(test.images).argmax(1).numpy()
    for runtime in (OrtRuntime(int8), OpenVinoRuntime(int8)):
        agreement = (runtime_predictions(runtime, test.images) == reference).mean()
        assert agreement > 0.9, runtime.label


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.a, self.b = (nn.Conv2d(c, 4, 3, padding=1) for c in (1, 4, 4))
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.relu(x + self.b(torch.relu(self.a(x))))
        return self.head(x.mean((2, 3)))


def _residual_qdq(tmp_path, exclude=()):
    torch.manual_seed(0)
    fp32 = export_onnx(_Residual().eval(), (1, 8, 8), tmp_path / "r.onnx")
    int8 = quantize_static_qdq(fp32, tmp_path / "q.onnx", torch.randn(16, 1, 8, 8), exclude=exclude)
    graph = onnx.load(str(int8)).graph
    return graph, {output: node for node in graph.node for output in node.output}


def test_activations_and_residual_adds_are_quantized_so_int8_flows_between_layers(tmp_path):
    graph, producer = _residual_qdq(tmp_path)
    assert [n.op_type for n in graph.node].count("Relu") == 0  # folded into the producers' quantized output ranges
    add = next(n for n in graph.node if n.op_type == "Add")
    assert [producer[name].op_type for name in add.input] == ["DequantizeLinear", "DequantizeLinear"]
    conv_b = next(n for n in graph.node if n.name == "/b/Conv")
    assert producer[conv_b.input[0]].op_type == "DequantizeLinear"


def test_a_layer_kept_in_float_reads_a_float_input(tmp_path):
    graph, producer = _residual_qdq(tmp_path, exclude=["/b/Conv"])
    conv_b = next(n for n in graph.node if n.name == "/b/Conv")
    assert producer[conv_b.input[0]].op_type == "Relu"  # the ReLU feeding it stays float too
    assert conv_b.input[1] in {i.name for i in graph.initializer}  # float weights, no DequantizeLinear
    conv_a = next(n for n in graph.node if n.name == "/a/Conv")
    assert producer[conv_a.input[0]].op_type == "DequantizeLinear"


def test_empty_calibration_set_is_refused(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()).eval()
    fp32 = export_onnx(model, (1, 8, 8), tmp_path / "m.onnx")
    with pytest.raises(ConfigError, match="calibration set is empty"):
        quantize_static_qdq(fp32, tmp_path / "q.onnx", torch.zeros(0, 1, 8, 8))
    assert not (tmp_path / "q.onnx").exists()


@pytest.mark.parametrize("kw,needle", [({"backend": "tensorrt"}, "unknown backend"), ({"mode": "qat", "backend": "onnxruntime"}, "torchao"), ({"calib_samples": 0}, "calib-samples"), ({"accuracy_limit": -0.01}, "accuracy-limit")])
def test_bad_quant_configs(kw, needle):
    with pytest.raises(ConfigError, match=needle):
        QuantConfig(**kw)


def test_quantize_cli_onnxruntime_then_eval_on_openvino(cli, trained, tmp_path):
    code, out, err = cli("quantize", "--model", trained, "--backend", "onnxruntime", "--calib-samples", "64", "--threads", "1", "--out", tmp_path / "int8", "--json")
    assert code == 0, err
    summary = json.loads(out)
    for key in ("backend", "accuracy_fp32", "accuracy_int8", "latency_ms_fp32", "latency_ms_int8", "speedup_bs1", "speedup_bs32", "size_bytes_fp32", "size_bytes_int8"):
        assert key in summary
    assert summary["size_bytes_fp32"] / summary["size_bytes_int8"] > 2.5
    assert summary["accuracy_fp32"] - summary["accuracy_int8"] < 0.05
    assert set(summary["latency_ms_int8"]) == {"1", "32"}
    assert summary["within_accuracy_limit"] == (summary["accuracy_fp32"] - summary["accuracy_int8"] <= 0.01)
    assert ("--accuracy-limit" in err) != summary["within_accuracy_limit"]
    code, out, _ = cli("eval", tmp_path / "int8", "--json")
    assert code == 0 and json.loads(out)["accuracy"] == pytest.approx(summary["accuracy_int8"])
    code, out, _ = cli("eval", tmp_path / "int8", "--backend", "openvino", "--json")
    assert code == 0 and json.loads(out)["accuracy"] > summary["accuracy_fp32"] - 0.05
    code, out, _ = cli("profile", tmp_path / "int8", "--backend", "openvino", "--repeats", "2", "--json")
    assert code == 0 and json.loads(out)["latency_ms"]["32"]["median"] > 0


def test_quantize_cli_openvino_reports_f32_baseline_and_dynamic_mode(cli, trained, tmp_path):
    code, out, err = cli("quantize", "--model", trained, "--backend", "openvino", "--calib-samples", "64", "--threads", "1", "--out", tmp_path / "ov", "--json")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert any(r["runtime"] == "openvino" and r["precision"].startswith("fp32 (f32") for r in rows)
    code, out, err = cli("quantize", "--model", trained, "--mode", "dynamic", "--threads", "1", "--out", tmp_path / "dyn", "--json")
    assert code == 0, err
    assert json.loads(out)["mode"] == "dynamic"


def test_keep_float_excludes_the_most_sensitive_layers(cli, trained, tmp_path):
    code, out, err = cli("quantize", "--model", trained, "--keep-float", "1", "--calib-samples", "64", "--threads", "1", "--out", tmp_path / "kf", "--json")
    assert code == 0, err
    kept = json.loads(out)["kept_float"]
    assert len(kept) == 1
    graph = onnx.load(str(tmp_path / "kf" / "model.onnx")).graph
    conv_inputs = {n.name: n.input[1] for n in graph.node if n.name == kept[0]}
    # the kept layer reads its float weight directly, not through a DequantizeLinear
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    assert conv_inputs and conv_inputs[kept[0]] not in dequantized


def test_quantize_warns_when_no_runtime_meets_the_accuracy_limit(cli, trained, monkeypatch, tmp_path):
    # Only the runtime measurement is replaced (an INT8 model that collapsed to 10% top-1, twice as fast); the
    # real quantize -> accept/reject decision -> CLI warning path runs on the measured fp32 accuracy.
    from slimvision.quant import run as quant_run

    def collapsed_rows(backend, fp32, int8, config, test, reference, input_size):
        base = quant_run.Row(backend, "fp32", 0.9, 1.0, {"1": 2.0, "32": 20.0})
        quant = quant_run.Row(backend, "int8", 0.1, 0.1, {"1": 1.0, "32": 10.0})
        return base, quant, []

    monkeypatch.setattr(quant_run, "_onnx_rows", collapsed_rows)
    code, out, err = cli("quantize", "--model", trained, "--backend", "openvino", "--calib-samples", "32", "--threads", "1", "--out", tmp_path / "q", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["backend"] == "openvino" and summary["within_accuracy_limit"] is False and summary["accepted_backends"] == []
    assert summary["speedup_bs32"] == pytest.approx(2.0)
    drop = 100 * (summary["accuracy_fp32"] - 0.1)
    assert f"openvino INT8 top-1 is {drop:.1f} points below fp32" in " ".join(err.split())


def test_model_dir_without_weights_fails_cleanly(cli, trained, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(trained, broken)
    (broken / "model.safetensors").unlink()
    code, _, err = cli("quantize", "--model", broken, "--out", tmp_path / "q")
    assert code == 1 and "model.safetensors" in err and not (tmp_path / "q").exists()


def test_quantize_cli_auto_reports_every_candidate_and_the_artifact_runs_as_chosen(cli, trained, tmp_path):
    code, out, err = cli("quantize", "--model", trained, "--backend", "auto", "--batch-size", "8", "--calib-samples", "64", "--threads", "1", "--out", tmp_path / "auto", "--json")
    assert code == 0, err
    summary = json.loads(out)
    names = {c["name"]: c for c in summary["candidates"]}
    assert {"onnxruntime fp32", "openvino fp32", "onnxruntime int8", "openvino int8"} <= set(names)
    chosen = names[summary["deployment"]]
    assert chosen["status"] == "chosen" and summary["batch_size"] == 8 and summary["within_accuracy_limit"]
    assert all(c["status"] in ("chosen", "slower", "pruned", "inaccurate", "failed") and c["reason"] for c in names.values())
    code, out, _ = cli("eval", tmp_path / "auto", "--json")
    assert code == 0 and json.loads(out)["accuracy"] == pytest.approx(summary["accuracy"])
    code, out, err = cli("quantize", "--model", trained, "--backend", "auto", "--calib-samples", "64", "--threads", "1", "--out", tmp_path / "auto2")
    assert code == 0 and "the fastest fp32 runtime" in out and "why" in out

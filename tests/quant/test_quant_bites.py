"""INT8 weight format, the export check, keep-float ranking and `auto` selection, each against a known answer."""

from __future__ import annotations

import io

import onnx
import pytest
import torch
import torch.nn as nn
from onnx import numpy_helper

from slimvision.data.base import DataSpec, TensorImageDataset
from slimvision.errors import SlimvisionError
from slimvision.quant import QuantConfig, export_onnx
from slimvision.quant import run as quant_run
from slimvision.quant.export import check_onnx_matches
from slimvision.quant.onnx_int8 import layer_sensitivity, quantizable_nodes, quantize_static_qdq


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 5)).eval()


def test_static_qdq_weights_are_signed_int8_per_output_channel(tmp_path):
    fp32 = export_onnx(_tiny(), (1, 8, 8), tmp_path / "m.onnx")
    int8 = quantize_static_qdq(fp32, tmp_path / "q.onnx", torch.randn(16, 1, 8, 8))
    graph = onnx.load(str(int8)).graph
    inits = {i.name: i for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert len(convs) == 2
    for conv, out_channels in zip(convs, (4, 3)):
        dq = producer[conv.input[1]]
        assert dq.op_type == "DequantizeLinear"
        assert inits[dq.input[0]].data_type == onnx.TensorProto.INT8  # signed weights
        assert numpy_helper.to_array(inits[dq.input[1]]).shape == (out_channels,)  # one scale per output channel
        axis = [a.i for a in dq.attribute if a.name == "axis"]
        assert axis in ([], [0])  # per output channel (axis 0 is the default)
    # activations are unsigned 8-bit
    activation_dq = producer[convs[1].input[0]]
    assert inits[activation_dq.input[2]].data_type == onnx.TensorProto.UINT8


def _onnx_bytes(model: nn.Module) -> bytes:
    buffer = io.BytesIO()
    torch.onnx.export(model, (torch.randn(2, 1, 8, 8),), buffer, input_names=["input"], output_names=["logits"], opset_version=17, dynamo=False)
    return buffer.getvalue()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_export_check_raises_when_onnx_and_torch_disagree():
    model, other = _tiny(), _tiny()
    with torch.no_grad():
        other[-1].bias.add_(1.0)
    example = torch.randn(2, 1, 8, 8)
    assert check_onnx_matches(_onnx_bytes(model), model, example) < 1e-4
    with pytest.raises(SlimvisionError, match="differs from PyTorch"):
        check_onnx_matches(_onnx_bytes(model), other, example)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_export_check_limit_grows_with_the_outputs_scale():
    model, shifted, wrong = _tiny(), _tiny(), _tiny()
    with torch.no_grad():
        for net in (model, shifted, wrong):
            net[-1].weight.mul_(1e4)  # logits of order 1e3-1e4, as random inputs give some trained networks
        shifted[-1].bias.add_(0.5)  # float32-rounding-sized at this scale
        wrong[-1].bias.add_(100.0)  # a real discrepancy at this scale
    example = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        scale = float(model(example).abs().max())
    assert scale > 1e3
    assert check_onnx_matches(_onnx_bytes(model), shifted, example) == pytest.approx(0.5, abs=1e-2)
    with pytest.raises(SlimvisionError, match="differs from PyTorch"):
        check_onnx_matches(_onnx_bytes(model), wrong, example)


class _Drifting(nn.Module):
    """Each call scales its output by how often it was called: the traced graph freezes one count, eager does not."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(64, 3)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.linear(x.flatten(1)) * float(self.calls) + float(self.calls)


def test_export_onnx_refuses_a_model_it_does_not_reproduce(tmp_path):
    with pytest.raises(SlimvisionError, match="differs from PyTorch"):
        export_onnx(_Drifting(), (1, 8, 8), tmp_path / "d.onnx")
    assert not (tmp_path / "d.onnx").exists()


def _int8_node(path) -> str:
    """The one Conv/Gemm whose weight is dequantized in a single-layer QDQ model."""
    graph = onnx.load(str(path)).graph
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    names = [n.name for n in graph.node if n.op_type in ("Conv", "Gemm", "MatMul") and n.input[1] in dequantized]
    assert len(names) == 1
    return names[0]


def test_layer_sensitivity_ranks_the_least_accurate_first(tmp_path):
    fp32 = export_onnx(_tiny(), (1, 8, 8), tmp_path / "m.onnx")
    nodes = quantizable_nodes(fp32)
    accuracy = dict(zip(nodes, (0.9, 0.2, 0.6)))  # the middle layer hurts most
    ranking = layer_sensitivity(fp32, torch.randn(8, 1, 8, 8), lambda path: accuracy[_int8_node(path)])
    assert ranking == [(nodes[1], 0.2), (nodes[2], 0.6), (nodes[0], 0.9)]


def _dataset(n: int = 32) -> TensorImageDataset:
    torch.manual_seed(1)
    spec = DataSpec(name="tiny", num_classes=5, in_chans=1, image_size=8, mean=(0.0,), std=(1.0,))
    return TensorImageDataset(torch.randn(n, 1, 8, 8), torch.randint(0, 5, (n,)), spec, "test")


def test_keep_float_keeps_the_most_sensitive_layers(monkeypatch):
    def fake_sensitivity(fp32_path, calib, accuracy_of, method):
        nodes = quantizable_nodes(fp32_path)
        return sorted(zip(nodes, (0.9, 0.2, 0.6)), key=lambda item: item[1])

    monkeypatch.setattr(quant_run, "layer_sensitivity", fake_sensitivity)
    data = _dataset()
    result = quant_run.quantize(_tiny(), data.images, QuantConfig(keep_float=2, calib_samples=16), validation=data)
    graph = onnx.load_from_string(result.onnx_int8).graph
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    weighted = [n for n in graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    in_float = [n.name for n in weighted if n.input[1] not in dequantized]
    assert set(result.summary["kept_float"]) == set(in_float)
    assert len(in_float) == 2 and weighted[0].name not in in_float  # the 0.9 layer (least sensitive) is INT8


def _row(runtime: str, accuracy: float, latency: float) -> quant_run.Row:
    return quant_run.Row(runtime, "int8", accuracy, accuracy, {"1": latency, "32": latency})


def _select(monkeypatch, accuracies: dict[str, float], latencies: dict[str, float], limit: float = 0.01) -> dict:
    """_measure_backends' decision with every runtime's rows replaced by the given numbers (eager fp32 accuracy is measured)."""
    data = _dataset()
    model = _tiny()
    eager_accuracy = float((model(data.images).argmax(1) == data.labels).float().mean())

    def onnx_rows(backend, *args):
        return _row(backend, eager_accuracy, 2 * latencies[backend]), _row(backend, eager_accuracy - accuracies[backend], latencies[backend]), []

    monkeypatch.setattr(quant_run, "_onnx_rows", onnx_rows)
    monkeypatch.setattr(quant_run, "_torchao_rows", lambda *args: onnx_rows("torchao")[:2])
    config = QuantConfig(backend="auto", accuracy_limit=limit, repeats=1)
    summary, _ = quant_run._measure_backends(model, list(accuracies), None, None, None, data.images[:4], config, data, {}, {})
    return summary


def test_auto_picks_the_fastest_runtime_within_the_accuracy_limit(monkeypatch):
    # openvino is fastest but drops 5 points; torchao drops 0.5 points and beats onnxruntime
    summary = _select(monkeypatch, {"onnxruntime": 0.0, "openvino": 0.05, "torchao": 0.005}, {"onnxruntime": 3.0, "openvino": 1.0, "torchao": 2.0})
    assert summary["backend"] == "torchao"
    assert summary["accepted_backends"] == ["onnxruntime", "torchao"] and summary["within_accuracy_limit"]
    assert summary["speedup_bs32"] == pytest.approx(2.0)


def test_auto_falls_back_to_the_fastest_when_no_runtime_meets_the_limit(monkeypatch):
    summary = _select(monkeypatch, {"onnxruntime": 0.2, "openvino": 0.3, "torchao": 0.4}, {"onnxruntime": 3.0, "openvino": 1.0, "torchao": 2.0})
    assert summary["backend"] == "openvino"
    assert summary["accepted_backends"] == [] and summary["within_accuracy_limit"] is False


def test_auto_limit_is_inclusive(monkeypatch):
    summary = _select(monkeypatch, {"onnxruntime": 0.25, "openvino": 0.5}, {"onnxruntime": 3.0, "openvino": 1.0}, limit=0.25)
    assert summary["backend"] == "onnxruntime" and summary["accepted_backends"] == ["onnxruntime"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_export_check_limit_is_inclusive():
    model, other = _tiny(), _tiny()
    with torch.no_grad():
        other[-1].bias.add_(0.5)
    example = torch.randn(2, 1, 8, 8)
    diff = check_onnx_matches(_onnx_bytes(model), other, example, atol=10.0)
    assert diff == pytest.approx(0.5, abs=1e-4)
    assert check_onnx_matches(_onnx_bytes(model), other, example, atol=diff) == diff  # exactly at the limit passes


def test_a_drop_of_exactly_the_limit_passes_despite_float_rounding(monkeypatch):
    # 0.3 - 0.25 is 0.04999999999999999 and 1.0 - 0.95 is 0.05000000000000004: both are a drop of exactly the limit
    for drop in (0.05, 1.0 - 0.95):
        summary = _select(monkeypatch, {"onnxruntime": drop}, {"onnxruntime": 3.0}, limit=0.05)
        assert summary["within_accuracy_limit"], drop

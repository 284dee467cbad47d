"""The QDQ file's numbers against values computed by hand: weight scales, activation ranges, which ops are INT8, which stay float."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
from onnx import numpy_helper

from slimvision.data.base import DataSpec, TensorImageDataset
from slimvision.quant import QuantConfig, export_onnx, quantize
from slimvision.quant.onnx_int8 import _with_float_inputs, quantize_static_qdq
from slimvision.quant.runtimes import OrtRuntime, runtime_predictions

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(autouse=True)
def _empty_working_directory(tmp_path, monkeypatch):
    """Each test runs in an empty directory, so a stray file written to (or read from) the working directory shows."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


class _Residual(nn.Module):
    """conv -> relu -> conv -> add(skip) -> relu -> conv -> flatten -> linear: every op kind the quantizer treats."""

    def __init__(self):
        super().__init__()
        self.c1, self.c2, self.c3 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 2, 3, padding=1)
        self.fc = nn.Linear(2 * 8 * 8, 5)

    def forward(self, x):
        y = torch.relu(self.c1(x))
        z = torch.relu(self.c2(y) + y)
        return self.fc(self.c3(z).flatten(1))


def _residual() -> nn.Module:
    torch.manual_seed(0)
    return _Residual().eval()


def _graph(path):
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    return model.graph, inits, producer


def test_weights_are_symmetric_int8_per_output_channel_with_scale_absmax_over_127(tmp_path):
    model = _residual()
    fp32 = export_onnx(model, (1, 8, 8), tmp_path / "m.onnx")
    calib = torch.randn(32, 1, 8, 8)
    graph, inits, producer = _graph(quantize_static_qdq(fp32, tmp_path / "q.onnx", calib))
    layers = {"/c1/Conv": model.c1, "/c2/Conv": model.c2, "/c3/Conv": model.c3, "/fc/Gemm": model.fc}
    for node in graph.node:
        if node.name not in layers:
            continue
        weight = layers.pop(node.name).weight.detach().numpy()
        flat = weight.reshape(weight.shape[0], -1)
        dq = producer[node.input[1]]
        quantized, scale, zero_point = (inits[name] for name in dq.input)
        expected_scale = np.abs(flat).max(axis=1) / 127.0  # symmetric: the largest |w| of each output channel maps to 127
        assert scale.shape == (weight.shape[0],) and scale == pytest.approx(expected_scale, rel=1e-6)
        assert quantized.dtype == np.int8 and zero_point.dtype == np.int8 and not zero_point.any()
        expected = np.clip(np.round(flat / expected_scale[:, None]), -127, 127)
        assert np.abs(quantized.reshape(flat.shape) - expected).max() <= 1 and (quantized.reshape(flat.shape) == expected).mean() > 0.99
        # the bias is int32 on the grid input_scale x weight_scale, as the integer kernels accumulate it
        bias_dq = producer[node.input[2]]
        activation_scale = inits[producer[node.input[0]].input[1]]
        assert inits[bias_dq.input[0]].dtype == np.int32
        assert inits[bias_dq.input[1]] == pytest.approx(activation_scale * expected_scale, rel=1e-5)
    assert not layers  # every layer with weights was found and checked


def test_quantizing_writes_only_its_output(tmp_path, _empty_working_directory):
    fp32 = export_onnx(_residual(), (1, 8, 8), tmp_path / "m.onnx")
    quantize_static_qdq(fp32, tmp_path / "q.onnx", torch.randn(8, 1, 8, 8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd", "m.onnx", "q.onnx"] and not any(_empty_working_directory.iterdir())


def test_activation_range_is_the_min_max_over_the_whole_calibration_set_in_uint8(tmp_path):
    fp32 = export_onnx(_residual(), (1, 8, 8), tmp_path / "m.onnx")
    torch.manual_seed(3)
    calib = torch.randn(64, 1, 8, 8)
    calib[40, 0, 2, 2] = 9.0  # the second calibration batch (32 images each) holds the extreme: a running average would halve it
    _, inits, _ = _graph(quantize_static_qdq(fp32, tmp_path / "q.onnx", calib))
    low, high = min(float(calib.min()), 0.0), max(float(calib.max()), 0.0)  # the range always contains 0
    expected_scale = (high - low) / 255.0
    assert inits["input_scale"] == pytest.approx(expected_scale, rel=1e-6)
    assert inits["input_zero_point"].dtype == np.uint8 and int(inits["input_zero_point"]) == round(-low / expected_scale)


def test_every_layer_reads_int8_and_relu_and_add_sit_inside_the_int8_flow(tmp_path):
    fp32 = export_onnx(_residual(), (1, 8, 8), tmp_path / "m.onnx")
    graph, inits, producer = _graph(quantize_static_qdq(fp32, tmp_path / "q.onnx", torch.randn(32, 1, 8, 8)))
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    weighted = [n for n in graph.node if n.op_type in ("Conv", "Gemm")]
    assert len(weighted) == 4
    for node in weighted:
        assert producer[node.input[0]].op_type == "DequantizeLinear" and producer[node.input[1]].op_type == "DequantizeLinear"
    # ReLUs are folded into their producer's uint8 output range (no float ReLU between two INT8 layers)
    assert [n for n in graph.node if n.op_type == "Relu"] == []
    (add,) = [n for n in graph.node if n.op_type == "Add"]
    assert [producer[name].op_type for name in add.input] == ["DequantizeLinear", "DequantizeLinear"]
    assert [c.op_type for c in consumers[add.output[0]]] == ["QuantizeLinear"]  # the sum is requantized too
    # with the flow ops switched off only the layers with weights are quantized: the ReLUs stay in float
    graph, _, _ = _graph(quantize_static_qdq(fp32, tmp_path / "w.onnx", torch.randn(32, 1, 8, 8), flow_ops=()))
    assert sum(n.op_type == "Relu" for n in graph.node) == 2


def test_a_layer_kept_in_float_takes_the_relu_and_add_chain_that_feeds_it():
    fp32 = onnx.load_from_string(_onnx_of(_residual()))
    names = [n.name for n in fp32.graph.node]
    assert names == ["/c1/Conv", "/Relu", "/c2/Conv", "/Add", "/Relu_1", "/c3/Conv", "/Flatten", "/fc/Gemm"]
    # c3 reads relu(add(c2, relu(c1))): the walk stops at the Conv producers
    assert _with_float_inputs(fp32, ["/c3/Conv"]) == sorted(["/c3/Conv", "/Relu_1", "/Add", "/Relu"])
    assert _with_float_inputs(fp32, ["/c2/Conv"]) == sorted(["/c2/Conv", "/Relu"])
    assert _with_float_inputs(fp32, ["/fc/Gemm"]) == ["/fc/Gemm"]  # Flatten is not an activation: the walk ends there


def _onnx_of(model: nn.Module) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return export_onnx(model, (1, 8, 8), Path(tmp) / "m.onnx").read_bytes()


def test_excluded_layer_keeps_float_weights_and_the_others_stay_int8(tmp_path):
    fp32 = export_onnx(_residual(), (1, 8, 8), tmp_path / "m.onnx")
    graph, inits, producer = _graph(quantize_static_qdq(fp32, tmp_path / "q.onnx", torch.randn(32, 1, 8, 8), exclude=["/c3/Conv"]))
    weight_source = {n.name: producer.get(n.input[1]) for n in graph.node if n.op_type in ("Conv", "Gemm")}
    assert weight_source["/c3/Conv"] is None and inits["c3.weight"].dtype == np.float32  # a plain float initializer
    assert all(weight_source[name].op_type == "DequantizeLinear" for name in ("/c1/Conv", "/c2/Conv", "/fc/Gemm"))
    # the relu(add(...)) chain feeding c3 stays in float too (in the all-INT8 file those ops are folded away)
    assert sorted(n.op_type for n in graph.node if n.op_type in ("Relu", "Add")) == ["Add", "Relu", "Relu"]
    (add,) = [n for n in graph.node if n.op_type == "Add"]
    assert [n.op_type for n in graph.node if add.output[0] in n.input] == ["Relu"]  # not requantized between Add and ReLU


def test_a_float_layer_reads_a_float_input_even_when_its_relu_also_feeds_a_quantized_add(tmp_path):
    # c2 reads relu(c1), which also feeds the residual Add; the Add stays INT8, so that ReLU output is quantized
    # for it, and c2 (kept float) must read the value before the Q/DQ pair, not the rounded one
    fp32 = export_onnx(_residual(), (1, 8, 8), tmp_path / "m.onnx")
    calib = torch.randn(32, 1, 8, 8)
    graph, _, producer = _graph(quantize_static_qdq(fp32, tmp_path / "q.onnx", calib, exclude=["/c2/Conv"]))
    nodes = {n.name: n for n in graph.node}
    assert producer[nodes["/c2/Conv"].input[0]].op_type == "Relu"  # the float ReLU's own output
    add_sources = [producer[name].op_type for name in nodes["/Add"].input]
    assert "DequantizeLinear" in add_sources  # the Add still reads INT8 values: only the float reader changed
    assert OrtRuntime(tmp_path / "q.onnx").run(torch.randn(4, 1, 8, 8).numpy()).shape == (4, 5)  # still a valid graph


def test_keep_activations_leaves_the_relus_in_the_graph(tmp_path):
    fp32 = export_onnx(_residual(), (1, 8, 8), tmp_path / "m.onnx")
    graph, _, _ = _graph(quantize_static_qdq(fp32, tmp_path / "q.onnx", torch.randn(32, 1, 8, 8), keep_activations=True))
    assert sum(n.op_type == "Relu" for n in graph.node) == 2


def test_an_empty_calibration_set_is_refused_and_one_image_is_enough(tmp_path):
    from slimvision.errors import ConfigError

    fp32 = export_onnx(_residual(), (1, 8, 8), tmp_path / "m.onnx")
    with pytest.raises(ConfigError, match=r"^the calibration set is empty; pass --calib-samples >= 1 with a non-empty dataset$"):
        quantize_static_qdq(fp32, tmp_path / "q.onnx", torch.zeros(0, 1, 8, 8))
    assert not (tmp_path / "q.onnx").exists()
    one = torch.randn(1, 1, 8, 8)
    _, inits, _ = _graph(quantize_static_qdq(fp32, tmp_path / "q.onnx", one))
    assert inits["input_scale"] == pytest.approx((max(float(one.max()), 0.0) - min(float(one.min()), 0.0)) / 255.0, rel=1e-6)


def test_entropy_calibration_runs(tmp_path):
    fp32 = export_onnx(_residual(), (1, 8, 8), tmp_path / "m.onnx")
    _, inits, _ = _graph(quantize_static_qdq(fp32, tmp_path / "q.onnx", torch.randn(32, 1, 8, 8), "entropy"))
    assert float(inits["input_scale"]) > 0


def test_sensitivity_quantizes_one_layer_alone_with_the_requested_calibration(tmp_path):
    from slimvision.quant.onnx_int8 import layer_sensitivity

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 5)).eval()
    fp32 = export_onnx(net, (1, 8, 8), tmp_path / "m.onnx")
    calib = torch.randn(2048, 1, 8, 8)
    calib[5, 0, 3, 3] = 50.0  # one value in 131072: percentile calibration clips it, min-max would not
    seen = []

    def accuracy_of(path) -> float:
        graph, inits, _ = _graph(path)
        seen.append(([n.op_type for n in graph.node if n.op_type == "Relu"], float(inits["input_scale"]) if "input_scale" in inits else None))
        return 0.5

    layer_sensitivity(fp32, calib, accuracy_of, "percentile")
    assert len(seen) == 3 and all(relus == ["Relu", "Relu"] for relus, _ in seen)  # no activation quantized, only the one layer
    first_layer_scale = seen[0][1]  # only the first conv reads the graph input
    assert first_layer_scale is not None and first_layer_scale < 0.5 * (50.0 - min(float(calib.min()), 0.0)) / 255.0


def test_quantize_calibrates_on_the_first_calib_samples_images_only():
    torch.manual_seed(4)
    images = torch.randn(48, 1, 8, 8)
    images[20:] *= 5.0  # images past the first 16 have a much wider range: calibrating on them would show
    result = quantize(_residual(), images, QuantConfig(calib_samples=16))
    _, inits, _ = _graph_from_bytes(result.onnx_int8)
    first = images[:16]
    low, high = min(float(first.min()), 0.0), max(float(first.max()), 0.0)
    assert inits["input_scale"] == pytest.approx((high - low) / 255.0, rel=1e-6)
    assert result.conditions["calibration"] == "minmax on the first 16 calibration images"


def _graph_from_bytes(data: bytes):
    model = onnx.load_from_string(data)
    return model.graph, {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}, {o: n for n in model.graph.node for o in n.output}


def test_percentile_calibration_clips_a_lone_outlier_that_minmax_keeps(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 32 * 32, 3)).eval()
    fp32 = export_onnx(model, (1, 32, 32), tmp_path / "m.onnx")
    calib = torch.randn(128, 1, 32, 32)
    calib[5, 0, 3, 3] = 50.0  # one value in 131072: above the 99.999th percentile
    scales = {}
    for method in ("minmax", "percentile"):
        _, inits, _ = _graph(quantize_static_qdq(fp32, tmp_path / f"{method}.onnx", calib, method))
        scales[method] = float(inits["input_scale"])
    assert scales["minmax"] == pytest.approx((50.0 - min(float(calib.min()), 0.0)) / 255.0, rel=1e-6)
    # the percentile range ends near the largest Gaussian value (~4.5), not at 50
    assert scales["percentile"] < 0.25 * scales["minmax"]


def _sensitive_linear_net() -> nn.Module:
    """A net whose Linear layer cannot survive INT8 weights and whose convolutions can.

    Every row of the Linear weight has one huge entry (1000) on an input feature that is always 0
    (conv2's channel 0 is dead after its ReLU). Per-channel INT8 then has a step of 1000/127 ~ 7.9,
    which rounds all the small weights that carry the signal to 0.
    """
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 5))
    with torch.no_grad():
        net[2].weight[0] = 0.0
        net[2].bias[0] = -1.0
        net[5].weight[:, 0] = 1000.0
    return net.eval()


def test_keep_float_keeps_the_layer_whose_int8_version_costs_the_most_accuracy():
    net = _sensitive_linear_net()
    torch.manual_seed(1)
    images = torch.randn(200, 1, 8, 8)
    spec = DataSpec(name="tiny", num_classes=5, in_chans=1, image_size=8, mean=(0.0,), std=(1.0,))
    validation = TensorImageDataset(images, net(images).argmax(1), spec, "val")  # labels: the fp32 net's own answers
    result = quantize(net, images, QuantConfig(calib_samples=64, keep_float=1), validation=validation)
    assert result.summary["kept_float"] == ["/5/Gemm"]

    def accuracy(onnx_bytes: bytes) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.onnx"
            path.write_bytes(onnx_bytes)
            return float((runtime_predictions(OrtRuntime(path), validation.images) == validation.labels.numpy()).mean())

    all_int8 = quantize(net, images, QuantConfig(calib_samples=64))
    assert accuracy(result.onnx_int8) >= 0.95 and accuracy(all_int8.onnx_int8) < 0.6

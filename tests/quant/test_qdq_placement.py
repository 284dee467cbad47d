"""Pattern-aware QDQ placement on two small self-written models: an attention block with a fused qkv linear and
a MobileNetV3-style block (depthwise conv, squeeze-excitation, hardswish)."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F

from slimvision.quant import export_onnx
from slimvision.quant.onnx_int8 import quantize_static_qdq
from slimvision.quant.placement import qdq_inputs
from slimvision.quant.runtimes import OpenVinoRuntime, OrtRuntime


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)  # fused q, k, v
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attention = (q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5
        return self.proj((attention.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c))


class TinyViT(nn.Module):
    def __init__(self, dim: int = 32, heads: int = 2, patch: int = 4, image: int = 16):
        super().__init__()
        self.patch = nn.Conv2d(1, dim, patch, patch)
        self.position = nn.Parameter(torch.randn(1, (image // patch) ** 2, dim) * 0.02)
        self.norm1, self.attention, self.norm2 = nn.LayerNorm(dim), Attention(dim, heads), nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, 10)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2) + self.position
        x = x + self.attention(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return self.head(self.norm(x).mean(1))


class TinyMobileNetV3(nn.Module):
    def __init__(self, channels: int = 16, expanded: int = 64):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, channels, 3, 2, 1, bias=False), nn.BatchNorm2d(channels), nn.Hardswish())
        self.expand = nn.Sequential(nn.Conv2d(channels, expanded, 1, bias=False), nn.BatchNorm2d(expanded), nn.Hardswish())
        self.depthwise = nn.Sequential(nn.Conv2d(expanded, expanded, 3, padding=1, groups=expanded, bias=False), nn.BatchNorm2d(expanded), nn.Hardswish())
        self.se_reduce, self.se_expand = nn.Conv2d(expanded, expanded // 4, 1), nn.Conv2d(expanded // 4, expanded, 1)
        self.project = nn.Sequential(nn.Conv2d(expanded, channels, 1, bias=False), nn.BatchNorm2d(channels))
        self.head = nn.Linear(channels, 10)

    def forward(self, x):
        x = self.stem(x)
        y = self.depthwise(self.expand(x))
        y = y * F.hardsigmoid(self.se_expand(F.relu(self.se_reduce(F.adaptive_avg_pool2d(y, 1)))))
        return self.head(F.adaptive_avg_pool2d(x + self.project(y), 1).flatten(1))


def _quantized(model: nn.Module, tmp_path, **kwargs):
    """(QDQ model proto, placement decisions, fp32 path, int8 path) for `model` calibrated on random images."""
    torch.manual_seed(0)
    for module in model.modules():  # non-trivial BatchNorm statistics, as after training
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    fp32 = export_onnx(model.eval(), (1, 16, 16), tmp_path / "fp32.onnx")
    decisions: list = []
    int8 = quantize_static_qdq(fp32, tmp_path / "int8.onnx", torch.randn(64, 1, 16, 16), decisions=decisions, **kwargs)
    return onnx.load(str(int8)), decisions, fp32, int8


def _by_op(qdq_counts: dict[str, int], model: onnx.ModelProto, op_type: str) -> dict[str, int]:
    names = {n.name for n in model.graph.node if n.op_type == op_type}
    return {name: count for name, count in qdq_counts.items() if name in names}


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    torch.manual_seed(0)
    model = TinyViT()
    return model, *_quantized(model, tmp_path_factory.mktemp("vit"))


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    torch.manual_seed(0)
    model = TinyMobileNetV3()
    return model, *_quantized(model, tmp_path_factory.mktemp("mbv3"))


def test_attention_quantizes_the_linears_and_q_k_and_keeps_softmax_v_layernorm_softmax_gelu_and_the_residual_stream_float(vit):
    _, model, decisions, _, _ = vit
    counts = qdq_inputs(model)
    matmuls = _by_op(counts, model, "MatMul")
    assert len(matmuls) == 6  # fused qkv, q @ k^T, softmax @ v, proj, two MLP linears
    linears = {name: count for name, count in matmuls.items() if "qkv" in name or "proj" in name or "mlp" in name}
    assert len(linears) == 4 and all(count == 2 for count in linears.values()), matmuls  # activation and weight
    # q @ k^T reads INT8 q and k (OpenVINO's fused attention kernel runs it in INT8); softmax @ v reads float
    # softmax and v, as in NNCF's transformer scheme
    reasons = {d.node: d.reason for d in decisions}
    attention = {name: count for name, count in matmuls.items() if name not in linears}
    q_k = [name for name in attention if "Q @ K^T" in reasons[name]]
    softmax_v = [name for name in attention if "softmax @ V" in reasons[name]]
    assert len(q_k) == 1 and len(softmax_v) == 1, reasons
    assert counts[q_k[0]] == 2 and counts[softmax_v[0]] == 0, matmuls
    for op_type in ("LayerNormalization", "Softmax", "Erf", "Add"):  # Add: bias, position, GELU's +1, residual
        floats = _by_op(counts, model, op_type)
        assert floats and all(count == 0 for count in floats.values()), (op_type, floats)
    assert not [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0].endswith("Softmax_output_0")]
    assert any("transformer stream" in r for r in reasons.values())


def _activation_zero_points(model: onnx.ModelProto, reader: str) -> list:
    """The zero points of the activation QuantizeLinear nodes whose dequantized output `reader` reads."""
    producer = {output: node for node in model.graph.node for output in node.output}
    constants = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    node = next(n for n in model.graph.node if n.name == reader)
    points = []
    for name in node.input:
        dequant = producer.get(name)
        quant = producer.get(dequant.input[0]) if dequant is not None and dequant.op_type == "DequantizeLinear" else None
        if quant is not None and quant.op_type == "QuantizeLinear":
            points.append(constants[quant.input[2]])
    return points


def test_what_transformer_linears_and_q_k_read_is_int8_symmetric_where_it_goes_negative(vit):
    """LayerNorm, GELU and attention outputs go negative: int8 with zero point 0 (OpenVINO needs no zero-point correction)."""
    _, model, decisions, _, _ = vit
    reasons = {d.node: d.reason for d in decisions}
    readers = [d.node for d in decisions if d.quantized and d.op_type == "MatMul"]
    assert len(readers) == 5  # qkv, Q @ K^T, proj, fc1, fc2
    for reader in readers:
        points = _activation_zero_points(model, reader)
        assert len(points) == (2 if "Q @ K^T" in reasons[reader] else 1), (reader, points)
        assert all(p.dtype == np.int8 and int(p) == 0 for p in points), (reader, points)


class SquaredNormLinear(nn.Module):
    """A linear reading LayerNorm's output squared: a transformer linear whose input never goes negative."""

    def __init__(self):
        super().__init__()
        self.norm, self.linear = nn.LayerNorm(16), nn.Linear(16, 10)

    def forward(self, x):
        y = self.norm(x.reshape(x.shape[0], 16, 16))
        return self.linear(y * y).mean(1)


def test_a_transformer_linear_input_that_never_goes_negative_stays_uint8(tmp_path):
    model, decisions, _, _ = _quantized(SquaredNormLinear(), tmp_path)
    linear = next(d for d in decisions if d.op_type == "MatMul")
    assert "transformer linear" in linear.reason
    points = _activation_zero_points(model, linear.node)
    assert len(points) == 1 and points[0].dtype == np.uint8, points


class TalkingHeadsAttention(nn.Module):
    """EfficientFormerV2-style attention: q, k, v from 1x1 convs, and a 1x1 conv across heads before and after the softmax."""

    def __init__(self, channels: int = 16, heads: int = 2):
        super().__init__()
        self.heads = heads
        self.stem = nn.Conv2d(1, channels, 3, stride=4, padding=1)
        self.q, self.k, self.v = (nn.Conv2d(channels, channels, 1) for _ in range(3))
        self.talk1, self.talk2 = nn.Conv2d(heads, heads, 1), nn.Conv2d(heads, heads, 1)
        self.head = nn.Linear(channels, 10)

    def forward(self, x):
        x = self.stem(x)
        b, c, h, w = x.shape
        q = self.q(x).reshape(b, self.heads, -1, h * w).transpose(-2, -1)
        k = self.k(x).reshape(b, self.heads, -1, h * w)
        v = self.v(x).reshape(b, self.heads, -1, h * w).transpose(-2, -1)
        attention = self.talk2(self.talk1((q @ k) * (c // self.heads) ** -0.5).softmax(-1))
        y = (attention @ v).transpose(-2, -1).reshape(b, c, h, w)
        return self.head(F.adaptive_avg_pool2d(x + y, 1).flatten(1))


def test_talking_heads_attention_quantizes_q_k_on_signed_inputs_and_keeps_softmax_v_float(tmp_path):
    """The softmax reaches @ V through a convolution, and q and k come from convolutions: still Q @ K^T and softmax @ V."""
    model, decisions, _, _ = _quantized(TalkingHeadsAttention(), tmp_path)
    attention = [d for d in decisions if d.op_type == "MatMul"]
    assert len(attention) == 2
    q_k = [d for d in attention if d.quantized]
    assert len(q_k) == 1 and "Q @ K^T" in q_k[0].reason, attention
    points = _activation_zero_points(model, q_k[0].node)
    assert len(points) == 2 and all(p.dtype == np.int8 and int(p) == 0 for p in points), points
    softmax_v = next(d for d in attention if not d.quantized)
    assert "softmax @ V" in softmax_v.reason
    output = next(n for n in model.graph.node if n.name == softmax_v.node).output[0]
    assert not [n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == output]  # it runs in float


def test_convolutional_activations_stay_uint8(mobilenet):
    _, model, decisions, _, _ = mobilenet
    convs = [d.node for d in decisions if d.quantized and d.op_type == "Conv"]
    points = [p for conv in convs for p in _activation_zero_points(model, conv)]
    assert len(points) >= len(convs) and all(p.dtype == np.uint8 for p in points)


def test_squeeze_excitation_stays_float_and_depthwise_and_residual_convs_are_int8(mobilenet):
    _, model, decisions, _, _ = mobilenet
    counts = qdq_inputs(model)
    convs = {d.node: d for d in decisions if d.op_type == "Conv"}
    se = [name for name in convs if "se_" in name]
    assert len(se) == 2 and all(not convs[n].quantized and counts[n] == 0 for n in se)
    depthwise = [name for name in convs if "depthwise" in name]
    assert depthwise and convs[depthwise[0]].quantized and counts[depthwise[0]] >= 2  # input and weight
    assert "depthwise" in convs[depthwise[0]].reason
    others = [n for n in convs if n not in se]
    assert all(counts[n] >= 2 for n in others), {n: counts[n] for n in others}
    residual = _by_op(counts, model, "Add")
    assert list(residual.values()) == [2]  # x + project(y): INT8 flows through the block
    for op_type in ("HardSigmoid", "HardSwish"):  # hardswish is never a quantized op
        assert all(n.op_type != f"QLinear{op_type}" for n in model.graph.node)


def test_without_pattern_awareness_the_transformer_float_parts_get_qdq(tmp_path):
    """The planted bug the tests above must catch: placement by op type alone quantizes GELU's Add and the residual stream."""
    torch.manual_seed(0)
    model, _, _, _ = _quantized(TinyViT(), tmp_path, pattern_aware=False)
    adds = _by_op(qdq_inputs(model), model, "Add")
    assert any(count > 0 for count in adds.values())


@pytest.mark.parametrize("fixture", ["vit", "mobilenet"])
@pytest.mark.parametrize("engine", ["onnxruntime", "openvino"])
def test_int8_agrees_with_fp32(fixture, engine, request):
    torch_model, _, _, fp32, int8 = request.getfixturevalue(fixture)
    torch.manual_seed(1)
    x = torch.randn(128, 1, 16, 16)
    with torch.no_grad():
        reference = torch_model.eval()(x).numpy()
    runtime = OrtRuntime(int8, 1) if engine == "onnxruntime" else OpenVinoRuntime(int8, 1)
    got = runtime.run(x.numpy())
    agreement = float((got.argmax(1) == reference.argmax(1)).mean())
    relative_error = float(np.abs(got - reference).mean() / np.abs(reference).mean())
    assert agreement >= 0.95, agreement
    assert relative_error < 0.05, relative_error

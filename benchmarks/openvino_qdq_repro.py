"""Standalone reproduction: OpenVINO drops the QuantizeLinear/DequantizeLinear on a Conv output that feeds a residual Add.

Needs only numpy, onnx, onnxruntime and openvino (no slimvision). The model is the residual tail of
a ResNet basic block exactly as onnxruntime's QDQ quantizer writes it:

    x_q (uint8) -> DQ -> Conv(DQ(int8 per-channel weights), fp32 bias) -> Q -> DQ --+
                                                                                     Add -> Relu -> Q -> DQ -> y
    r_q (uint8) -> DQ -----------------------------------------------------------------+

ONNX semantics round the Conv output to its uint8 grid (Q -> DQ) before the Add. The reference is
onnxruntime with every graph optimisation disabled, which computes Q/DQ literally in float. The
script also builds the same graph without the Conv-output Q/DQ pair: OpenVINO's output matches that
graph, not the one it was given.

    python benchmarks/openvino_qdq_repro.py            # prints versions and the mismatch shares
"""

from __future__ import annotations

import sys

import numpy as np
import onnx
import onnxruntime as ort
import openvino as ov
from onnx import TensorProto, helper, numpy_helper

CHANNELS, SIZE, BATCH = 16, 16, 8


def build(with_conv_output_qdq: bool, seed: int = 0) -> onnx.ModelProto:
    """The residual tail of a quantized basic block; `with_conv_output_qdq=False` removes the Conv output's Q/DQ pair."""
    rng = np.random.default_rng(seed)
    weight = rng.normal(0, 0.1, (CHANNELS, CHANNELS, 3, 3)).astype(np.float32)
    weight_scale = (np.abs(weight).reshape(CHANNELS, -1).max(1) / 127).astype(np.float32)
    weight_q = np.clip(np.round(weight / weight_scale[:, None, None, None]), -127, 127).astype(np.int8)
    inits = [
        numpy_helper.from_array(weight_q, "w_q"), numpy_helper.from_array(weight_scale, "w_scale"),
        numpy_helper.from_array(np.zeros(CHANNELS, np.int8), "w_zp"),
        numpy_helper.from_array(rng.normal(0, 0.1, CHANNELS).astype(np.float32), "bias"),
        numpy_helper.from_array(np.array(0.02, np.float32), "x_scale"), numpy_helper.from_array(np.array(0, np.uint8), "x_zp"),
        numpy_helper.from_array(np.array(0.03, np.float32), "r_scale"), numpy_helper.from_array(np.array(0, np.uint8), "r_zp"),
        numpy_helper.from_array(np.array(0.025, np.float32), "c_scale"), numpy_helper.from_array(np.array(128, np.uint8), "c_zp"),
        numpy_helper.from_array(np.array(0.04, np.float32), "y_scale"), numpy_helper.from_array(np.array(0, np.uint8), "y_zp"),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zp"], ["x"]),
        helper.make_node("DequantizeLinear", ["r_q", "r_scale", "r_zp"], ["r"]),
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w"], axis=0),
        helper.make_node("Conv", ["x", "w", "bias"], ["c"], pads=[1, 1, 1, 1]),
    ]
    if with_conv_output_qdq:
        nodes += [helper.make_node("QuantizeLinear", ["c", "c_scale", "c_zp"], ["c_q"]), helper.make_node("DequantizeLinear", ["c_q", "c_scale", "c_zp"], ["c_dq"])]
    nodes += [
        helper.make_node("Add", ["c_dq" if with_conv_output_qdq else "c", "r"], ["s"]),
        helper.make_node("Relu", ["s"], ["s_relu"]),
        helper.make_node("QuantizeLinear", ["s_relu", "y_scale", "y_zp"], ["y_q"]),
        helper.make_node("DequantizeLinear", ["y_q", "y_scale", "y_zp"], ["y"]),
    ]
    shape = [BATCH, CHANNELS, SIZE, SIZE]
    graph = helper.make_graph(
        nodes, "qdq_residual", [helper.make_tensor_value_info("x_q", TensorProto.UINT8, shape), helper.make_tensor_value_info("r_q", TensorProto.UINT8, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)], inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def run_literal(model: onnx.ModelProto, feeds: dict) -> np.ndarray:
    """onnxruntime, graph optimisations off: QuantizeLinear / DequantizeLinear as the ONNX spec defines them."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def run_openvino(model: onnx.ModelProto, feeds: dict, config: dict) -> np.ndarray:
    core = ov.Core()
    compiled = core.compile_model(core.read_model(model.SerializeToString(), b""), "CPU", config)
    return compiled.create_infer_request().infer(feeds)[compiled.outputs[0]].copy()


def main() -> int:
    rng = np.random.default_rng(1)
    feeds = {"x_q": rng.integers(0, 120, (BATCH, CHANNELS, SIZE, SIZE), dtype=np.uint8), "r_q": rng.integers(0, 120, (BATCH, CHANNELS, SIZE, SIZE), dtype=np.uint8)}
    given, without = build(True), build(False)
    expected, expected_without = run_literal(given, feeds), run_literal(without, feeds)
    step = 0.04
    print(f"openvino {ov.__version__}, onnxruntime {ort.__version__}, onnx {onnx.__version__}, numpy {np.__version__}, python {sys.version.split()[0]}")
    print(f"ONNX semantics: removing the Conv-output Q/DQ changes {100 * np.mean(np.abs(expected - expected_without) > step / 2):.2f}% of the outputs")
    failed = False
    for label, config in [
        ("default (f32 hint)", {"INFERENCE_PRECISION_HINT": "f32"}),
        ("LP_TRANSFORMS_MODE off, f32", {"INFERENCE_PRECISION_HINT": "f32", "LP_TRANSFORMS_MODE": False}),
    ]:
        got = run_openvino(given, feeds, config)
        off = np.mean(np.abs(got - expected) > step / 2)
        like_without = np.mean(np.abs(got - expected_without) > step / 2)
        print(f"openvino {label:30s}: {100 * off:6.2f}% of outputs differ from the ONNX semantics (max {np.abs(got - expected).max() / step:.0f} steps); "
              f"{100 * like_without:6.2f}% differ from the graph without the Conv-output Q/DQ")
        failed |= off > 0.001
    print("REPRODUCED: OpenVINO does not apply the Conv output's QuantizeLinear/DequantizeLinear before the Add" if failed else "not reproduced")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

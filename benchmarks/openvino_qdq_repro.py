"""Standalone reproduction of two ways OpenVINO's CPU plugin departs from the ONNX semantics of a QDQ model.

Needs only numpy, onnx, onnxruntime and openvino. The reference is onnxruntime with every graph
optimisation disabled, which computes QuantizeLinear / DequantizeLinear literally, in float.

A. The accuracy bug. `openvino_dynamic_batch_concat.onnx` (next to this script's results, 34 KB) is
   the first stage of a quantized CIFAR ResNet-20 (onnxruntime's QDQ quantizer, uint8 activations,
   int8 per-channel weights) up to the option-A shortcut of the first downsampling block:
   DequantizeLinear -> Slice(H, step 2) -> Slice(W, step 2) -> Concat(channels, with one zero channel
   from ConstantOfShape). With the batch dimension left dynamic, OpenVINO's output of that Concat
   differs from the ONNX result in about half of the values (by up to 40 quantization steps); compiled
   with a static batch it matches. Smaller subgraphs cut out of this file do not reproduce. On full
   models this takes resnet20 INT8 from 98.3% to 96.9% top-1 and collapsed resnet56 to 8.6%.

B. A benign departure. A Conv whose quantized output (QuantizeLinear -> DequantizeLinear) feeds a
   residual Add: OpenVINO fuses the Add into the convolution and applies that Q/DQ pair as a clamp to its
   range without rounding to the uint8 grid (LP transformations on; with them off it is rounded). This
   is more precise than the file says, and not the accuracy loss, but per-node comparisons see it first.

    python benchmarks/openvino_qdq_repro.py [path/to/openvino_dynamic_batch_concat.onnx]   # exit code 1 when reproduced
"""

from __future__ import annotations

import sys
from pathlib import Path

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
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def run_openvino(model: onnx.ModelProto, feeds: dict, config: dict) -> np.ndarray:
    core = ov.Core()
    compiled = core.compile_model(core.read_model(model.SerializeToString(), b""), "CPU", config)
    return compiled.create_infer_request().infer(feeds)[compiled.outputs[0]].copy()


def part_a(path: str) -> bool:
    """Dynamic vs static batch on the shortcut prefix; True when OpenVINO departs from ONNX with a dynamic batch."""
    feeds = {"input": np.random.default_rng(0).uniform(-1, 2, (64, 1, 32, 32)).astype(np.float32)}
    model = onnx.load(path)
    expected = run_literal(model, feeds)
    failed = False
    for batch in (None, 64):
        core = ov.Core()
        graph = core.read_model(path)
        if batch:
            graph.reshape({"input": ov.PartialShape([batch, 1, 32, 32])})
        got = core.compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}).create_infer_request().infer({0: feeds["input"]})[0]
        share = np.mean(np.abs(got - expected) > 0.02)
        print(f"A. batch {'dynamic' if batch is None else 'static 64':10s}: {100 * share:6.2f}% of the Concat output differs from ONNX (max abs diff {np.abs(got - expected).max():.3f})")
        failed |= batch is None and share > 0.01
    return failed


def part_b() -> bool:
    """The Conv-output Q/DQ before a residual Add; True when OpenVINO does not round it."""
    rng = np.random.default_rng(1)
    feeds = {"x_q": rng.integers(0, 120, (BATCH, CHANNELS, SIZE, SIZE), dtype=np.uint8), "r_q": rng.integers(0, 120, (BATCH, CHANNELS, SIZE, SIZE), dtype=np.uint8)}
    given, without = build(True), build(False)
    expected, expected_without = run_literal(given, feeds), run_literal(without, feeds)
    step = 0.04
    print(f"B. ONNX semantics: removing the Conv-output Q/DQ changes {100 * np.mean(np.abs(expected - expected_without) > step / 2):.2f}% of the outputs")
    failed = False
    for label, config in [
        ("default (f32 hint)", {"INFERENCE_PRECISION_HINT": "f32"}),
        ("LP_TRANSFORMS_MODE off, f32", {"INFERENCE_PRECISION_HINT": "f32", "LP_TRANSFORMS_MODE": False}),
    ]:
        got = run_openvino(given, feeds, config)
        off = np.mean(np.abs(got - expected) > step / 2)
        print(f"B. openvino {label:28s}: {100 * off:6.2f}% of outputs differ from the ONNX semantics (max {np.abs(got - expected).max() / step:.0f} step)")
        failed |= off > 0.05
    return failed


def main() -> int:
    default = Path(__file__).parent / "results" / "openvino_dynamic_batch_concat.onnx"
    path = sys.argv[1] if len(sys.argv) > 1 else str(default)
    print(f"openvino {ov.__version__}, onnxruntime {ort.__version__}, onnx {onnx.__version__}, numpy {np.__version__}, python {sys.version.split()[0]}")
    a, b = part_a(path), part_b()
    print(f"A (dynamic-batch Concat): {'REPRODUCED' if a else 'not reproduced'}; B (Conv-output Q/DQ before Add not rounded): {'REPRODUCED' if b else 'not reproduced'}")
    return 1 if a or b else 0


if __name__ == "__main__":
    raise SystemExit(main())

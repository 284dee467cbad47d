"""INT8 ONNX models made with onnxruntime's quantization tool: static QDQ (calibrated) and dynamic.

On x86, activations are unsigned 8-bit and weights signed 8-bit per channel: onnxruntime's
integer kernels (VNNI) expect that pairing for convolutions. The exception is what a transformer's
linears and Q @ K^T read: int8 with a symmetric range where it goes negative, which OpenVINO's
FullyConnected and fused attention kernels take without a zero point (`slimvision.quant.placement`).
The same QDQ file runs on onnxruntime and on OpenVINO.

Besides the layers with weights, activations (ReLU, Clip) and residual adds are quantized so that
INT8 tensors flow from one layer to the next: the quantizer folds an activation into its producer's
output range instead of leaving a dequantize -> ReLU -> quantize round trip, and with quantized add
inputs OpenVINO fuses conv + add + ReLU into one INT8 kernel.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import onnx
import torch

from slimvision.errors import ConfigError
from slimvision.io import atomic_write_bytes
from slimvision.quant import placement
from slimvision.quant.export import INPUT_NAME

# Layers with weights: what sensitivity analysis ranks and --keep-float keeps in float.
QUANTIZABLE_OPS = ("Conv", "Gemm", "MatMul")
# Quantized alongside them so that no float round trip sits between two INT8 layers.
FLOW_OPS = ("Relu", "Clip", "Add")


class _BatchReader:
    """onnxruntime CalibrationDataReader over a tensor of images."""

    def __init__(self, images: torch.Tensor, batch_size: int = 32):
        self.batches = [images[i : i + batch_size].numpy() for i in range(0, len(images), batch_size)]
        self.index = 0

    def get_next(self):
        if self.index >= len(self.batches):
            return None
        self.index += 1
        return {INPUT_NAME: self.batches[self.index - 1]}

    def rewind(self) -> None:
        self.index = 0


def _calibration_method(name: str):
    from onnxruntime.quantization import CalibrationMethod

    return {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile, "entropy": CalibrationMethod.Entropy}[name]


def quantizable_nodes(onnx_path: str | Path) -> list[str]:
    """Names of the Conv/Gemm/MatMul nodes the quantizer would turn into INT8."""
    return [n.name for n in onnx.load(str(onnx_path)).graph.node if n.op_type in QUANTIZABLE_OPS]


def _with_float_inputs(model: onnx.ModelProto, exclude: Sequence[str]) -> list[str]:
    """`exclude` plus the activation/add chains feeding those nodes: a layer kept in float reads a float input."""
    producer = {output: node for node in model.graph.node for output in node.output}
    kept = set(exclude)
    stack = [node for node in model.graph.node if node.name in kept]
    while stack:
        for name in stack.pop().input:
            node = producer.get(name)
            if node is not None and node.op_type in FLOW_OPS and node.name not in kept:
                kept.add(node.name)
                stack.append(node)
    return sorted(kept)


def _preprocess(fp32_path: str | Path, out_path: Path) -> Path:
    """onnxruntime's pre-processing (shape inference, graph clean-up) that the quantizer expects, written to `out_path`."""
    from onnxruntime.quantization import quant_pre_process

    quant_pre_process(str(fp32_path), str(out_path), skip_symbolic_shape=True)
    return out_path


def prepared_model(fp32_path: str | Path) -> onnx.ModelProto:
    """The graph the static quantizer works on (node names are the ones `exclude` takes)."""
    with tempfile.TemporaryDirectory() as tmp:
        return onnx.load(str(_preprocess(fp32_path, Path(tmp) / "prepared.onnx")))


def quantize_static_qdq(
    fp32_path: str | Path,
    out_path: str | Path,
    calib_images: torch.Tensor,
    method: str = "minmax",
    exclude: Sequence[str] = (),
    flow_ops: Sequence[str] = FLOW_OPS,
    keep_activations: bool = False,
    pattern_aware: bool = True,
    decisions: list | None = None,
    per_channel: bool = True,
    calibration_cache: str | Path | None = None,
    float_blocks: Sequence[str] = (),
) -> Path:
    """Calibrate on `calib_images` and write a QDQ INT8 model (per-channel weights) to `out_path` atomically.

    `exclude` names layers to keep in float; `flow_ops` are the op types quantized besides the layers
    with weights (pass () to quantize those layers alone). `pattern_aware` keeps float what
    `slimvision.quant.placement` says should be (attention's float parts, squeeze-excitation convs);
    the placement decisions are appended to `decisions` when a list is given. `per_channel=False`
    (one weight scale per tensor) exists for comparison; per-channel is what the runtimes' kernels expect.
    `calibration_cache` (a JSON file) keeps the calibrated ranges: the first call writes it, later calls with
    other `exclude` sets reuse it instead of calibrating again (the ranges do not depend on what is excluded).
    A layer in `exclude` reads a float input: the activations and adds feeding it stay float too, and it reads
    them before any Q/DQ pair. The nodes in `float_blocks` stay float exactly as named: at their boundary they
    read their INT8 neighbours' outputs dequantized (a block kept float between INT8 blocks).
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    if len(calib_images) == 0:
        raise ConfigError("the calibration set is empty; pass --calib-samples >= 1 with a non-empty dataset")
    with tempfile.TemporaryDirectory() as tmp:
        prepared = _preprocess(fp32_path, Path(tmp) / "prepared.onnx")
        target = Path(tmp) / "int8.onnx"
        prepared_model = onnx.load(str(prepared))
        requested = list(exclude)
        overrides: dict[str, list[dict]] = {}
        if pattern_aware:
            plan = placement.plan_placement(prepared_model)
            exclude = sorted(set(exclude) | set(placement.float_nodes(plan)))
            if decisions is not None:
                decisions.extend(plan)
            kept = set(exclude) | set(float_blocks)
            candidates = placement.signed_candidates(prepared_model, [d for d in plan if d.node not in kept])
            if candidates:
                calibration_cache = Path(calibration_cache or Path(tmp) / "calibration.json")
                ranges = _calibrated_ranges(prepared, calib_images, method, [*QUANTIZABLE_OPS, *flow_ops], calibration_cache)
                overrides = {
                    tensor: [{"quant_type": QuantType.QInt8, "symmetric": True}]
                    for tensor in candidates if tensor in ranges and float(np.min(ranges[tensor].range_value[0])) < 0
                }
        # what the caller keeps float (not the placement's float ops, which sit between their neighbours' Q/DQ pairs)
        float_layers = _with_float_inputs(prepared_model, requested) if flow_ops else list(requested)
        excluded = _with_float_inputs(prepared_model, exclude) if flow_ops else list(exclude)
        excluded = sorted(set(excluded) | set(float_blocks))
        quantize_static(
            str(prepared), str(target), _BatchReader(calib_images), quant_format=QuantFormat.QDQ, per_channel=per_channel,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=_calibration_method(method),
            nodes_to_exclude=excluded or None, op_types_to_quantize=[*QUANTIZABLE_OPS, *flow_ops],
            extra_options={
                "CalibMovingAverage": False, "QDQKeepRemovableActivations": keep_activations,
                # a MatMul's output feeds a bias Add, Softmax or the residual stream, all kept float: no Q/DQ there
                "OpTypesToExcludeOutputQuantization": list(placement.FLOAT_OUTPUT_OPS) if pattern_aware else [],
                "TensorQuantOverrides": overrides,
            },
            calibration_cache_path=calibration_cache,
        )
        if float_layers:
            quantized = onnx.load(str(target))
            onnx.save(with_float_reads(quantized, float_layers), str(target))
        atomic_write_bytes(out_path, target.read_bytes())
    return Path(out_path)


def _calibrated_ranges(prepared: Path, calib_images: torch.Tensor, method: str, op_types: Sequence[str], cache: Path):
    """Every calibrated activation range of `prepared`, computed into `cache` (onnxruntime's format, which the quantizer
    then reads instead of calibrating again) unless the cache already holds them."""
    from onnxruntime.quantization import create_calibrator
    from onnxruntime.quantization.calibrate import load_tensors_data, save_tensors_data

    if not cache.is_file():
        with tempfile.TemporaryDirectory() as tmp:
            calibrator = create_calibrator(prepared, list(op_types), str(Path(tmp) / "augmented.onnx"), _calibration_method(method))
            calibrator.collect_data(_BatchReader(calib_images))
            save_tensors_data(calibrator.compute_data(), cache)
    return load_tensors_data(cache)


def with_float_reads(model: onnx.ModelProto, nodes: Sequence[str]) -> onnx.ModelProto:
    """`model` with every node named in `nodes` reading its activation inputs before their Q/DQ pair, not after it.

    The quantizer quantizes a tensor once and points every reader at the DequantizeLinear output, float
    readers included: a layer kept in float whose input (a ReLU, say) also feeds a quantized Add would
    still read the rounded values. Weights are left alone (an excluded layer's weights are not quantized).
    """
    graph = model.graph
    producer = {output: node for node in graph.node for output in node.output}
    constants = {init.name for init in graph.initializer}
    wanted = set(nodes)
    for node in graph.node:
        if node.name not in wanted:
            continue
        for index, name in enumerate(node.input):
            dequant = producer.get(name)
            quant = producer.get(dequant.input[0]) if dequant is not None and dequant.op_type == "DequantizeLinear" else None
            if quant is not None and quant.op_type == "QuantizeLinear" and quant.input[0] not in constants:
                node.input[index] = quant.input[0]
    _drop_unread_qdq(graph)
    return model


def _drop_unread_qdq(graph: onnx.GraphProto) -> None:
    """Remove DequantizeLinear nodes nothing reads any more, the QuantizeLinear nodes that fed only them, and their scales."""
    for op_type in ("DequantizeLinear", "QuantizeLinear"):
        read = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
        for node in [n for n in graph.node if n.op_type == op_type and n.output[0] not in read]:
            graph.node.remove(node)
    read = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    for init in [i for i in graph.initializer if i.name not in read]:
        graph.initializer.remove(init)


def without_conv_output_qdq_before_add(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of a QDQ model where a Conv output that feeds only residual Adds is not quantized (the Q/DQ pair is removed).

    OpenVINO fuses such an Add into the convolution and applies the Conv output's Q/DQ as a clamp to
    its range without rounding to the grid (benchmarks/openvino_qdq_repro.py), so its result differs
    from the ONNX semantics of the file. Without the pair, the file says what OpenVINO computes.
    """
    model = copy.deepcopy(model)
    graph = model.graph
    producer = {output: node for node in graph.node for output in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {o.name for o in graph.output}
    removed = []
    for quant in [n for n in graph.node if n.op_type == "QuantizeLinear"]:
        source = producer.get(quant.input[0])
        dequants = consumers.get(quant.output[0], [])
        if source is None or source.op_type != "Conv" or not dequants or any(d.op_type != "DequantizeLinear" for d in dequants):
            continue
        users = [u for d in dequants for u in consumers.get(d.output[0], [])]
        if not users or any(u.op_type != "Add" for u in users) or any(d.output[0] in graph_outputs for d in dequants):
            continue
        if len(consumers.get(quant.input[0], [])) != 1:  # the float Conv output must feed only this Q
            continue
        for dequant in dequants:
            for user in consumers[dequant.output[0]]:
                for i, name in enumerate(user.input):
                    if name == dequant.output[0]:
                        user.input[i] = quant.input[0]
        removed += [quant, *dequants]
    for node in removed:
        graph.node.remove(node)
    return model


def quantize_dynamic_int8(fp32_path: str | Path, out_path: str | Path) -> Path:
    """Dynamic INT8 (weights INT8 ahead of time, activations quantized on the fly) for MatMul/Gemm-heavy models."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "dyn.onnx"
        quantize_dynamic(str(fp32_path), str(target), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
        atomic_write_bytes(out_path, target.read_bytes())
    return Path(out_path)


def layer_sensitivity(
    fp32_path: str | Path,
    calib_images: torch.Tensor,
    accuracy_of: Callable[[Path], float],
    method: str = "minmax",
) -> list[tuple[str, float]]:
    """[(node, accuracy when only that node is INT8)], least accurate first: the layers to keep in float."""
    nodes = quantizable_nodes(fp32_path)
    scores = []
    with tempfile.TemporaryDirectory() as tmp:
        for node in nodes:
            path = Path(tmp) / "one.onnx"
            quantize_static_qdq(fp32_path, path, calib_images, method, exclude=[n for n in nodes if n != node], flow_ops=())
            scores.append((node, accuracy_of(path)))
    return sorted(scores, key=lambda item: item[1])

"""Pattern-aware QDQ placement: which nodes of an ONNX graph the static quantizer turns into INT8, and why.

What to quantize depends on the block, not only on the op type:
- Layers with weights (Conv, Gemm, MatMul with a constant weight) are quantized; depthwise convolutions
  too, since the weights are per channel, which is what keeps their very different channel ranges apart.
- Attention: the linears (fused qkv, projection, MLP) and Q @ K^T (the activation x activation MatMul whose output
  flows into a Softmax) are quantized; softmax @ V stays float.
  OpenVINO fuses Q @ K^T, Softmax and @ V into one attention kernel. With Q/DQ pairs on q, k, v and the
  softmax output, and uint8 (asymmetric) q and k, that kernel ran in f32 with the fake-quantize steps
  inside it (deit-tiny at 32 px, batch 32: 0.195 ms per block against 0.066 ms in float, OpenVINO's
  per-layer counters). With int8 symmetric q and k and a float softmax @ V, as NNCF's transformer scheme
  places them, it runs in INT8.
- Signed activations: what a transformer's linears and Q @ K^T read (LayerNorm, GELU, attention outputs)
  is quantized to int8 with a symmetric range (no zero point) when its calibrated range goes negative,
  and to uint8 otherwise. OpenVINO runs those FullyConnected layers on signed inputs without a zero-point
  correction. deit-tiny at 32 px, batch 32, OpenVINO, 15 interleaved rounds against NNCF's transformer
  INT8 on the same machine, one run: uint8 everywhere 0.94x (2 threads) / 0.96x (1 thread); signed linears 0.96x /
  0.96x; signed linears and INT8 Q @ K^T 0.97x / 1.05x. Q @ K^T on uint8 q and k: 0.90x / 0.94x.
  Convolutional networks are unchanged (uint8 asymmetric activations, onnxruntime's fastest x86 path).
  LayerNorm, Softmax and GELU are never quantized, and neither is the float Add inside GELU's erf form,
  a bias Add, a position-embedding Add or a residual Add on a transformer's residual stream: that stream
  carries a few very large channels, and one per-tensor uint8 scale for it would flatten all the others.
- Squeeze-and-excitation: the two 1x1 convolutions run on a pooled 1x1 tensor, so INT8 saves nothing
  there and only adds Q/DQ pairs and rounding to the channel scales: they stay float. The hardswish /
  hardsigmoid / sigmoid activations are not quantized ops; they run in float between the Q/DQ pairs
  of their neighbours.
- Convolutional residual Adds (ResNet, MobileNetV2) stay quantized, so INT8 flows through the block.
"""

from __future__ import annotations

import dataclasses

import onnx

# op types the quantizer is asked to quantize (the rest stays float whatever the plan says)
WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")
# quantized ops whose outputs are not quantized (what reads them runs in float)
FLOAT_OUTPUT_OPS = ("MatMul",)
# ops that only move or reshape values: walked through when looking for where a tensor comes from
_TRANSPARENT_OPS = {"Add", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Gather", "Concat", "Slice", "Split",
                    "DequantizeLinear", "QuantizeLinear", "Identity", "Cast"}
# ops whose outputs put a tensor on a transformer's residual stream (or inside GELU)
_TRANSFORMER_OPS = {"MatMul", "Gemm", "LayerNormalization", "Softmax", "Erf", "Gelu"}
# what may sit between a transformer op and a linear reading it: moves, GELU's erf-form products, attention's scale
_TO_LINEAR_OPS = _TRANSPARENT_OPS | {"Mul", "Div"}
# what may sit between Q @ K^T and its Softmax: the scale, a position bias, talking-heads 1x1 convs (EfficientFormerV2)
_TO_SOFTMAX_OPS = {"Mul", "Div", "Add", "Conv", "Reshape", "Transpose", "Identity", "Cast"}
# ops a pooled (1x1) tensor stays pooled through; not Mul: the excitation's Mul rescales the full-size map
_POOLED_THROUGH = {"Relu", "Clip", "HardSigmoid", "HardSwish", "Sigmoid", "Conv", "Identity"}
_POOLING_OPS = {"GlobalAveragePool", "GlobalMaxPool", "ReduceMean"}


@dataclasses.dataclass
class Decision:
    """One node's placement: quantized or kept float, and the pattern that decided it."""

    node: str
    op_type: str
    quantized: bool
    reason: str


class _Graph:
    def __init__(self, model: onnx.ModelProto):
        self.nodes = list(model.graph.node)
        self.producer = {output: node for node in self.nodes for output in node.output}
        self.constants = {init.name for init in model.graph.initializer}
        self.constants |= {n.output[0] for n in self.nodes if n.op_type == "Constant"}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in self.nodes:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def is_constant(self, tensor: str) -> bool:
        """True for initializers and Constant outputs, also behind a DequantizeLinear (an already quantized weight)."""
        node = self.producer.get(tensor)
        if tensor in self.constants:
            return True
        return node is not None and node.op_type in ("DequantizeLinear", "Identity", "Transpose") and self.is_constant(node.input[0])

    def feeds(self, tensor: str, targets: set[str], through: set[str], limit: int = 64) -> bool:
        """True if `tensor` flows into an op in `targets`, walking forward through ops in `through` only."""
        return self._walk(tensor, lambda name: self.consumers.get(name, []), lambda node: list(node.output), targets, through, limit)

    def reaches(self, tensor: str, targets: set[str], through: set[str], limit: int = 64) -> bool:
        """True if `tensor` comes from an op in `targets`, walking back through ops in `through` only."""
        return self._walk(
            tensor, lambda name: [self.producer[name]] if name in self.producer else [],
            lambda node: [i for i in node.input if i and not self.is_constant(i)], targets, through, limit,
        )

    @staticmethod
    def _walk(tensor: str, nodes_at, next_tensors, targets: set[str], through: set[str], limit: int) -> bool:
        """Depth-first from `tensor`: True at the first node of a type in `targets`; continues only past types in `through`."""
        stack, seen = [tensor], set()
        while stack and len(seen) < limit:
            for node in nodes_at(stack.pop()):
                if id(node) in seen:
                    continue
                seen.add(id(node))
                if node.op_type in targets:
                    return True
                if node.op_type in through:
                    stack += next_tensors(node)
        return False


def _group_count(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)


def plan_placement(model: onnx.ModelProto) -> list[Decision]:
    """A decision for every weighted layer and every Add of `model` (an fp32 ONNX graph): INT8 or float, and why."""
    graph = _Graph(model)
    decisions = []
    for node in graph.nodes:
        if node.op_type in ("Conv", "Gemm", "MatMul"):
            decisions.append(_weighted(graph, node))
        elif node.op_type == "Add":
            decisions.append(_add(graph, node))
    return decisions


def _weighted(graph: _Graph, node: onnx.NodeProto) -> Decision:
    data, weight = node.input[0], node.input[1]
    if node.op_type == "Conv" and graph.reaches(data, _POOLING_OPS, _POOLED_THROUGH):
        return Decision(node.name, node.op_type, False, "conv on a pooled 1x1 tensor (squeeze-excitation): INT8 saves nothing there")
    if node.op_type == "MatMul" and not graph.is_constant(weight) and not graph.is_constant(data):
        if graph.feeds(node.output[0], {"Softmax"}, _TO_SOFTMAX_OPS):
            return Decision(node.name, node.op_type, True, "attention Q @ K^T: INT8 on signed symmetric q and k, which OpenVINO's fused attention kernel runs in INT8")
        return Decision(node.name, node.op_type, False, "activation x activation matmul (attention's softmax @ V): stays float (NNCF's transformer scheme too)")
    if node.op_type in ("MatMul", "Gemm") and _reads_transformer(graph, data):
        return Decision(node.name, node.op_type, True, "transformer linear, per-channel weight scales, signed symmetric input where it goes negative")
    if node.op_type == "Conv" and _group_count(node) > 1:
        return Decision(node.name, node.op_type, True, "depthwise/grouped conv, per-channel weight scales")
    return Decision(node.name, node.op_type, True, "layer with weights, per-channel weight scales")


def _reads_transformer(graph: _Graph, tensor: str) -> bool:
    return not graph.is_constant(tensor) and graph.reaches(tensor, _TRANSFORMER_OPS, _TO_LINEAR_OPS)


def signed_candidates(model: onnx.ModelProto, decisions: list[Decision]) -> list[str]:
    """The activations read by the quantized transformer linears and Q @ K^T of `model`: int8 symmetric where their range goes negative.

    q and k are candidates whatever produced them (a linear or, in EfficientFormerV2, a convolution)."""
    graph = _Graph(model)
    quantized = {d.node for d in decisions if d.quantized and d.op_type in ("MatMul", "Gemm")}
    return sorted({
        tensor for node in graph.nodes if node.name in quantized for tensor in node.input[:2]
        if _reads_transformer(graph, tensor) or not any(graph.is_constant(i) for i in node.input[:2])
    })


def _add(graph: _Graph, node: onnx.NodeProto) -> Decision:
    if any(graph.is_constant(i) for i in node.input):
        return Decision(node.name, "Add", False, "adds a constant (bias, position embedding, GELU's +1): stays float")
    if any(graph.reaches(i, _TRANSFORMER_OPS, _TRANSPARENT_OPS) for i in node.input):
        return Decision(node.name, "Add", False, "residual Add on a transformer stream (outlier channels): stays float")
    return Decision(node.name, "Add", True, "convolutional residual Add: INT8 flows through the block")


def float_nodes(decisions: list[Decision]) -> list[str]:
    """Names of the nodes `decisions` keeps in float (unnamed nodes cannot be excluded by name and are left out)."""
    return [d.node for d in decisions if not d.quantized and d.node]


def qdq_inputs(model: onnx.ModelProto) -> dict[str, int]:
    """For every non-Q/DQ node of a QDQ model: how many of its inputs come from a DequantizeLinear (0 = the node runs on float inputs)."""
    producer = {output: node for node in model.graph.node for output in node.output}
    return {
        node.name: sum(1 for i in node.input if i in producer and producer[i].op_type == "DequantizeLinear")
        for node in model.graph.node if node.op_type not in ("QuantizeLinear", "DequantizeLinear")
    }


def summary(decisions: list[Decision]) -> dict:
    """Counts and the float nodes with their reasons, for a quantize report."""
    return {
        "quantized": sum(d.quantized for d in decisions),
        "float": [dataclasses.asdict(d) for d in decisions if not d.quantized],
        "float_activations": "LayerNorm, Softmax, GELU, hardswish, hardsigmoid and sigmoid are never quantized ops",
    }

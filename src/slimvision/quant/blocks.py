"""Per-block INT8 or float, decided by measurement: a block stays INT8 only if that is faster end to end on the
target runtime and the accuracy holds.

Blocks come from the graph structure: the graph is cut wherever a single tensor carries everything downstream
(between residual blocks, between a transformer's attention and MLP halves, between stages), and neighbouring
pieces are merged until at most `max_blocks` remain, so the search stays short.

The search starts from the pattern-aware placement's INT8 model and tries each block in float, one at a time,
in graph order (or, when the INT8 model is outside the accuracy limit, in the order of how much top-1 each block
alone in float recovers). The change is kept only if the model with that block in float is faster than the current one
by more than the measured noise (interleaved A/B rounds) with the accuracy within the limit, or if the
current model is outside the accuracy limit and the float block brings accuracy back up. A tie keeps INT8.
Small accepted gains could add up to noise, so a result whose float blocks were all kept for speed is timed once
more against the all-INT8 start and dropped unless it beats it. The search has a budget in seconds; blocks it
could not try stay INT8, and every block gets a recorded decision either way.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Sequence

import numpy as np
import onnx

from slimvision.quant.runtimes import Runtime, time_runtime_ms
from slimvision.quant.select import ACCURACY_SLACK

# what a block hands to the quantizer's exclude list (the rest of its nodes are not quantized ops anyway)
BLOCK_OPS = ("Conv", "Gemm", "MatMul", "Relu", "Clip", "Add")
_WEIGHTED_OPS = ("Conv", "Gemm", "MatMul")
INT8, FLOAT = "int8", "float"


@dataclasses.dataclass
class Block:
    """A piece of the graph between two single-tensor cuts: the nodes the quantizer would make INT8 in it."""

    name: str
    nodes: list[str]
    weighted: int  # Conv / Gemm / MatMul count


@dataclasses.dataclass
class BlockDecision:
    """Why one block ended up INT8 or float: both models' latency (ms, median of interleaved rounds) and accuracy."""

    block: str
    nodes: int
    kept: str = INT8  # int8 | float
    tried: bool = False
    reason: str = ""
    int8_ms: float | None = None  # the current model, block INT8
    float_ms: float | None = None  # the same model with this block in float
    gain: float | None = None  # 1 - float_ms / int8_ms, median over rounds (positive: float is faster)
    noise: float | None = None  # half the spread of the per-round ratios
    rounds: int = 0
    accuracy_int8: float | None = None
    accuracy_float: float | None = None
    agreement_float: float | None = None
    accuracy_alone: float | None = None  # top-1 with only this block float (ranked when the INT8 start is outside the limit)


@dataclasses.dataclass
class BlockSearch:
    """The search's outcome: the blocks kept float, a decision per block, and the end-to-end check of the result."""

    float_blocks: list[Block]
    decisions: list[BlockDecision]
    # the placement's all-INT8 model against the searched one, interleaved A/B (when any block went float for speed)
    start_ms: float | None = None
    final_ms: float | None = None
    final_gain: float | None = None
    final_noise: float | None = None
    final_reason: str = ""


@dataclasses.dataclass
class BlockSearchConfig:
    """How the search measures: batch size, A/B rounds, the smallest gain worth a change, the time budget."""

    batch_size: int = 32
    budget_s: float = 60.0  # total; the search stops before a trial that would likely overrun it
    rounds: int = 5  # interleaved A/B rounds at most per block
    min_rounds: int = 3  # stop after this many once every round agrees on which is faster
    repeats: int = 5  # timed calls per model per round (at least)
    round_ms: float = 100.0  # and at least this much timed work per model per round
    warmup: int = 2
    min_gain: float = 0.02  # a float block must be at least this much faster (and beat the noise)


def find_blocks(model: onnx.ModelProto, max_blocks: int = 12) -> list[Block]:
    """The graph's blocks in order: pieces between single-tensor cuts that hold a weighted layer, merged to at most `max_blocks`."""
    pieces = _merge_small(_pieces(model), max_blocks)
    names = _block_names(pieces)
    return [Block(name, [n.name for n in nodes if n.op_type in BLOCK_OPS and n.name],
                  sum(n.op_type in _WEIGHTED_OPS for n in nodes)) for name, nodes in zip(names, pieces)]


def _pieces(model: onnx.ModelProto) -> list[list[onnx.NodeProto]]:
    """Nodes (in graph order) cut after every node past which exactly one computed tensor is still needed."""
    graph = model.graph
    constants = {init.name for init in graph.initializer} | {n.output[0] for n in graph.node if n.op_type == "Constant"}
    nodes = [n for n in graph.node if n.op_type != "Constant"]
    last_read: dict[str, int] = {}
    for index, node in enumerate(nodes):
        for name in node.input:
            if name and name not in constants:
                last_read[name] = index
    for output in graph.output:
        last_read[output.name] = len(nodes)
    live = {i.name for i in graph.input if i.name not in constants}
    pieces: list[list[onnx.NodeProto]] = [[]]
    for index, node in enumerate(nodes):
        pieces[-1].append(node)
        live |= {name for name in node.output if last_read.get(name, -1) > index}
        live -= {name for name in node.input if last_read.get(name) == index}
        if len(live) == 1 and index + 1 < len(nodes):
            pieces.append([])
    return [piece for piece in pieces if piece]


def _merge_small(pieces: list[list[onnx.NodeProto]], max_blocks: int) -> list[list[onnx.NodeProto]]:
    """Fold pieces without a weighted layer into a neighbour, then merge the lightest neighbouring pair until `max_blocks` remain."""
    def weight(piece):
        return sum(n.op_type in _WEIGHTED_OPS for n in piece)

    merged: list[list[onnx.NodeProto]] = []
    pending: list[onnx.NodeProto] = []  # weightless nodes before the first weighted piece
    for piece in pieces:
        if weight(piece) == 0 and merged:
            merged[-1] += piece
        elif weight(piece) == 0:
            pending += piece
        else:
            merged.append(pending + piece)
            pending = []
    if not merged:
        return [pending] if pending else []
    while len(merged) > max(1, max_blocks):
        index = min(range(len(merged) - 1), key=lambda i: weight(merged[i]) + weight(merged[i + 1]))
        merged[index : index + 2] = [merged[index] + merged[index + 1]]
    return merged


def _module_paths(nodes: Sequence[onnx.NodeProto]) -> list[list[str]]:
    """The module path of each weighted layer (exported names look like /layer1/layer1.0/conv1/Conv)."""
    return [n.name.strip("/").split("/")[:-1] for n in nodes if n.op_type in _WEIGHTED_OPS and n.name]


def _common_path(paths: list[list[str]]) -> list[str]:
    common: list[str] = []
    for parts in zip(*paths):
        if len(set(parts)) != 1:
            break
        common.append(parts[0])
    return common


def _block_names(pieces: list[list[onnx.NodeProto]]) -> list[str]:
    """A unique name per block: the module its weighted layers share (/layer1/layer1.0) when no other block has layers
    in that module, else the first and last module right under it (/features/features.1 .. features.3)."""
    paths = [_module_paths(nodes) for nodes in pieces]
    names = []
    for index, piece_paths in enumerate(paths):
        common = _common_path(piece_paths) if piece_paths else []
        shared = any(parts[: len(common)] == common for other, other_paths in enumerate(paths) if other != index for parts in other_paths)
        if common and not shared:
            names.append("/" + "/".join(common))
            continue
        children = [parts[len(common)] for parts in piece_paths if len(parts) > len(common)]
        prefix = "/" + "/".join(common) if common else ""
        names.append(f"{prefix}/{children[0]} .. {children[-1]}" if children else f"block {index}")
    # names are keys (of decisions, of the files built): a name two blocks still share gets the block's number
    return [f"{name} #{index}" if names.count(name) > 1 else name for index, name in enumerate(names)]


def ab_rounds(
    current: Runtime, candidate: Runtime, batch: np.ndarray, config: BlockSearchConfig,
    timer: Callable[[Runtime, np.ndarray, int, int, float], float] = time_runtime_ms,
) -> tuple[list[float], list[float]]:
    """(current ms per round, candidate ms per round): interleaved, the order swapped every round; after
    `min_rounds`, stops as soon as every round agrees on which one is faster."""
    a_ms: list[float] = []
    b_ms: list[float] = []
    for round_index in range(config.rounds):
        pair = [(current, a_ms), (candidate, b_ms)]
        for runtime, samples in pair if round_index % 2 == 0 else pair[::-1]:
            samples.append(timer(runtime, batch, config.warmup if round_index == 0 else 0, config.repeats, config.round_ms))
        if round_index + 1 >= config.min_rounds:
            signs = {b < a for a, b in zip(a_ms, b_ms)}
            if len(signs) == 1:
                break
    return a_ms, b_ms


def _compare(a_ms: list[float], b_ms: list[float]) -> tuple[float, float, float, float]:
    """(A's median ms, B's median ms, B's gain over A: 1 - the median per-round ratio B/A, noise: half the spread of those ratios)."""
    ratios = [b / a for a, b in zip(a_ms, b_ms)]
    return float(np.median(a_ms)), float(np.median(b_ms)), 1 - float(np.median(ratios)), (max(ratios) - min(ratios)) / 2


def search_blocks(
    blocks: list[Block],
    build: Callable[[list[Block]], Runtime],
    predict: Callable[[Runtime], np.ndarray],
    labels: np.ndarray,
    reference: np.ndarray,
    accuracy_limit: float,
    input_size: tuple[int, ...],
    config: BlockSearchConfig | None = None,
    timer: Callable[[Runtime, np.ndarray, int, int, float], float] = time_runtime_ms,
    clock: Callable[[], float] = time.perf_counter,
    rank_build: Callable[[list[Block]], Runtime] | None = None,
) -> BlockSearch:
    """The blocks kept float and a decision for every block. `build(float_blocks)` returns the target runtime running the
    model with those blocks in float and the rest INT8; `reference` is the fp32 model's predictions. `rank_build`
    (default `build`) runs the same files on a cheaper engine for the ranking pass, which only orders the trials.

    Each step is measured against the model before it, so small gains can add up to noise: when every float block
    was kept for speed, the result is timed against the all-INT8 start once more and dropped unless it beats it.
    """
    config = config or BlockSearchConfig()
    began = clock()
    batch = np.random.default_rng(0).standard_normal((config.batch_size, *input_size), dtype=np.float32)
    reference_accuracy = float((reference == labels).mean())
    decisions = [BlockDecision(block.name, len(block.nodes)) for block in blocks]
    float_blocks: list[Block] = []
    start = current = build([])
    current_accuracy = float((predict(current) == labels).mean())
    order = list(zip(blocks, decisions))
    if reference_accuracy - current_accuracy > accuracy_limit + ACCURACY_SLACK:
        # outside the limit: try first the blocks whose float version alone brings top-1 back up the most, so
        # the blocks kept float for accuracy are the ones that cost it, not the first in graph order
        for block, decision in order:
            if clock() - began > config.budget_s / 2:
                break
            decision.accuracy_alone = float((predict((rank_build or build)([block])) == labels).mean())
        order.sort(key=lambda pair: -(pair[1].accuracy_alone if pair[1].accuracy_alone is not None else current_accuracy))
    trial_seconds: list[float] = []
    for block, decision in order:
        elapsed = clock() - began
        expected = float(np.median(trial_seconds)) if trial_seconds else 0.0
        if elapsed + expected > config.budget_s:
            decision.reason = f"not tried: {elapsed:.1f} s of the {config.budget_s:.0f} s budget spent (a trial takes about {expected:.1f} s); stays INT8"
            continue
        trial_start = clock()
        decision.tried = True
        candidate = build([*float_blocks, block])
        predictions = predict(candidate)
        decision.accuracy_int8 = current_accuracy
        decision.accuracy_float = float((predictions == labels).mean())
        decision.agreement_float = float((predictions == reference).mean())
        current_drop = reference_accuracy - current_accuracy
        # the accuracy holds if it stays within the limit, or (while another block still breaks it) gets no worse
        candidate_ok = (reference_accuracy - decision.accuracy_float <= accuracy_limit + ACCURACY_SLACK
                        or decision.accuracy_float >= current_accuracy)
        if current_drop > accuracy_limit + ACCURACY_SLACK and decision.accuracy_float > current_accuracy:
            decision.kept = FLOAT
            decision.reason = (f"INT8 here costs accuracy: top-1 {current_accuracy:.4f} with it, {decision.accuracy_float:.4f} in float "
                               f"(fp32 {reference_accuracy:.4f}, limit {100 * accuracy_limit:.1f} points)")
        else:
            a_ms, b_ms = ab_rounds(current, candidate, batch, config, timer)
            decision.int8_ms, decision.float_ms, decision.gain, decision.noise = _compare(a_ms, b_ms)
            decision.rounds = len(a_ms)
            threshold = max(decision.noise, config.min_gain)
            timing = (f"{decision.int8_ms:.2f} ms with it INT8, {decision.float_ms:.2f} ms in float "
                      f"({100 * decision.gain:+.1f}% for float, noise {100 * decision.noise:.1f}%, {decision.rounds} rounds)")
            if decision.gain > threshold and candidate_ok:
                decision.kept = FLOAT
                decision.reason = f"float is faster: {timing}"
            elif decision.gain > threshold:
                decision.reason = (f"float would be faster but top-1 drops to {decision.accuracy_float:.4f} "
                                   f"(fp32 {reference_accuracy:.4f}); stays INT8: {timing}")
            elif decision.gain < -decision.noise:
                decision.reason = f"INT8 pays; stays INT8: {timing}"
            elif decision.gain <= 0:
                decision.reason = f"INT8 is faster, within the noise; stays INT8: {timing}"
            else:
                decision.reason = f"float is not faster by more than {100 * threshold:.1f}% (noise or margin); stays INT8: {timing}"
        if decision.kept == FLOAT:
            float_blocks.append(block)
            current, current_accuracy = candidate, decision.accuracy_float
        trial_seconds.append(clock() - trial_start)
    float_blocks.sort(key=blocks.index)
    result = BlockSearch(float_blocks, decisions)
    if float_blocks:
        _check_against_start(result, start, current, batch, config, timer)
    return result


def _check_against_start(result: BlockSearch, start: Runtime, final: Runtime, batch: np.ndarray, config: BlockSearchConfig, timer) -> None:
    """Time the searched model against the all-INT8 start; drop the speed-only changes if together they do not pay."""
    result.start_ms, result.final_ms, result.final_gain, result.final_noise = _compare(*ab_rounds(start, final, batch, config, timer))
    timing = (f"all INT8 {result.start_ms:.2f} ms, searched {result.final_ms:.2f} ms ({100 * result.final_gain:+.1f}%, "
              f"noise {100 * result.final_noise:.1f}%)")
    for_accuracy = any(d.kept == FLOAT and d.int8_ms is None for d in result.decisions)  # kept for accuracy: not timed
    if for_accuracy or result.final_gain > max(result.final_noise, config.min_gain):
        result.final_reason = f"kept: {timing}" + ("; blocks kept float for accuracy stay float" if for_accuracy else "")
        return
    result.final_reason = f"dropped, every block back to INT8: the float blocks together do not pay ({timing})"
    for decision in result.decisions:
        if decision.kept == FLOAT:
            decision.kept = INT8
            decision.reason += "; undone: the float blocks together were not faster than all INT8"
    result.float_blocks = []


def decision_table(decisions: list[BlockDecision]) -> list[dict]:
    """The decisions as plain dicts, for a JSON summary."""
    return [dataclasses.asdict(d) for d in decisions]

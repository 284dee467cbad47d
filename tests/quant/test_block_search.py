"""Per-block INT8 or float: blocks follow the graph's residual structure, and the search keeps a block float only when
that is measurably faster or INT8 breaks accuracy (timing and accuracy faked; one small real run end to end)."""

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn

from slimvision.data import get_dataset
from slimvision.quant import QuantConfig, export_onnx, quantize
from slimvision.quant.blocks import Block, BlockSearchConfig, find_blocks, search_blocks
from slimvision.quant.onnx_int8 import prepared_model
from slimvision.quant.run import load_quantized_runtime

LABELS = np.arange(100) % 10


class _Residual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(channels, channels, 3, padding=1), nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return torch.relu(x + self.conv2(torch.relu(self.conv1(x))))


class TinyResNet(nn.Module):
    def __init__(self, channels: int = 8, depth: int = 3):
        super().__init__()
        self.stem = nn.Conv2d(1, channels, 3, padding=1)
        self.blocks = nn.Sequential(*[_Residual(channels) for _ in range(depth)])
        self.fc = nn.Linear(channels, 10)

    def forward(self, x):
        x = self.blocks(torch.relu(self.stem(x)))
        return self.fc(x.mean((2, 3)))


def test_blocks_are_the_residual_blocks_between_stem_and_head_and_cover_every_layer(tmp_path):
    model = prepared_model(export_onnx(TinyResNet().eval(), (1, 8, 8), tmp_path / "m.onnx"))
    blocks = find_blocks(model)
    assert [b.name for b in blocks] == ["/stem", "/blocks/blocks.0", "/blocks/blocks.1", "/blocks/blocks.2", "/fc"]
    assert [b.weighted for b in blocks] == [1, 2, 2, 2, 1]
    assert "/blocks/blocks.1/Add" in blocks[2].nodes  # a residual Add belongs to its block
    layers = sorted(n.name for n in model.graph.node if n.op_type in ("Conv", "Gemm", "Add", "Relu"))
    merged = find_blocks(model, max_blocks=2)
    assert len(merged) == 2
    for found in (blocks, merged):  # every quantizable node in exactly one block
        assert sorted(node for b in found for node in b.nodes) == layers


def test_a_float_block_is_exactly_its_nodes_and_the_blocks_before_it_stay_int8(tmp_path):
    from slimvision.quant.onnx_int8 import quantize_static_qdq
    from slimvision.quant.placement import qdq_inputs

    fp32 = export_onnx(TinyResNet().eval(), (1, 8, 8), tmp_path / "m.onnx")
    block = find_blocks(prepared_model(fp32))[2]  # /blocks/blocks.1
    calib = torch.randn(32, 1, 8, 8)
    reads = qdq_inputs(onnx.load(str(quantize_static_qdq(fp32, tmp_path / "b.onnx", calib, float_blocks=block.nodes))))
    assert reads["/blocks/blocks.1/conv1/Conv"] == 1  # the boundary: the INT8 block before it, dequantized
    assert reads["/blocks/blocks.1/conv2/Conv"] == 0 and reads["/blocks/blocks.1/Add"] == 1  # inside: float; the skip: INT8 in
    assert reads["/blocks/blocks.0/Add"] == 2 and reads["/blocks/blocks.2/conv2/Conv"] == 3  # the others stay INT8 (input, weight, bias)
    # whereas --keep-float's walk would take the residual stream before the layer to float as well
    walked = qdq_inputs(onnx.load(str(quantize_static_qdq(fp32, tmp_path / "k.onnx", calib, exclude=["/blocks/blocks.1/conv1/Conv"]))))
    assert walked["/blocks/blocks.0/Add"] == 0


class Chain(nn.Module):
    """A plain chain (no residual): every layer is a cut, so pieces are merged, and several share one parent module."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(*[nn.Sequential(nn.Conv2d(c, 8, 3, padding=1), nn.ReLU()) for c in (1, 8, 8, 8, 8, 8)])
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


def test_merged_blocks_under_one_parent_module_get_distinct_names(tmp_path):
    model = prepared_model(export_onnx(Chain().eval(), (1, 8, 8), tmp_path / "m.onnx"))
    assert [b.name for b in find_blocks(model, max_blocks=3)] == [
        "/features/features.0 .. features.1", "/features/features.2 .. features.3", "/features .. fc"]
    assert len({b.name for b in find_blocks(model)}) == 7  # one per layer, no merging needed


class FakeRuntime:
    """The model with `float_blocks` in float; its latency and predictions are set by the test."""

    def __init__(self, float_blocks):
        self.float_blocks = {b.name for b in float_blocks}

    def run(self, batch):
        return np.zeros((len(batch), 10), np.float32)


BLOCKS = [Block(name, [f"{name}/Conv"], 1) for name in ("b0", "b1", "b2", "b3")]
# ms each block adds to the end-to-end latency, (INT8, float): b1 is slower in INT8, the others pay
BLOCK_MS = {"b0": (1.0, 2.0), "b1": (3.0, 1.0), "b2": (1.0, 2.0), "b3": (1.0, 2.0)}


def timer_of(block_ms, jitter=()):
    """A fake `time_runtime_ms`: 10 ms + each block's share; `jitter` (fractions) is cycled over the calls."""
    calls = []

    def timer(runtime, batch, warmup, repeats, min_total_ms=0.0):
        ms = 10.0 + sum(block_ms[name][name in runtime.float_blocks] for name in block_ms)
        factor = 1 + (jitter[len(calls) % len(jitter)] if jitter else 0.0)
        calls.append(runtime)
        return ms * factor

    timer.calls = calls
    return timer


def predict_breaking(*breaking):
    """Predictions that are 20% wrong while any of `breaking` is INT8."""
    def predict(runtime):
        predictions = LABELS.copy()
        if any(name not in runtime.float_blocks for name in breaking):
            predictions[:20] = (LABELS[:20] + 1) % 10
        return predictions

    return predict


def run_search(timer, predict=predict_breaking(), clock=None, **config):
    """(blocks kept float, decisions) of a search over BLOCKS with the given fake timer, predictions and clock."""
    kwargs = {"clock": clock} if clock else {}
    result = search_blocks(BLOCKS, FakeRuntime, predict, LABELS, LABELS, 0.01, (1, 4, 4), BlockSearchConfig(**config), timer=timer, **kwargs)
    return result.float_blocks, result.decisions


def test_a_block_slower_in_int8_is_kept_float_and_the_rest_stay_int8_with_every_decision_recorded():
    float_blocks, decisions = run_search(timer_of(BLOCK_MS))
    assert [b.name for b in float_blocks] == ["b1"]
    assert [d.block for d in decisions] == ["b0", "b1", "b2", "b3"] and all(d.tried and d.reason for d in decisions)
    assert [d.kept for d in decisions] == ["int8", "float", "int8", "int8"]
    b1 = decisions[1]
    assert b1.int8_ms == 16.0 and b1.float_ms == 14.0 and b1.gain == pytest.approx(2 / 16) and b1.noise == 0.0
    assert b1.reason.startswith("float is faster: 16.00 ms with it INT8, 14.00 ms in float")
    assert decisions[2].int8_ms == 14.0 and decisions[2].float_ms == 15.0  # measured against the model with b1 already float
    assert decisions[0].reason.startswith("INT8 pays")


def test_a_block_that_breaks_accuracy_in_int8_is_kept_float_however_fast_it_is():
    float_blocks, decisions = run_search(timer_of(BLOCK_MS), predict_breaking("b2"))
    assert [b.name for b in float_blocks] == ["b1", "b2"]
    b2 = decisions[2]
    assert b2.kept == "float" and b2.accuracy_int8 == 0.8 and b2.accuracy_float == 1.0
    assert b2.reason.startswith("INT8 here costs accuracy: top-1 0.8000 with it, 1.0000 in float")
    # the INT8 start was outside the limit: each block alone in float was scored, and b2, the only one that helps, went first
    assert [d.accuracy_alone for d in decisions] == [0.8, 0.8, 1.0, 0.8] and decisions[0].kept == "int8"


def test_outside_the_limit_the_block_that_costs_the_accuracy_goes_float_first_not_the_first_in_graph_order():
    # b2 in INT8 costs 20 images, b0 one: b0 alone in float helps a little (0.80), b2 alone brings top-1 within the
    # limit (0.99); tried in graph order, b0 would go float for that little gain
    def predict(runtime):
        predictions = LABELS.copy()
        if "b2" not in runtime.float_blocks:
            predictions[:20] = (LABELS[:20] + 1) % 10
        if "b0" not in runtime.float_blocks:
            predictions[99] = (LABELS[99] + 1) % 10
        return predictions

    ranked = []

    def rank_build(float_blocks):  # the cheaper engine the ranking pass runs on
        ranked.append([b.name for b in float_blocks])
        return FakeRuntime(float_blocks)

    result = search_blocks(BLOCKS, FakeRuntime, predict, LABELS, LABELS, 0.01, (1, 4, 4), timer=timer_of(BLOCK_MS), rank_build=rank_build)
    float_blocks, decisions = result.float_blocks, result.decisions
    assert ranked == [["b0"], ["b1"], ["b2"], ["b3"]]
    assert [d.accuracy_alone for d in decisions] == [0.80, 0.79, 0.99, 0.79]
    assert [b.name for b in float_blocks] == ["b1", "b2"]  # b1 for speed, b2 for accuracy; b0 stays INT8 (INT8 pays there)
    assert decisions[2].reason.startswith("INT8 here costs accuracy") and decisions[0].reason.startswith("INT8 pays")


def test_a_faster_float_block_that_breaks_accuracy_stays_int8_when_the_int8_model_is_accurate():
    def predict(runtime):  # accurate with b1 INT8, 20% wrong with b1 float
        predictions = LABELS.copy()
        if "b1" in runtime.float_blocks:
            predictions[:20] = (LABELS[:20] + 1) % 10
        return predictions

    float_blocks, decisions = run_search(timer_of(BLOCK_MS), predict)
    assert float_blocks == [] and decisions[1].kept == "int8" and "top-1 drops to 0.8000" in decisions[1].reason


def test_a_float_gain_within_the_measured_noise_keeps_int8():
    # b1 in float is 2/16 = 12.5% faster, but every second call is 10% slow: whichever runs second in a round is
    # hit, so the per-round ratios are 15.4/16 and 14/17.6 (gain 3.8%, above the 2% margin, noise 8.4%)
    float_blocks, decisions = run_search(timer_of(BLOCK_MS, (0.0, 0.1)))
    b1 = decisions[1]
    assert b1.kept == "int8" and b1.gain == pytest.approx(1 - 15.4 / 16) and b1.noise == pytest.approx((15.4 / 16 - 14 / 17.6) / 2)
    assert "float is not faster by more than" in b1.reason
    assert float_blocks == []


def test_the_searched_model_is_checked_against_all_int8_and_dropped_if_the_gains_do_not_add_up(monkeypatch):
    # each accepted step measured faster than the model before it, but all INT8 against the result is a tie
    # (what noise accumulated over steps looks like): the result is dropped and every block is back to INT8
    from slimvision.quant import blocks

    measured = {((), ("b0",)): (16.0, 15.0), (("b0",), ("b0", "b1")): (15.0, 14.0), ((), ("b0", "b1")): (16.0, 16.1)}

    def scripted_ab(current, candidate, batch, config, timer):
        a, b = measured.get((tuple(sorted(current.float_blocks)), tuple(sorted(candidate.float_blocks))), (10.0, 12.0))
        return [a] * 3, [b] * 3

    monkeypatch.setattr(blocks, "ab_rounds", scripted_ab)
    result = search_blocks(BLOCKS, FakeRuntime, predict_breaking(), LABELS, LABELS, 0.01, (1, 4, 4))
    assert result.start_ms == 16.0 and result.final_ms == 16.1 and result.final_reason.startswith("dropped")
    assert result.float_blocks == [] and [d.kept for d in result.decisions] == ["int8"] * 4
    assert decisions_undone(result.decisions) == ["b0", "b1"]
    # and a result that does beat all INT8 is kept
    measured[((), ("b0", "b1"))] = (16.0, 14.0)
    result = search_blocks(BLOCKS, FakeRuntime, predict_breaking(), LABELS, LABELS, 0.01, (1, 4, 4))
    assert [b.name for b in result.float_blocks] == ["b0", "b1"] and result.final_reason.startswith("kept")


def decisions_undone(decisions):
    return [d.block for d in decisions if d.reason.endswith("undone: the float blocks together were not faster than all INT8")]


def test_the_a_b_rounds_are_interleaved_with_the_order_swapped():
    timer = timer_of(BLOCK_MS)
    run_search(timer)
    first_trial = [("b1" in r.float_blocks, "b0" in r.float_blocks) for r in timer.calls[:6]]
    # current (nothing float), candidate (b0 float), then candidate first in the second round
    assert first_trial == [(False, False), (False, True), (False, True), (False, False), (False, False), (False, True)]


def test_the_budget_stops_the_search_and_the_blocks_not_reached_stay_int8_with_a_reason():
    now = [0.0]

    def clock():
        now[0] += 5.0  # every reading of the clock is 5 s later: a trial takes 10 s
        return now[0]

    float_blocks, decisions = run_search(timer_of(BLOCK_MS), clock=clock, budget_s=25.0)
    assert [d.tried for d in decisions] == [True, True, False, False]
    assert decisions[2].kept == decisions[3].kept == "int8" and decisions[2].reason.startswith("not tried:")
    assert [b.name for b in float_blocks] == ["b1"]


def test_block_search_config_errors_name_the_option():
    from slimvision.errors import ConfigError

    with pytest.raises(ConfigError, match="--block-search"):
        QuantConfig(backend="torchao", block_search=True)
    with pytest.raises(ConfigError, match="--block-budget"):
        QuantConfig(block_search=True, block_budget_s=0)
    with pytest.raises(ConfigError, match="evaluation"):
        quantize(TinyResNet().eval(), torch.randn(8, 1, 8, 8), QuantConfig(block_search=True, calib_samples=8))


def test_real_block_search_records_a_decision_per_block_and_saves_the_file_it_chose(tmp_path):
    torch.manual_seed(0)
    train, test = get_dataset("digits", "train", 8), get_dataset("digits", "test", 8)
    model = TinyResNet().eval()
    config = QuantConfig(backend="onnxruntime", calib_samples=64, threads=1, batch_size=8, block_search=True, block_budget_s=5)
    result = quantize(model, train, config, evaluation=test)
    record = result.summary["block_search"]["onnxruntime"]
    assert record["blocks"] == 5 and [d["block"] for d in record["decisions"]][0] == "/stem"
    assert all(d["reason"] and d["kept"] in ("int8", "float") for d in record["decisions"])
    assert record["float_blocks"] == [d["block"] for d in record["decisions"] if d["kept"] == "float"]
    runtime, meta = load_quantized_runtime(result.save(tmp_path / "q"), threads=1)
    assert meta["quantize"]["block_search"]["onnxruntime"]["decisions"] == record["decisions"]
    predictions = runtime.run(test.images[:64].numpy()).argmax(1)
    assert (predictions == model(test.images[:64]).argmax(1).numpy()).mean() > 0.9


NET_PY = '''import torch
import torch.nn as nn


class Block(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(channels, channels, 3, padding=1), nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return torch.relu(x + self.conv2(torch.relu(self.conv1(x))))


class Net(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.stem, self.body, self.fc = nn.Conv2d(1, 8, 3, padding=1), Block(8), nn.Linear(8, num_classes)

    def forward(self, x):
        return self.fc(self.body(torch.relu(self.stem(x))).mean((2, 3)))


def build(num_classes=10):
    torch.manual_seed(0)
    return Net(num_classes)
'''


def test_cli_block_search_prints_each_decision_and_writes_them_to_json(cli, tmp_path):
    import json

    (tmp_path / "net.py").write_text(NET_PY)
    code, out, err = cli(
        "quantize", "--model", f"{tmp_path / 'net.py'}:build", "--data", "digits", "--image-size", "8", "--backend", "onnxruntime",
        "--calib-samples", "32", "--threads", "1", "--batch-size", "8", "--block-search", "--block-budget", "3", "--out", tmp_path / "q", "--json",
    )
    assert code == 0, err
    record = json.loads(out)["block_search"]["onnxruntime"]
    assert [d["block"] for d in record["decisions"]] == ["/stem", "/body", "/fc"] and all(d["reason"] for d in record["decisions"])
    code, out, err = cli("quantize", "--model", f"{tmp_path / 'net.py'}:build", "--data", "digits", "--image-size", "8",
                         "--calib-samples", "32", "--threads", "1", "--batch-size", "8", "--block-search", "--block-budget", "3", "--out", tmp_path / "q2")
    assert code == 0, err
    assert "block search on onnxruntime" in out and "/body" in out
    code, _, err = cli("quantize", "--model", f"{tmp_path / 'net.py'}:build", "--data", "digits", "--backend", "torchao", "--block-search", "--out", tmp_path / "q3")
    assert code == 1 and "--block-search" in err

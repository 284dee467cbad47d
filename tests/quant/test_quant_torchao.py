import json

import pytest


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from slimvision.cli import run

    out = tmp_path_factory.mktemp("q") / "sc"
    assert run(["train", "--model", "small_cnn", "--data", "digits", "--epochs", "6", "--out", str(out)]) == 0
    return out


def test_torchao_ptq_end_to_end(cli, trained, tmp_path):
    code, out, err = cli("quantize", "--model", trained, "--backend", "torchao", "--calib-samples", "64", "--threads", "1", "--out", tmp_path / "ao", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["backend"] == "torchao" and (tmp_path / "ao" / "model.pt2").is_file()
    assert summary["accuracy_fp32"] - summary["accuracy_int8"] < 0.05
    # speed-ups are the ratios of the latencies reported next to them (both measured in this run)
    assert summary["speedup_bs32"] == pytest.approx(summary["latency_ms_fp32"]["32"] / summary["latency_ms_int8"]["32"])
    assert summary["speedup_bs1"] == pytest.approx(summary["latency_ms_fp32"]["1"] / summary["latency_ms_int8"]["1"])
    assert min(summary["latency_ms_int8"].values()) > 0
    # the converted graph really computes in INT8: quantize/dequantize ops on int8 tensors
    import torch

    program = torch.export.load(str(tmp_path / "ao" / "model.pt2"))
    targets = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert any("quantize_per_tensor" in t or "quantize_per_channel" in t for t in targets), sorted(targets)[:20]


def test_qat_fine_tunes_fake_quantized_graph_and_converts(trained):
    import torch

    from slimvision.data import get_dataset
    from slimvision.io import load_artifact
    from slimvision.quant.config import QuantConfig
    from slimvision.quant.run import qat_finetune

    model = load_artifact(trained).model
    train = get_dataset("digits", "train").subset(128)
    test = get_dataset("digits", "test")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    converted = qat_finetune(model, train, None, QuantConfig(backend="torchao", mode="qat", qat_epochs=1))
    with torch.no_grad():
        predictions = converted(test.images[:64]).argmax(1)
    assert (predictions == test.labels[:64]).float().mean() > 0.5
    # the source model is untouched: QAT trains a copy
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

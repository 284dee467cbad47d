import json

import pytest


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from slimvision.cli import run

    out = tmp_path_factory.mktemp("q") / "sc"
    assert run(["train", "--model", "small_cnn", "--data", "digits", "--epochs", "6", "--out", str(out)]) == 0
    return out


def test_torchao_ptq_end_to_end(trained, tmp_path):
    # the CLI runs in its own process: inductor compiled inside the suite's interpreter (which also holds
    # OpenVINO and onnxruntime) has crashed that interpreter with SIGSEGV later in the run
    import os
    import subprocess
    import sys

    args = ["quantize", "--model", str(trained), "--backend", "torchao", "--calib-samples", "64", "--threads", "1", "--out", str(tmp_path / "ao"), "--json"]
    run = subprocess.run([sys.executable, "-m", "slimvision", *args], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    code, out, err = run.returncode, run.stdout, run.stderr
    assert code == 0, err[-2000:]
    summary = json.loads(out)
    assert summary["backend"] == "torchao" and (tmp_path / "ao" / "model.pt2").is_file()
    assert summary["accuracy_fp32"] - summary["accuracy_int8"] < 0.05
    # speed-ups are the ratios of the latencies reported next to them (both measured in this run)
    assert summary["speedup_bs32"] == pytest.approx(summary["latency_ms_fp32"]["32"] / summary["latency_ms_int8"]["32"])
    assert summary["speedup_bs1"] == pytest.approx(summary["latency_ms_fp32"]["1"] / summary["latency_ms_int8"]["1"])
    assert min(summary["latency_ms_int8"].values()) > 0
    # the converted graph really computes in INT8: quantize/dequantize ops on int8 tensors
    # (read in its own process too, with torchao imported to register its ops)
    script = (
        "import sys, torch, torchao.quantization.pt2e\n"  # torchao registers the quantized_decomposed ops the program uses
        "p = torch.export.load(sys.argv[1])\n"
        "print(sorted({str(n.target) for n in p.graph.nodes if n.op == 'call_function'}))\n"
    )
    run = subprocess.run([sys.executable, "-c", script, str(tmp_path / "ao" / "model.pt2")], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert run.returncode == 0, run.stderr[-2000:]
    assert "quantize_per_tensor" in run.stdout or "quantize_per_channel" in run.stdout, run.stdout[:2000]


QAT_SCRIPT = """
import sys, torch
from slimvision.data import get_dataset
from slimvision.io import load_artifact
from slimvision.quant.config import QuantConfig
from slimvision.quant.run import qat_finetune

model = load_artifact(sys.argv[1]).model
train = get_dataset("digits", "train").subset(128)
test = get_dataset("digits", "test")
before = {k: v.clone() for k, v in model.state_dict().items()}
converted = qat_finetune(model, train, None, QuantConfig(backend="torchao", mode="qat", qat_epochs=1))
with torch.no_grad():
    predictions = converted(test.images[:64]).argmax(1)
print((predictions == test.labels[:64]).float().mean().item())
# the source model is untouched: QAT trains a copy
print(all(torch.equal(before[k], v) for k, v in model.state_dict().items()))
"""


def test_qat_fine_tunes_fake_quantized_graph_and_converts(trained):
    # Its own process: after the rest of the suite has loaded OpenVINO, onnxruntime and inductor
    # into one interpreter, the QAT export + compile has crashed that interpreter (SIGSEGV).
    import os
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", QAT_SCRIPT, str(trained)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert run.returncode == 0, run.stderr[-2000:]
    accuracy, untouched = run.stdout.split()[-2:]
    assert float(accuracy) > 0.5
    assert untouched == "True"

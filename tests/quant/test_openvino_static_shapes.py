"""OpenVINO runs QDQ files with static shapes, which keeps it on the ONNX semantics (the resnet INT8 collapse)."""

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from slimvision.quant.runtimes import OpenVinoRuntime

# The first stage of a quantized resnet20 up to its option-A shortcut's channel Concat: with a dynamic
# batch, OpenVINO 2026.4 gets about half of that Concat's values wrong (benchmarks/openvino_qdq_repro.py).
SHORTCUT_PREFIX = Path(__file__).parent / "data" / "openvino_dynamic_batch_concat.onnx"


def literal_onnx(path: Path, batch: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, {"input": batch})[0]


def test_openvino_runtime_matches_the_onnx_semantics_of_a_quantized_resnet_shortcut():
    runtime = OpenVinoRuntime(SHORTCUT_PREFIX, threads=1)
    for batch_size in (64, 5):  # each batch size gets its own static-shape compile
        batch = np.random.default_rng(batch_size).uniform(-1, 2, (batch_size, 1, 32, 32)).astype(np.float32)
        got, expected = runtime.run(batch), literal_onnx(SHORTCUT_PREFIX, batch)
        assert got.shape == expected.shape
        assert np.mean(np.abs(got - expected) > 0.02) < 0.001  # 1-ulp rounding ties only, not the ~50% of a dynamic batch
    assert set(runtime.requests) == {64, 5}


def test_predictions_pad_the_last_batch_so_openvino_compiles_one_shape():
    from slimvision.quant.runtimes import runtime_predictions

    runtime = OpenVinoRuntime(SHORTCUT_PREFIX, threads=1)

    class Logits:  # the prefix's output is a feature map: take its first 10 channel means as "logits"
        requests = runtime.requests

        def run(self, batch):
            return runtime.run(batch).mean(axis=(2, 3))[:, :10]

    images = torch.rand(70, 1, 32, 32)
    predictions = runtime_predictions(Logits(), images, batch_size=32)
    expected = literal_onnx(SHORTCUT_PREFIX, images.numpy()).mean(axis=(2, 3))[:, :10].argmax(1)
    assert len(predictions) == 70 and (predictions == expected).mean() > 0.95
    assert set(runtime.requests) == {32}


SURVIVES_SIGCHLD = """
import gc, signal, subprocess, sys
import numpy as np
from slimvision.quant.runtimes import OpenVinoRuntime
first, second = OpenVinoRuntime(sys.argv[1], threads=1), OpenVinoRuntime(sys.argv[1], threads=1)
first.run(np.zeros((1, 1, 32, 32), np.float32))
second.run(np.zeros((1, 1, 32, 32), np.float32))
del first  # destroyed in creation order, as a garbage collector does
gc.collect()
del second
gc.collect()
signal.signal(signal.SIGCHLD, lambda *_: None)
subprocess.run(["true"], check=True)
print("alive")
"""


def test_openvino_runtimes_released_in_any_order_leave_the_process_able_to_handle_signals():
    # Separate OpenVINO Cores freed in creation order leave a freed signal stack installed, and the next
    # SIGCHLD kills the process (benchmarks/openvino_altstack_repro.py); the runtimes share one Core.
    import os
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", SURVIVES_SIGCHLD, str(SHORTCUT_PREFIX)], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert run.returncode == 0 and run.stdout.split()[-1:] == ["alive"], (run.returncode, run.stderr[-2000:])

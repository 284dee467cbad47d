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

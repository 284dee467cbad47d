"""ONNX export with a dynamic batch axis, checked against PyTorch's outputs."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from slimvision.errors import SlimvisionError
from slimvision.io import atomic_write_bytes

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def export_onnx(model: nn.Module, input_size: tuple[int, ...], path: str | Path, check: bool = True) -> Path:
    """Write `model` as ONNX (batch axis dynamic) to `path` atomically; verify it against eager outputs."""
    import onnx

    model = model.eval().cpu()
    example = torch.randn(2, *input_size)
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (example,), buffer, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, opset_version=OPSET, dynamo=False,
            )
    except Exception as exc:  # the exporter raises many types; all mean "this model does not export"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SlimvisionError(f"ONNX export of {type(model).__name__} failed: {first}") from None
    data = buffer.getvalue()
    onnx.checker.check_model(onnx.load_from_string(data))
    if check:
        check_onnx_matches(data, model, example)
    atomic_write_bytes(path, data)
    return Path(path)


def check_onnx_matches(onnx_bytes: bytes, model: nn.Module, example: torch.Tensor, atol: float = 1e-3) -> float:
    """Max abs difference between onnxruntime and eager outputs; raises if above `atol` x max(1, largest |output|).

    The limit grows with the outputs' scale because float32 rounding does: random inputs drive some trained
    networks far outside their data (an EfficientNet-B0 with re-estimated BatchNorm gives logits of 1.5e3
    on them, where a correct export differs by 0.3), while a wrong graph differs by about the outputs' size.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    got = session.run(None, {INPUT_NAME: example.numpy()})[0]
    with torch.no_grad():
        expected = model(example).numpy()
    diff = float(np.abs(got - expected).max())
    scale = float(np.abs(expected).max())
    limit = atol * max(1.0, scale)
    if diff > limit:
        raise SlimvisionError(f"exported ONNX model differs from PyTorch by {diff:.2e} (limit {limit:.1e}: {atol:.0e} x the largest |output|, {scale:.3g}, or 1)")
    return diff

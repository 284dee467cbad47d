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
    """Max abs difference between onnxruntime and eager outputs; raises if above `atol`."""
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    got = session.run(None, {INPUT_NAME: example.numpy()})[0]
    with torch.no_grad():
        expected = model(example).numpy()
    diff = float(np.abs(got - expected).max())
    if diff > atol:
        raise SlimvisionError(f"exported ONNX model differs from PyTorch by {diff:.2e} (limit {atol:.0e})")
    return diff

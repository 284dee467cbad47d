"""PyTorch-native INT8 with torchao's PT2E flow: export -> prepare (x86 inductor quantizer) -> calibrate
-> convert -> torch.compile with inductor freezing. QAT uses prepare_qat and the foundation Trainer."""

from __future__ import annotations

import contextlib
import io
import logging
from typing import Iterable

import torch
import torch.nn as nn

from slimvision.errors import SlimvisionError


@contextlib.contextmanager
def _quiet():
    """torchao logs optional-kernel load failures (CUDA-only extensions) at import; they do not apply on CPU."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(previous)


def _imports():
    try:
        with _quiet():
            import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
            from torchao.quantization.pt2e import allow_exported_model_train_eval, move_exported_model_to_eval, move_exported_model_to_train
            from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e, prepare_qat_pt2e
    except ImportError:
        raise SlimvisionError("the torchao runtime is not installed (pip install torchao)") from None
    return xiq, prepare_pt2e, prepare_qat_pt2e, convert_pt2e, move_exported_model_to_eval, move_exported_model_to_train, allow_exported_model_train_eval


def export_for_quantization(model: nn.Module, example: torch.Tensor):
    batch = torch.export.Dim("batch", min=1, max=1024)
    return torch.export.export(model.eval(), (example,), dynamic_shapes=({0: batch},)).module()


def ptq_pt2e(model: nn.Module, example: torch.Tensor, calib_batches: Iterable[torch.Tensor]) -> nn.Module:
    """A converted (reference-quantized) GraphModule calibrated on `calib_batches`."""
    xiq, prepare_pt2e, _, convert_pt2e, _, _, _ = _imports()
    quantizer = xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(export_for_quantization(model, example), quantizer)
    with torch.no_grad():
        for batch in calib_batches:
            prepared(batch)
    with _quiet():
        return convert_pt2e(prepared)


def prepare_qat(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """A fake-quantized GraphModule in train mode, ready for fine-tuning."""
    xiq, _, prepare_qat_pt2e, _, _, move_to_train, allow_train_eval = _imports()
    quantizer = xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config(is_qat=True))
    batch = torch.export.Dim("batch", min=2, max=1024)
    exported = torch.export.export(model.train(), (example,), dynamic_shapes=({0: batch},)).module()
    prepared = prepare_qat_pt2e(exported, quantizer)
    move_to_train(prepared)
    allow_train_eval(prepared)  # the Trainer switches train/eval for validation; this maps it to BN/dropout
    return prepared


def convert_qat(prepared: nn.Module) -> nn.Module:
    _, _, _, convert_pt2e, move_to_eval, _, _ = _imports()
    move_to_eval(prepared)
    with _quiet():
        return convert_pt2e(prepared)


def compile_frozen(module: nn.Module, example: torch.Tensor):
    """torch.compile with inductor freezing (which lowers a quantized graph to oneDNN INT8 kernels).

    Used for the INT8 model and for its fp32 baseline alike. Each batch size compiles once; the
    recompile limit is raised so a process measuring many models never falls back to eager.
    """
    import torch._dynamo.config as dynamo_config
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    dynamo_config.cache_size_limit = max(dynamo_config.cache_size_limit, 256)
    dynamo_config.recompile_limit = max(getattr(dynamo_config, "recompile_limit", 0), 256)
    compiled = torch.compile(module, dynamic=False)
    with torch.inference_mode(), _quiet():
        compiled(example)  # compile now, not inside a timed region
    return compiled

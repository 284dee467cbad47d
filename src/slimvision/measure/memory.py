"""Peak memory of one forward pass, measured from the allocator events torch's profiler records."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

import torch
from torch.profiler import ProfilerActivity, profile


def peak_forward_memory_bytes(model: torch.nn.Module, input_size: tuple[int, ...], batch_size: int = 1) -> int:
    """Peak bytes held by tensors allocated during an inference forward pass (weights excluded).

    Replays the profiler's allocation/free events in time order and returns the highest running
    total, i.e. the activation memory the pass really needed on this device.
    """
    device = next(model.parameters()).device
    example = torch.randn(batch_size, *input_size, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            model(example)  # warm-up, so one-time allocations (e.g. packed weights) are not counted
            with _quiet_native_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                model(example)
    finally:
        model.train(was_training)
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    wanted = "CUDA" if device.type == "cuda" else "CPU"
    events = sorted((e for e in events if wanted in str(e.device_type())), key=lambda e: e.start_ns())
    running = peak = 0
    for event in events:
        running += event.nbytes()  # negative for frees
        peak = max(peak, running)
    return int(peak)


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """Silence the profiler's native start/stop log lines, which would otherwise pollute CLI output."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)

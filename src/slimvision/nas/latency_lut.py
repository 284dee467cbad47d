"""Per-block latency lookup table measured on this machine, for fast latency constraints during search.

Each distinct block configuration (in, hidden, out, kernel, stride, input side) is timed once
(median of repeats, batch 1, threads pinned) and cached in a JSON file; an arch's predicted
latency is the sum over its blocks plus stem and head. Spaces without a block table (`resnet`,
`cell`) time each whole candidate once instead: slower, still measured. Final Pareto points are
re-measured whole.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from slimvision.io import atomic_write_json
from slimvision.measure import measure_latency, pinned_threads
from slimvision.nas.space import Arch, SearchSpace
from slimvision.nas.spaces.mbv2 import HEAD_CHANNELS, STEM_CHANNELS, MbBlock, block_plan


class LatencyTable:
    def __init__(self, path: str | Path | None, image_size: int = 32, in_chans: int = 3, threads: int = 1, repeats: int = 20, space: SearchSpace | None = None):
        self.path = Path(path) if path else None
        self.space = space
        self.image_size, self.in_chans, self.threads, self.repeats = image_size, in_chans, threads, repeats
        self.table: dict[str, float] = json.loads(self.path.read_text()) if self.path and self.path.is_file() else {}

    def _time(self, key: str, module: torch.nn.Module, input_size: tuple[int, ...]) -> float:
        if key not in self.table:
            with pinned_threads(self.threads):
                self.table[key] = measure_latency(module.eval(), input_size, 1, 3, self.repeats).median_ms
            if self.path:
                atomic_write_json(self.path, self.table)
        return self.table[key]

    def predict_ms(self, arch: Arch) -> float:
        side = self.image_size
        if self.space is not None and self.space.name != "mbv2":
            model = self.space.build(arch, 10, self.in_chans)
            return self._time(f"{self.space.name}/{self.in_chans}/{side}/{self.space.encode(arch)}", model, (self.in_chans, side, side))
        total = self._time(f"stem/{self.in_chans}/{side}", torch.nn.Sequential(torch.nn.Conv2d(self.in_chans, STEM_CHANNELS, 3, 1, 1, bias=False), torch.nn.BatchNorm2d(STEM_CHANNELS)), (self.in_chans, side, side))
        for b in block_plan(arch):
            key = f"block/{b['in']}/{b['hidden']}/{b['out']}/{b['kernel']}/{b['stride']}/{side}"
            total += self._time(key, MbBlock(b["in"], b["hidden"], b["out"], b["kernel"], b["stride"]), (b["in"], side, side))
            side = (side - 1) // b["stride"] + 1
        last = block_plan(arch)[-1]["out"]
        total += self._time(f"head/{last}/{side}", torch.nn.Conv2d(last, HEAD_CHANNELS, 1, bias=False), (last, side, side))
        return total

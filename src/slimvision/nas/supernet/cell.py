"""The `cell` space's weight-sharing supernet: every edge holds all five ops, mixed by per-edge weights.

One module serves every weight-sharing family: DARTS mixes the ops with softmax weights, GDAS with hard
Gumbel samples (only the sampled op runs), ENAS and one-shot evaluation run one arch (`set_active`).
The macro skeleton is `CellNet`'s, so `extract(arch)` copies the chosen ops' weights into a standalone CellNet.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from slimvision.nas.space import Arch, SearchSpace
from slimvision.nas.spaces.cell import EDGE_NAMES, OPS, CellNet, CellSpace, cell_stages, cell_stem, make_op
from slimvision.nas.supernet.shared import Supernet

PARAMETER_FREE_OPS = ("none", "skip", "avgpool")


class MixedOp(nn.Module):
    """All candidate ops of one edge; `forward(x, weights)` = sum_k weights[k] * op_k(x).

    With `hard=True` the weights are one-hot (a straight-through sample), so only the chosen op runs and the
    result is weights[k] * op_k(x): the value of op_k, with the gradient of weights[k] flowing to the logits.
    """

    def __init__(self, channels: int, ops: tuple[str, ...] | list[str] = tuple(OPS)):
        super().__init__()
        self.op_names = list(ops)
        self.ops = nn.ModuleList(make_op(op, channels) for op in self.op_names)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, hard: bool = False) -> torch.Tensor:
        if hard:
            index = int(weights.argmax())
            return weights[index] * self.ops[index](x)
        return sum(weight * op(x) for weight, op in zip(weights, self.ops))


class MixedCell(nn.Module):
    """CellNet's cell with a MixedOp on each of the six edges; `weights` is (6 edges, 5 ops)."""

    def __init__(self, channels: int):
        super().__init__()
        self.edges = nn.ModuleDict({name: MixedOp(channels) for name in EDGE_NAMES})

    def forward(self, x: torch.Tensor, weights: torch.Tensor, hard: bool = False) -> torch.Tensor:
        nodes = [x]
        for target in (1, 2, 3):
            nodes.append(sum(self.edges[f"e{target}_{s}"](nodes[s], weights[EDGE_NAMES.index(f"e{target}_{s}")], hard) for s in range(target)))
        return nodes[3]


def arch_weights(arch: Arch) -> torch.Tensor:
    """The one-hot (6 edges, 5 ops) weights that select `arch`."""
    weights = torch.zeros(len(EDGE_NAMES), len(OPS))
    for row, name in enumerate(EDGE_NAMES):
        weights[row, OPS.index(arch[name])] = 1.0
    return weights


class CellSupernet(Supernet):
    """stem -> [mixed cell -> reduction] x 3 -> head, shared by all 15,625 archs (the cell is shared across stages' archs)."""

    def __init__(self, space: SearchSpace | None = None, num_classes: int = 10, in_chans: int = 1, channels: int = 8):
        space = space or CellSpace(channels=channels)
        super().__init__(space)
        self.num_classes, self.in_chans, self.channels = num_classes, in_chans, channels
        self.stem = cell_stem(in_chans, channels)
        layers, width = cell_stages(channels, lambda width: [MixedCell(width)])
        self.cells = nn.ModuleList(layers)
        self.head = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None, hard: bool = False) -> torch.Tensor:
        """Logits with edge weights `weights` (6, 5); None = the active arch (one-hot, only its ops run)."""
        if weights is None:
            weights, hard = arch_weights(self.active).to(x.device), True
        out = self.stem(x)
        for layer in self.cells:
            out = layer(out, weights, hard) if isinstance(layer, MixedCell) else layer(out)
        return self.fc(torch.flatten(self.pool(self.head(out)), 1))

    @torch.no_grad()
    def extract(self, arch: Arch) -> CellNet:
        """A standalone CellNet of `arch` holding the supernet's weights of the chosen ops."""
        arch = self.space.validate(dict(arch))
        net = CellNet(arch, self.num_classes, self.in_chans, self.channels, cells_per_stage=1)
        state: dict[str, Any] = {}
        for key, value in self.state_dict().items():
            parts = key.split(".")
            if parts[0] == "cells" and parts[2:3] == ["edges"]:  # cells.{i}.edges.{edge}.ops.{k}.rest
                edge, op_index = parts[3], int(parts[5])
                if OPS[op_index] != arch[edge]:
                    continue
                key = ".".join(parts[:4] + parts[6:])
            state[key] = value
        net.load_state_dict(state)
        return net.eval()


def parameter_free_share(weights: torch.Tensor) -> float:
    """Mean probability mass (over edges) on parameter-free ops: the quantity that grows when DARTS collapses."""
    columns = [OPS.index(op) for op in PARAMETER_FREE_OPS]
    return float(weights[:, columns].sum(1).mean())

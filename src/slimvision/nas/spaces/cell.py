"""The NAS-Bench-201-style `cell` space: one 4-node DAG cell, 6 edges, 5 operations per edge."""

from __future__ import annotations

import re
from typing import Any, Callable

import torch
import torch.nn as nn

from slimvision.errors import ConfigError
from slimvision.models.registry import register_model
from slimvision.nas.space import SPACES, Arch, SearchSpace

OPS = ["none", "skip", "conv1x1", "conv3x3", "avgpool"]
# Edge "i<-j": node i receives op(node j); nodes are summed over their incoming edges (node 0 = cell input).
EDGES = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]
EDGE_NAMES = [f"e{i}_{j}" for i, j in EDGES]
NB201_OP_NAMES = {"none": "none", "skip": "skip_connect", "conv1x1": "nor_conv_1x1", "conv3x3": "nor_conv_3x3", "avgpool": "avg_pool_3x3"}


class ReLUConvBN(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1):
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(out_ch))


class Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def make_op(op: str, channels: int) -> nn.Module:
    if op == "none":
        return Zero()
    if op == "skip":
        return nn.Identity()
    if op == "conv1x1":
        return ReLUConvBN(channels, channels, 1)
    if op == "conv3x3":
        return ReLUConvBN(channels, channels, 3)
    if op == "avgpool":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ConfigError(f"unknown cell op {op!r}; known: {OPS}")


class Cell(nn.Module):
    """Node i = sum over j<i of op_{i<-j}(node j); the cell output is node 3."""

    def __init__(self, arch: Arch, channels: int):
        super().__init__()
        self.edges = nn.ModuleDict({name: make_op(arch[name], channels) for name in EDGE_NAMES})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for target in (1, 2, 3):
            nodes.append(sum(self.edges[f"e{target}_{source}"](nodes[source]) for source in range(target)))
        return nodes[3]


def cell_stem(in_chans: int, channels: int) -> nn.Module:
    """The cell networks' stem: conv3x3 -> BN."""
    return nn.Sequential(nn.Conv2d(in_chans, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels))


def cell_stages(channels: int, cells_at: Callable[[int], list[nn.Module]]) -> tuple[list[nn.Module], int]:
    """Three stages of `cells_at(width)` joined by width-doubling reductions; returns (layers, final width).

    The stand-alone networks and the supernet share this layout, so a supernet's weights map onto a network by name.
    """
    layers: list[nn.Module] = []
    width = channels
    for stage in range(3):
        if stage > 0:
            layers.append(nn.Sequential(ReLUConvBN(width, width * 2, 3, 2), ReLUConvBN(width * 2, width * 2, 3)))
            width *= 2
        layers += cells_at(width)
    return layers, width


class CellNet(nn.Module):
    """stem conv3x3 -> [cell x N -> reduction] x 3 stages -> BN-ReLU-GAP-FC (NAS-Bench-201 macro skeleton).

    Reduction blocks are plain ReLU-Conv(stride 2)-BN, ReLU-Conv-BN (no residual shortcut), so every residual
    path in the network is a searched `skip` edge.
    """

    def __init__(self, arch: Arch, num_classes: int = 10, in_chans: int = 1, channels: int = 8, cells_per_stage: int = 1):
        super().__init__()
        self.stem = cell_stem(in_chans, channels)
        layers, width = cell_stages(channels, lambda width: [Cell(arch, width) for _ in range(cells_per_stage)])
        self.cells = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The feature map before global average pooling."""
        return self.head(self.cells(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.forward_features(x)), 1))


def arch_to_string(arch: Arch) -> str:
    """NAS-Bench-201 notation, e.g. |nor_conv_3x3~0|+|skip_connect~0|none~1|+|...~0|...~1|...~2|."""
    groups = []
    for target in (1, 2, 3):
        groups.append("|" + "|".join(f"{NB201_OP_NAMES[arch[f'e{target}_{s}']]}~{s}" for s in range(target)) + "|")
    return "+".join(groups)


def arch_from_string(text: str) -> Arch:
    """Parse NAS-Bench-201 notation (either op vocabulary) or a compact 'op,op,op,op,op,op' list in EDGE_NAMES order."""
    reverse = {v: k for k, v in NB201_OP_NAMES.items()}
    text = text.strip()
    if "~" not in text:
        ops = [part.strip() for part in text.split(",")]
        if len(ops) != len(EDGE_NAMES):
            raise ConfigError(f"cell arch {text!r}: expected {len(EDGE_NAMES)} comma-separated ops")
        arch = dict(zip(EDGE_NAMES, ops))
    else:
        arch = {}
        for target, group in enumerate(text.split("+"), start=1):
            for token in filter(None, group.strip("|").split("|")):
                match = re.fullmatch(r"([a-z0-9_]+)~(\d)", token.strip())
                if not match:
                    raise ConfigError(f"cell arch {text!r}: cannot parse {token!r}")
                arch[f"e{target}_{match.group(2)}"] = match.group(1)
    arch = {name: reverse.get(op, op) for name, op in arch.items()}
    return CellSpace().validate(arch)


@SPACES.register("cell")
class CellSpace(SearchSpace):
    """5^6 = 15,625 architectures, NAS-Bench-201's cell; `build` makes a tiny CellNet (default C=8, 1 cell/stage)."""

    name = "cell"
    model_name = "nas_cell"

    def __init__(self, channels: int = 8, cells_per_stage: int = 1, **_: Any):
        self.channels = channels
        self.cells_per_stage = cells_per_stage

    def choices(self) -> dict[str, list[Any]]:
        return {name: list(OPS) for name in EDGE_NAMES}

    def macs(self, arch: Arch, image_size: int = 32, in_chans: int = 3, num_classes: int = 10) -> int:
        """Conv/linear MACs per image (what `count_macs` counts) by forward hooks: ~20x faster, so searches can screen thousands."""
        from slimvision.nas.proxies.measures import conv_linear_macs

        return conv_linear_macs(self.build(arch, num_classes, in_chans), (in_chans, image_size, image_size))

    def build(self, arch: Arch, num_classes: int = 10, in_chans: int = 3) -> nn.Module:
        return CellNet(self.validate(arch), num_classes, in_chans, self.channels, self.cells_per_stage)

    def model_kwargs(self, arch: Arch) -> dict[str, Any]:
        """Arguments of the `nas_cell` zoo builder that rebuild this arch (for ArchSpec)."""
        return {"arch": arch_to_string(arch), "channels": self.channels, "cells_per_stage": self.cells_per_stage}

    def all_archs(self) -> list[Arch]:
        """Every architecture of the space, in a fixed order."""
        from itertools import product

        return [dict(zip(EDGE_NAMES, ops)) for ops in product(OPS, repeat=len(EDGE_NAMES))]


def nas_cell(num_classes: int = 10, in_chans: int = 1, arch: str | dict = "conv3x3,conv3x3,conv3x3,conv3x3,conv3x3,conv3x3",
             channels: int = 8, cells_per_stage: int = 1) -> CellNet:
    """Zoo builder: a CellNet from an arch string (NAS-Bench-201 notation or six comma-separated ops) or dict."""
    parsed = arch_from_string(arch) if isinstance(arch, str) else CellSpace().validate(dict(arch))
    return CellNet(parsed, num_classes, in_chans, channels, cells_per_stage)


register_model(nas_cell)

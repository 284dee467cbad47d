"""Encoders of a cell architecture that regress a score: one-hot MLP, GCN over the op graph, GATES."""

from __future__ import annotations

import torch
import torch.nn as nn

from slimvision.nas.spaces.cell import EDGES, EDGE_NAMES, OPS


def op_indices(archs: list[dict]) -> torch.Tensor:
    """(N, 6) op index per edge, in EDGE_NAMES order."""
    return torch.tensor([[OPS.index(arch[name]) for name in EDGE_NAMES] for arch in archs], dtype=torch.long)


class OneHotMLP(nn.Module):
    """The 6x5 one-hot of edge ops (the adjacency is fixed in this space) -> 2-layer MLP."""

    def __init__(self, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(len(EDGES) * len(OPS), hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, ops: torch.Tensor) -> torch.Tensor:
        return self.net(nn.functional.one_hot(ops, len(OPS)).float().flatten(1)).squeeze(1)


def _op_graph_adjacency() -> torch.Tensor:
    """Op-node graph: node 0 = input, 1..6 = edge ops, 7 = output; op (i<-j) takes ops ending at j (or the input)."""
    n = len(EDGES) + 2
    adj = torch.eye(n)
    for k, (_, source) in enumerate(EDGES, start=1):
        if source == 0:
            adj[k, 0] = 1
        for m, (target, _) in enumerate(EDGES, start=1):
            if target == source:
                adj[k, m] = 1
    for m, (target, _) in enumerate(EDGES, start=1):
        if target == 3:
            adj[n - 1, m] = 1
    return adj / adj.sum(1, keepdim=True)  # row-normalised: mean over predecessors and self


class GCNEncoder(nn.Module):
    """GCN over the op graph (node features: one-hot op type + input/output markers), output node -> score."""

    def __init__(self, hidden: int = 64, layers: int = 3):
        super().__init__()
        self.register_buffer("adj", _op_graph_adjacency())
        self.embed = nn.Embedding(len(OPS) + 2, hidden)  # + input, output node types
        self.layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers))
        self.head = nn.Linear(hidden, 1)

    def forward(self, ops: torch.Tensor) -> torch.Tensor:
        batch = ops.shape[0]
        types = torch.cat([torch.full((batch, 1), len(OPS)), ops, torch.full((batch, 1), len(OPS) + 1)], 1)
        h = self.embed(types)
        for layer in self.layers:
            h = torch.relu(layer(self.adj @ h))
        return self.head(h[:, -1]).squeeze(1)


class GATESEncoder(nn.Module):
    """GATES: operations transform information flowing along the DAG.

    node_i = sum_j sigmoid(emb(op_ij) W_o) * (node_j W_x); node 0 is a learned input embedding; `none` carries nothing.
    """

    def __init__(self, hidden: int = 64, op_dim: int = 32, steps: int = 2):
        super().__init__()
        self.input = nn.Parameter(torch.randn(hidden) * 0.1)
        self.op_embed = nn.Embedding(len(OPS), op_dim)
        self.gates = nn.ModuleList(nn.Linear(op_dim, hidden) for _ in range(steps))
        self.transforms = nn.ModuleList(nn.Linear(hidden, hidden, bias=False) for _ in range(steps))
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, ops: torch.Tensor) -> torch.Tensor:
        batch = ops.shape[0]
        alive = (ops != OPS.index("none")).float().unsqueeze(-1)
        emb = self.op_embed(ops)
        nodes = [self.input.expand(batch, -1)] + [torch.zeros(batch, self.input.numel())] * 3
        for gate, transform in zip(self.gates, self.transforms):
            new = [nodes[0]]
            for target in (1, 2, 3):
                flow = 0
                for k, (t, source) in enumerate(EDGES):
                    if t == target:
                        flow = flow + alive[:, k] * torch.sigmoid(gate(emb[:, k])) * transform(new[source])
                new.append(flow)
            nodes = new
        return self.head(nodes[3]).squeeze(1)


ENCODERS = {"mlp": OneHotMLP, "gcn": GCNEncoder, "gates": GATESEncoder}

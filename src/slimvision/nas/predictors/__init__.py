"""Predictor evaluators: an encoder trained on N (arch, accuracy) pairs; registered as predictor-{mlp,gcn,gates}[-mse]."""

from __future__ import annotations

import random
from typing import Any

import torch

from slimvision.errors import ConfigError
from slimvision.nas.evaluator import EVALUATORS, Evaluator
from slimvision.nas.predictors.encoders import ENCODERS, op_indices
from slimvision.nas.space import Arch, SearchSpace


def train_predictor(encoder: str, archs: list[Arch], accuracies: list[float], loss: str = "hinge", epochs: int = 300,
                    lr: float = 1e-3, margin: float = 0.1, seed: int = 0) -> torch.nn.Module:
    """Fit ENCODERS[encoder] on (arch, accuracy) pairs, full batch Adam; loss 'mse' (standardised) or 'hinge' (pairwise)."""
    if encoder not in ENCODERS:
        raise ConfigError(f"unknown predictor encoder {encoder!r}; known: {sorted(ENCODERS)}")
    if loss not in ("mse", "hinge"):
        raise ConfigError(f"predictor loss {loss!r}: use 'mse' or 'hinge'")
    if len(archs) < 2:
        raise ConfigError("a predictor needs at least 2 training architectures")
    torch.manual_seed(seed)
    model = ENCODERS[encoder]()
    ops = op_indices(archs)
    target = torch.tensor(accuracies, dtype=torch.float32)
    target = (target - target.mean()) / target.std().clamp_min(1e-8)
    better = (target.unsqueeze(1) > target.unsqueeze(0)).float()  # better[i, j] = 1 if arch i beats arch j
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    for _ in range(epochs):
        optimizer.zero_grad()
        pred = model(ops)
        if loss == "mse":
            value = torch.nn.functional.mse_loss(pred, target)
        else:
            diff = pred.unsqueeze(1) - pred.unsqueeze(0)
            value = (better * torch.relu(margin - diff)).sum() / better.sum().clamp_min(1)
        value.backward()
        optimizer.step()
    return model.eval()


class PredictorEvaluator(Evaluator):
    """Trains on `n_train` archs sampled (seed) from a benchmark table; `train_archs` lists them (excluded from studies)."""

    def __init__(self, space: SearchSpace, encoder: str, loss: str = "hinge", bench: Any = None, n_train: int = 50,
                 seed: int = 0, metric: str = "val_accuracy", **_: Any):
        super().__init__(space)
        from slimvision.nas.bench import BenchTable, load_bench

        table = bench if isinstance(bench, BenchTable) else load_bench(bench)
        if not 2 <= n_train < len(table):
            raise ConfigError(f"predictor n_train={n_train}: need 2 <= n_train < {len(table)} (table size)")
        rows = random.Random(seed).sample(table.rows, n_train)
        # Train on validation accuracy by default so a study against test accuracy is not fitted on its own target.
        accuracies = [row.get(metric, row["accuracy"]) for row in rows]
        self.model = train_predictor(encoder, [row["arch_dict"] for row in rows], accuracies, loss=loss, seed=seed)
        self.train_archs = {row["arch"] for row in rows}
        self.name = f"predictor-{encoder}"

    def score(self, arch: Arch) -> float:
        return self.score_many([arch])[0]

    def score_many(self, archs: list[Arch]) -> list[float]:
        with torch.no_grad():
            return self.model(op_indices(archs)).tolist()


def _factory(encoder: str, loss: str):
    def factory(space: SearchSpace, **context: Any) -> PredictorEvaluator:
        context.setdefault("loss", context.pop("predictor_loss", loss))
        return PredictorEvaluator(space, encoder, **context)

    return factory


for _encoder in ENCODERS:
    for _loss, _suffix in (("hinge", ""), ("mse", "-mse")):
        EVALUATORS.add(f"predictor-{_encoder}{_suffix}", _factory(_encoder, _loss))

__all__ = ["PredictorEvaluator", "train_predictor", "ENCODERS"]

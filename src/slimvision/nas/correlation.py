"""The evaluator-correlation study: how well does each evaluator rank the archs of a benchmark table?"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from slimvision.errors import ConfigError
from slimvision.progress import progress_bar

POINT_METRICS = ("kendall_tau", "spearman", "pearson", "p_at_top10", "p_at_bottom10", "best_ranking_at10", "worst_ranking_at10")


@dataclass
class CorrelateConfig:
    bench: str | Path | None = None  # None = the shipped table
    evaluators: tuple[str, ...] = ("params", "macs", "synflow", "jacob_cov", "snip", "grad_norm", "grasp", "fisher", "naswot", "zen")
    metric: str = "test_accuracy"
    top_fraction: float = 0.1
    bootstrap: int = 1000
    seed: int = 0
    context: dict[str, Any] = field(default_factory=dict)  # passed to every evaluator factory
    progress: bool = True


@dataclass
class CorrelateResult:
    n_archs: int
    evaluators: dict[str, dict[str, Any]]
    conditions: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"n_archs": self.n_archs, "evaluators": self.evaluators, "conditions": self.conditions}


def ranking_metrics(scores: np.ndarray, truth: np.ndarray, top_fraction: float = 0.1) -> dict[str, float]:
    """Kendall tau, Spearman, Pearson, P@top/bottom-K% and Best/WorstRanking@K% of `scores` against `truth`.

    P@topK = |predicted top-K% ∩ true top-K%| / K; BR@K / WR@K = best / worst true-rank percentile (0 = best arch,
    1 = worst) among the evaluator's top-K% archs.
    """
    n = len(truth)
    k = max(1, int(round(top_fraction * n)))
    pred_order = np.argsort(-scores, kind="stable")
    true_order = np.argsort(-truth, kind="stable")
    true_rank = np.empty(n)
    true_rank[true_order] = np.arange(n) / max(1, n - 1)
    constant = np.ptp(scores) == 0 or np.ptp(truth) == 0
    out = {
        "kendall_tau": 0.0 if constant else float(stats.kendalltau(scores, truth).statistic),
        "spearman": 0.0 if constant else float(stats.spearmanr(scores, truth).statistic),
        "pearson": 0.0 if constant else float(stats.pearsonr(scores, truth).statistic),
        "p_at_top10": len(set(pred_order[:k]) & set(true_order[:k])) / k,
        "p_at_bottom10": len(set(pred_order[-k:]) & set(true_order[-k:])) / k,
        "best_ranking_at10": float(true_rank[pred_order[:k]].min()),
        "worst_ranking_at10": float(true_rank[pred_order[:k]].max()),
    }
    return out


def bootstrap_intervals(scores: np.ndarray, truth: np.ndarray, top_fraction: float, repeats: int, seed: int) -> dict[str, list[float]]:
    """95% percentile bootstrap intervals (archs resampled with replacement) of every ranking metric."""
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {name: [] for name in POINT_METRICS}
    n = len(truth)
    for _ in range(repeats):
        index = rng.integers(0, n, n)
        for name, value in ranking_metrics(scores[index], truth[index], top_fraction).items():
            samples[name].append(value)
    intervals = {}
    for name, values in samples.items():
        finite = np.asarray(values, dtype=float)
        finite = finite[np.isfinite(finite)]
        intervals[name] = [float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))] if finite.size else [float("nan")] * 2
    return intervals


def correlate(config: CorrelateConfig) -> CorrelateResult:
    """Score every arch of the table with every evaluator; metrics against the table's accuracy, with bootstrap CIs."""
    from slimvision.nas.bench import load_bench
    from slimvision.nas.evaluator import EVALUATORS
    from slimvision.nas.space import SPACES

    if not config.evaluators:
        raise ConfigError("correlate needs at least one evaluator")
    table = load_bench(config.bench)
    for name in config.evaluators:  # fail before any work on an unknown name
        EVALUATORS.get(name)
    space_kwargs = {k: table.header.get("conditions", {}).get(k) for k in ("channels", "cells_per_stage")}
    space = SPACES.get("cell")(**{k: v for k, v in space_kwargs.items() if v is not None})
    built = table.header.get("conditions", {})
    data = {"data": built.get("data", "digits")} | ({"image_size": built["image_size"]} if built.get("image_size") else {})
    truth_all = np.array(table.accuracies(config.metric), dtype=float)
    results: dict[str, dict[str, Any]] = {}
    with progress_bar(config.progress) as progress:
        for name in config.evaluators:
            evaluator = EVALUATORS.get(name)(space, **(data | {"bench": table} | config.context))
            excluded = set(getattr(evaluator, "train_archs", ()))  # predictors never score their own training archs
            rows = [i for i, row in enumerate(table.rows) if row["arch"] not in excluded]
            task = progress.add_task(name, total=len(rows))
            scores = []
            start = time.perf_counter()
            for i in rows:
                scores.append(evaluator.score(table.rows[i]["arch_dict"]))
                progress.advance(task)
            seconds = time.perf_counter() - start
            score_array = np.array(scores, dtype=float)
            finite = np.isfinite(score_array)  # nan/-inf (e.g. log 0 for a network whose output ignores its input) rank last
            score_array[~finite] = score_array[finite].min() - 1 if finite.any() else 0.0
            truth = truth_all[rows]
            entry: dict[str, Any] = ranking_metrics(score_array, truth, config.top_fraction)
            entry["ci95"] = bootstrap_intervals(score_array, truth, config.top_fraction, config.bootstrap, config.seed)
            entry["n_eval"] = len(rows)
            entry["n_nonfinite"] = int((~finite).sum())
            entry["ms_per_arch"] = 1000 * seconds / max(1, len(rows))
            results[name] = entry
    conditions = {"bench": str(table.path), "metric": config.metric, "top_fraction": config.top_fraction,
                  "bootstrap": config.bootstrap, "threads": _threads(), "bench_conditions": table.header.get("conditions")}
    return CorrelateResult(len(table), results, conditions)


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def plot_correlation(result: CorrelateResult, path: str | Path) -> Path:
    """Bar chart of Kendall tau (with 95% CI) and P@top-K% per evaluator."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result.evaluators)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for axis, metric in zip(axes, ("kendall_tau", "p_at_top10")):
        values = [result.evaluators[n][metric] for n in names]
        low = [values[i] - result.evaluators[n]["ci95"][metric][0] for i, n in enumerate(names)]
        high = [result.evaluators[n]["ci95"][metric][1] - values[i] for i, n in enumerate(names)]
        axis.bar(names, values, yerr=[low, high], capsize=3)
        axis.set_title(metric)
        axis.tick_params(axis="x", rotation=60)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

"""ranking_metrics against values worked out by hand on a 10-arch example (K = 3, asymmetric top and bottom)."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest

from slimvision.nas.correlation import ranking_metrics

# Predicted order is 0, 1, ..., 9. True order (best first): 0, 2, 4, 1, 6, 5, 3, 8, 7, 9.
SCORES = np.arange(10, 0, -1, dtype=float)
TRUTH = np.array([0.95, 0.70, 0.90, 0.40, 0.85, 0.50, 0.60, 0.10, 0.30, 0.05])


def _kendall_by_pairs(x: np.ndarray, y: np.ndarray) -> float:
    """(concordant - discordant) / pairs, no ties."""
    signs = [np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]) for i, j in combinations(range(len(x)), 2)]
    return float(np.sum(signs) / len(signs))


def _spearman_by_ranks(x: np.ndarray, y: np.ndarray) -> float:
    """1 - 6 sum d^2 / (n (n^2 - 1)), no ties."""
    d = x.argsort().argsort() - y.argsort().argsort()
    n = len(x)
    return float(1 - 6 * np.sum(d**2) / (n * (n**2 - 1)))


def test_kendall_spearman_and_pearson_are_each_their_own_formula():
    metrics = ranking_metrics(SCORES, TRUTH, top_fraction=0.3)
    kendall, spearman = _kendall_by_pairs(SCORES, TRUTH), _spearman_by_ranks(SCORES, TRUTH)
    assert abs(kendall - spearman) > 0.05  # the example tells the two apart
    assert metrics["kendall_tau"] == pytest.approx(kendall)
    assert metrics["spearman"] == pytest.approx(spearman)
    assert metrics["pearson"] == pytest.approx(float(np.corrcoef(SCORES, TRUTH)[0, 1]))


def test_precision_at_top_k_uses_exactly_k_archs():
    # K = 3: predicted top {0, 1, 2}, true top {0, 2, 4} -> 2/3 (K = 2 gives 1/2, K = 4 gives 3/4)
    assert ranking_metrics(SCORES, TRUTH, top_fraction=0.3)["p_at_top10"] == pytest.approx(2 / 3)
    # K = 2: predicted {0, 1}, true {0, 2} -> 1/2
    assert ranking_metrics(SCORES, TRUTH, top_fraction=0.2)["p_at_top10"] == pytest.approx(1 / 2)


def test_precision_at_bottom_compares_the_predicted_bottom():
    # K = 3: predicted bottom {7, 8, 9} = true bottom {8, 7, 9} -> 1; the predicted top shares none of them
    assert ranking_metrics(SCORES, TRUTH, top_fraction=0.3)["p_at_bottom10"] == pytest.approx(1.0)
    # reversed scores: predicted bottom {0, 1, 2} vs true bottom {8, 7, 9} -> 0
    assert ranking_metrics(-SCORES, TRUTH, top_fraction=0.3)["p_at_bottom10"] == pytest.approx(0.0)


def test_best_and_worst_ranking_among_the_predicted_top_k():
    # predicted top {0, 1, 2} sit at true positions 0, 3, 1 of 9 -> best 0, worst 3/9
    metrics = ranking_metrics(SCORES, TRUTH, top_fraction=0.3)
    assert metrics["best_ranking_at10"] == pytest.approx(0.0)
    assert metrics["worst_ranking_at10"] == pytest.approx(3 / 9)
    reversed_metrics = ranking_metrics(-SCORES, TRUTH, top_fraction=0.3)  # predicted top {9, 8, 7}: true positions 9, 7, 8
    assert reversed_metrics["best_ranking_at10"] == pytest.approx(7 / 9)
    assert reversed_metrics["worst_ranking_at10"] == pytest.approx(1.0)


def test_perfect_and_reversed_rankings():
    perfect = ranking_metrics(TRUTH * 3 + 1, TRUTH, top_fraction=0.3)
    assert perfect["kendall_tau"] == pytest.approx(1.0) and perfect["p_at_top10"] == 1.0 and perfect["p_at_bottom10"] == 1.0
    reversed_ = ranking_metrics(-TRUTH, TRUTH, top_fraction=0.3)
    assert reversed_["kendall_tau"] == pytest.approx(-1.0) and reversed_["p_at_top10"] == 0.0


def test_k_of_one_compares_single_archs():
    # K = round(0.1 * 10) = 1: predicted best 0 is the true best -> 1 (with K = 2 it would be 1/2)
    assert ranking_metrics(SCORES, TRUTH, top_fraction=0.1)["p_at_top10"] == 1.0
    assert ranking_metrics(SCORES, TRUTH, top_fraction=0.1)["worst_ranking_at10"] == 0.0


def test_rank_percentiles_of_two_archs_are_zero_and_one():
    metrics = ranking_metrics(np.array([0.0, 1.0]), np.array([1.0, 0.0]), top_fraction=0.5)
    assert metrics["best_ranking_at10"] == 1.0 and metrics["worst_ranking_at10"] == 1.0


def test_constant_scores_or_truth_give_zero_correlation_not_nan():
    for scores, truth in ((np.full(10, 3.0), TRUTH), (SCORES, np.full(10, 0.5))):
        metrics = ranking_metrics(scores, truth, top_fraction=0.3)
        assert metrics["kendall_tau"] == 0.0 and metrics["spearman"] == 0.0 and metrics["pearson"] == 0.0


def test_a_score_range_of_exactly_one_is_not_constant():
    scores, truth = (SCORES - 1) / 9, (TRUTH - 0.05) / 0.9  # both span exactly 1
    metrics = ranking_metrics(scores, truth, top_fraction=0.3)
    assert metrics["kendall_tau"] == pytest.approx(_kendall_by_pairs(SCORES, TRUTH))
    assert metrics["spearman"] == pytest.approx(_spearman_by_ranks(SCORES, TRUTH))
    assert metrics["pearson"] == pytest.approx(float(np.corrcoef(scores, truth)[0, 1]))


def test_ties_are_broken_by_arch_order():
    # 40 archs, scores in 4 tied groups of 10; truth ranks arch i as i-th best. With stable tie-breaking the
    # predicted top-4 are archs 0..3 of the best group (all in the true top 4); bottom-4 are archs 36..39.
    n = 40
    scores = np.repeat([4.0, 3.0, 2.0, 1.0], 10)
    rng = np.random.default_rng(0)
    scores = scores[rng.permutation(n)]
    order = np.argsort(-scores, kind="stable")
    truth = np.empty(n)
    truth[order] = np.arange(n, 0, -1, dtype=float)  # the stable order is the true order
    metrics = ranking_metrics(scores, truth, top_fraction=0.1)
    assert metrics["p_at_top10"] == 1.0 and metrics["p_at_bottom10"] == 1.0 and metrics["worst_ranking_at10"] == pytest.approx(3 / 39)


def test_tied_truth_is_broken_by_arch_order():
    # 40 archs whose true accuracies tie in 4 groups of 10; the scores follow the stable true order exactly
    n = 40
    rng = np.random.default_rng(3)  # a permutation where an unstable sort changes both the top-4 and the bottom-4 sets
    truth = np.repeat([0.9, 0.7, 0.5, 0.3], 10)[rng.permutation(n)]
    order = np.argsort(-truth, kind="stable")
    scores = np.empty(n)
    scores[order] = np.arange(n, 0, -1, dtype=float)
    metrics = ranking_metrics(scores, truth, top_fraction=0.1)
    assert metrics["p_at_top10"] == 1.0 and metrics["p_at_bottom10"] == 1.0
    assert metrics["best_ranking_at10"] == 0.0 and metrics["worst_ranking_at10"] == pytest.approx(3 / 39)


def test_default_top_fraction_is_ten_percent():
    # 10 archs: K = 1 by default -> the single predicted best (arch 0) is the true best
    assert ranking_metrics(SCORES, TRUTH)["p_at_top10"] == 1.0
    assert ranking_metrics(SCORES, TRUTH)["worst_ranking_at10"] == 0.0

"""Weight merging: uniform, greedy and learned soups of models fine-tuned from one start."""

from slimvision.merge.run import METHODS, MergeConfig, MergeResult, merge, merge_artifacts
from slimvision.merge.soups import check_compatible, greedy_soup, learned_soup, uniform_soup, weighted_average

__all__ = [
    "METHODS", "MergeConfig", "MergeResult", "merge", "merge_artifacts", "check_compatible", "greedy_soup", "learned_soup",
    "uniform_soup", "weighted_average",
]

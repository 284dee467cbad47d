"""Structured pruning: physical channel removal through torch-pruning, criteria, CHEX, PreCropping."""

from slimvision.prune.chex import ChexConfig, ChexExplorer
from slimvision.prune.criteria import CRITERIA, Criterion
from slimvision.prune.pruner import PruneConfig, PruneResult, prune
from slimvision.prune.run import FinetuneConfig, prune_artifact
from slimvision.prune.schedules import BNSparsityRegulariser

__all__ = [
    "ChexConfig", "ChexExplorer", "CRITERIA", "Criterion", "PruneConfig", "PruneResult", "prune",
    "FinetuneConfig", "prune_artifact", "BNSparsityRegulariser",
]

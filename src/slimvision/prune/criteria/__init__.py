"""Channel importance criteria; each is a small class registered under its CLI name."""

from slimvision.prune.criteria import magnitude  # noqa: F401  (registers)
from slimvision.prune.criteria.base import CRITERIA, Criterion

__all__ = ["CRITERIA", "Criterion"]

"""Neural architecture search: spaces, supernets, samplers, evaluators, proxies, strategies, benchmarks."""

from slimvision.nas.evaluator import EVALUATORS, Evaluator, create_evaluator
from slimvision.nas.space import SPACES, Arch, SearchSpace

__all__ = ["EVALUATORS", "Evaluator", "create_evaluator", "SPACES", "Arch", "SearchSpace"]

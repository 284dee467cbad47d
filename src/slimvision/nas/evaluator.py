"""The evaluator interface: anything that scores an architecture (one-shot, training, proxy, predictor)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable

from slimvision.nas.space import Arch, SearchSpace
from slimvision.registry import Registry


class Evaluator(ABC):
    """score(arch) -> float, higher is better; search strategies do not care what is behind it."""

    name: str = ""
    workers: int = 1  # archs that score_many scores at the same time; above 1, strategies hand it whole batches
    settings: dict[str, Any] | None = None  # what its scores depend on: a search resumes only a log scored the same way

    def __init__(self, space: SearchSpace):
        self.space = space

    @abstractmethod
    def score(self, arch: Arch) -> float: ...

    def score_many(self, archs: list[Arch]) -> list[float]:
        return [self.score(arch) for arch in archs]


# name -> factory(space, **context) -> Evaluator. Context carries what an evaluator may need:
# supernet dir, dataset name, image size, batch, seed... Factories ignore keys they do not use.
EvaluatorFactory = Callable[..., Evaluator]
EVALUATORS: Registry[EvaluatorFactory] = Registry("evaluator", plugins=("slimvision.nas.evaluators", "slimvision.nas.proxies", "slimvision.nas.predictors"))


def create_evaluator(name: str, space: SearchSpace, **context: Any) -> Evaluator:
    evaluator = EVALUATORS.get(name)(space, **context)
    evaluator.settings = scoring_settings(name, context)
    return evaluator


def scoring_settings(name: str, context: dict[str, Any]) -> dict[str, Any]:
    """The evaluator's name and context as JSON values (paths resolved, so a resumed search may name them differently)."""
    return {"evaluator": name, **{key: str(Path(value).resolve()) if isinstance(value, Path) else value for key, value in context.items()}}

"""ProxyEvaluator: score(arch) = proxy(freshly initialised network, one fixed data batch)."""

from __future__ import annotations

from typing import Any

import torch

from slimvision.nas.evaluator import EVALUATORS, Evaluator
from slimvision.nas.proxies.measures import PROXIES
from slimvision.nas.space import Arch, SearchSpace

# Evaluator names; the proxy is registered as grad_norm, but `gradnorm` is accepted too.
EVALUATOR_ALIASES = {"gradnorm": "grad_norm"}


class ProxyEvaluator(Evaluator):
    """Builds arch with init seed `seed`, scores it on `batch_size` training images of `data` (options go to the proxy)."""

    def __init__(self, space: SearchSpace, proxy: str, data: str = "digits", batch_size: int = 64, seed: int = 0,
                 image_size: int | None = None, data_root: str | None = None,
                 proxy_options: dict[str, Any] | None = None, **_: Any):
        super().__init__(space)
        from slimvision.data import get_dataset

        self.proxy = PROXIES.get(proxy)
        self.name = proxy
        self.seed = seed
        self.proxy_options = dict(proxy_options or {})  # e.g. {"repeat": 32} for zen
        dataset = get_dataset(data, "train", image_size=image_size, root=data_root)
        generator = torch.Generator().manual_seed(seed)
        index = torch.randperm(len(dataset), generator=generator)[:batch_size]
        self.batch = (dataset.images[index], dataset.labels[index].long())
        self.num_classes = dataset.spec.num_classes
        self.in_chans = dataset.spec.in_chans

    def score(self, arch: Arch) -> float:
        torch.manual_seed(self.seed)
        model = self.space.build(arch, self.num_classes, self.in_chans)
        return float(self.proxy(model, self.batch, **self.proxy_options))


def _factory(proxy: str):
    def factory(space: SearchSpace, **context: Any) -> ProxyEvaluator:
        return ProxyEvaluator(space, proxy, **context)

    factory.__name__ = f"{proxy}_evaluator"
    return factory


def register_proxy_evaluators() -> None:
    """Add one EVALUATORS entry per proxy (idempotent)."""
    names = {name: name for name in PROXIES.names()} | EVALUATOR_ALIASES
    for evaluator_name, proxy in names.items():
        if evaluator_name not in EVALUATORS:
            EVALUATORS.add(evaluator_name, _factory(proxy))

"""`merge`: soups of saved models, end to end (load, check, merge, measure, save)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch.nn as nn

from slimvision.data import TensorImageDataset, load_splits
from slimvision.errors import ConfigError
from slimvision.io import load_artifact, save_artifact
from slimvision.measure.accuracy import accuracy
from slimvision.merge.soups import check_compatible, greedy_soup, learned_soup, uniform_soup

METHODS = ("uniform", "greedy", "learned")


@dataclass
class MergeConfig:
    """How to merge: method, BatchNorm re-estimation batches, learned-soup granularity and schedule."""

    method: str = "greedy"
    bn_batches: int = 8
    per_layer: bool = False
    learned_epochs: int = 20
    learned_lr: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.bn_batches < 0:
            raise ConfigError(f"--bn-batches must be >= 0, got {self.bn_batches}")
        if self.learned_epochs < 1:
            raise ConfigError(f"--learned-epochs must be >= 1, got {self.learned_epochs}")


@dataclass
class MergeResult:
    """The merged model and what went into it."""

    model: nn.Module
    method: str
    kept: list[int]  # indices of the ingredients in the soup (all of them for uniform/learned)
    coefficients: list[list[float]]  # rows of mixing weights (one row unless per-layer learned)


def merge(models: Sequence[nn.Module], config: MergeConfig, train_set: TensorImageDataset, val_set: TensorImageDataset,
          names: Sequence[str] | None = None) -> MergeResult:
    """Merge same-architecture `models` with `config.method`; held-out choices use `val_set`, BN statistics `train_set`."""
    names = list(names or [f"ingredient {i}" for i in range(len(models))])
    states = [{k: v.detach().cpu() for k, v in m.state_dict().items()} for m in models]
    check_compatible(states, names)
    template = models[0]
    count = len(states)
    if config.method == "uniform":
        soup = uniform_soup(template, states, train_set, config.bn_batches)
        return MergeResult(soup, "uniform", list(range(count)), [[1.0 / count] * count])
    if config.method == "greedy":
        soup, kept, _ = greedy_soup(template, states, val_set, train_set, config.bn_batches)
        return MergeResult(soup, "greedy", kept, [[1.0 / len(kept) if i in kept else 0.0 for i in range(count)]])
    soup, coefficients = learned_soup(template, states, val_set, train_set, config.per_layer, config.learned_epochs,
                                      config.learned_lr, bn_batches=config.bn_batches, seed=config.seed)
    return MergeResult(soup, "learned", list(range(count)), coefficients.tolist())


def merge_artifacts(model_dirs: Sequence[str | Path], config: MergeConfig, out: str | Path, data: str | None = None,
                    image_size: int | None = None, data_root: str | None = None) -> dict[str, Any]:
    """Merge the saved models in `model_dirs` into the artifact `out`; returns val/test accuracy of the soup and each ingredient."""
    artifacts = [load_artifact(path) for path in model_dirs]
    names = [str(path) for path in model_dirs]
    first = artifacts[0]
    check_compatible([a.model.state_dict() for a in artifacts], names)  # names the first differing tensor
    for artifact, name in zip(artifacts[1:], names[1:]):
        if (artifact.arch.source, artifact.arch.model) != (first.arch.source, first.arch.model):
            raise ConfigError(f"cannot merge {name} with {names[0]}: arch.json model {artifact.arch.model!r} vs {first.arch.model!r}")
    train_set, val_set, test_set = load_splits(first.data_spec, data, image_size, data_root)
    result = merge([a.model for a in artifacts], config, train_set, val_set, names)
    ingredients_test = [accuracy(a.model, test_set) for a in artifacts]
    ingredients_val = [accuracy(a.model, val_set) for a in artifacts]
    summary = {
        "method": result.method,
        "accuracy_merged": accuracy(result.model, test_set),
        "accuracy_ingredients": ingredients_test,
        "val_accuracy_merged": accuracy(result.model, val_set),
        "val_accuracy_ingredients": ingredients_val,
        "kept": [names[i] for i in result.kept],
        "coefficients": result.coefficients if len(result.coefficients) == 1 else "per layer (see meta.json)",
        "data": test_set.spec.name,
        "samples_test": len(test_set),
        "samples_val": len(val_set),
    }
    meta = {
        "data": train_set.spec.to_dict(),
        "metrics": {"accuracy": summary["accuracy_merged"], "val_accuracy": summary["val_accuracy_merged"]},
        "metrics_conditions": {"accuracy": f"top-1 on the {test_set.spec.name} test split ({len(test_set)} images)"},
        "merge": {"method": result.method, "config": asdict(config), "ingredients": names, "kept": summary["kept"],
                  "coefficients": result.coefficients, "accuracy_ingredients": ingredients_test, "val_accuracy_ingredients": ingredients_val},
        "parent": names[0],
    }
    save_artifact(result.model, first.arch, out, meta)
    return {**summary, "out": str(out)}

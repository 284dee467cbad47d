"""Evaluators: one-shot (inherited supernet weights + BN re-calibration; accuracy or loss) and few-epoch training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from slimvision.data import dataset_for, make_loader
from slimvision.errors import ConfigError
from slimvision.io import load_artifact
from slimvision.measure import accuracy
from slimvision.nas.evaluator import EVALUATORS, Evaluator
from slimvision.nas.space import Arch, SearchSpace
from slimvision.train import Trainer, TrainConfig, recalibrate_batchnorm, seed_everything

CALIBRATION_BATCHES = 8


class OneShotEvaluator(Evaluator):
    """Score = validation accuracy (or minus loss) of the subnet with inherited weights and re-calibrated BN."""

    name = "oneshot"

    def __init__(self, space: SearchSpace, supernet: str | Path | None = None, metric: str = "accuracy", eval_samples: int = 360, **_: Any):
        super().__init__(space)
        if supernet is None:
            raise ConfigError("the one-shot evaluator needs a trained supernet (--supernet DIR)")
        artifact = load_artifact(supernet)
        if not hasattr(artifact.model, "extract"):
            raise ConfigError(f"{supernet} is not a supernet artifact")
        if artifact.model.space.name != space.name:
            raise ConfigError(f"{supernet} is a supernet of the {artifact.model.space.name!r} space, not {space.name!r} (--space)")
        self.supernet = artifact.model
        train = dataset_for(artifact.data_spec, None, "train")
        self.val = dataset_for(artifact.data_spec, None, "val").subset(eval_samples)
        self.calibration = [images for images, _ in make_loader(train, 64, shuffle=True, seed=0)][:CALIBRATION_BATCHES]
        self.metric = metric

    def subnet(self, arch: Arch) -> torch.nn.Module:
        return recalibrate_batchnorm(self.supernet.extract(arch), self.calibration).eval()

    @torch.no_grad()
    def score(self, arch: Arch) -> float:
        model = self.subnet(arch)
        if self.metric == "accuracy":
            return accuracy(model, self.val)
        logits = model(self.val.images)
        return -F.cross_entropy(logits, self.val.labels).item()


class TrainEvaluator(Evaluator):
    """Score = validation accuracy after a few epochs of stand-alone training from scratch."""

    name = "train"

    def __init__(self, space: SearchSpace, data: str = "digits", image_size: int | None = 32, epochs: int = 3, seed: int = 0, data_root: str | None = None, **_: Any):
        super().__init__(space)
        self.train, self.val = (dataset_for(None, data, split, image_size, data_root) for split in ("train", "val"))
        self.epochs, self.seed = epochs, seed

    def score(self, arch: Arch) -> float:
        seed_everything(self.seed)
        model = self.space.build(arch, self.train.spec.num_classes, self.train.spec.in_chans)
        Trainer(model, self.train, self.val, TrainConfig(epochs=self.epochs, seed=self.seed, progress=False)).fit()
        return accuracy(model, self.val)


EVALUATORS.add("oneshot", OneShotEvaluator)
EVALUATORS.add("oneshot-loss", lambda space, **kw: OneShotEvaluator(space, metric="loss", **kw))
EVALUATORS.add("train", TrainEvaluator)

from slimvision.nas.bench import oracle as _bench_oracle  # noqa: E402,F401  registers the "bench" evaluator

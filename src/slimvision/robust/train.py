"""Adversarial training (PGD, TRADES) as a Trainer plug-in, and `adversarial_train` to produce an artifact.

`AdversarialTraining` is a callback that, at the start of training, swaps the trainer's loss for
an adversarial one; the loop itself is the project's one Trainer. Adversarial examples are made
with the model in eval mode (so the attack does not move BatchNorm's running statistics), the
loss is then taken in train mode.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from slimvision.data import get_dataset
from slimvision.errors import ConfigError
from slimvision.io import resolve_model, save_artifact
from slimvision.measure import accuracy
from slimvision.models.sources import ModelSource
from slimvision.robust.attacks import AttackConfig, PixelModel, pgd
from slimvision.robust.evaluate import adversarial_accuracy, attack_config_for
from slimvision.train.callbacks import Callback
from slimvision.train.config import TrainConfig
from slimvision.train.trainer import Trainer, seed_everything

METHODS = ("pgd", "trades")


@dataclass
class AdversarialConfig:
    """Adversarial training: method (pgd = Madry et al., trades), attack budget, TRADES beta."""

    method: str = "pgd"
    attack: AttackConfig = field(default_factory=lambda: AttackConfig(eps=0.1, steps=5))
    trades_beta: float = 6.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not self.trades_beta >= 0:
            raise ConfigError(f"--trades-beta must be >= 0, got {self.trades_beta}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "attack": self.attack.to_dict()}


def _kl_to_clean(adv_logits: torch.Tensor, clean_probs: torch.Tensor) -> torch.Tensor:
    return F.kl_div(F.log_softmax(adv_logits, dim=1), clean_probs, reduction="sum")


class AdversarialTraining(Callback):
    """Replaces the trainer's loss with PGD adversarial training or TRADES; pixels use the data's mean/std."""

    def __init__(self, config: AdversarialConfig, mean: list[float], std: list[float]):
        self.config = config
        self.mean, self.std = mean, std
        self.generator = torch.Generator().manual_seed(config.attack.seed)

    def on_train_begin(self, trainer: Trainer) -> None:
        trainer.loss_fn = self.loss

    def state_dict(self) -> dict[str, Any]:
        """The attack's random stream, so a resumed run draws the same random starts."""
        return {"generator": self.generator.get_state().tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "generator" in state:
            self.generator.set_state(torch.tensor(state["generator"], dtype=torch.uint8))

    def _adversarial_pixels(self, pixel_model: PixelModel, pixels: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        attack = self.config.attack
        was_training = pixel_model.training
        pixel_model.eval()
        try:
            if self.config.method == "pgd":
                return pgd(pixel_model, pixels, targets, attack, self.generator)
            # TRADES: maximise KL(f(x') || f(x)) from a small random start
            with torch.no_grad():
                clean_probs = F.softmax(pixel_model(pixels), dim=1)
            start = pixels + 0.001 * torch.randn(pixels.shape, generator=self.generator).to(pixels.device)
            return pgd(pixel_model, pixels, clean_probs, attack, self.generator, loss_fn=_kl_to_clean, start=start)
        finally:
            pixel_model.train(was_training)

    def loss(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(adversarial loss, logits on the adversarial inputs) for one batch of normalised inputs."""
        pixel_model = PixelModel(model, self.mean, self.std).to(inputs.device)
        pixel_model.train(model.training)
        pixels = pixel_model.to_pixels(inputs)
        if self.config.attack.clip is not None:
            pixels = pixels.clamp(*self.config.attack.clip)  # augmentation may leave a tiny overshoot
        adversarial = self._adversarial_pixels(pixel_model, pixels, targets)
        if self.config.method == "pgd":
            logits = pixel_model(adversarial)
            return F.cross_entropy(logits, targets), logits
        clean_logits = pixel_model(pixels)
        adv_logits = pixel_model(adversarial)
        robust = F.kl_div(F.log_softmax(adv_logits, dim=1), F.softmax(clean_logits, dim=1), reduction="batchmean")
        return F.cross_entropy(clean_logits, targets) + self.config.trades_beta * robust, clean_logits


def adversarial_train(source: ModelSource, data: str, out: str | Path, train_config: TrainConfig, config: AdversarialConfig | None,
                      image_size: int | None = None, data_root: str | None = None, eval_attack: AttackConfig | None = None) -> dict[str, Any]:
    """Train `source` on `data` (adversarially unless `config` is None), save the artifact to `out`; returns its metrics.

    Standard training (`config=None`) runs through the same code, so the two compare at equal epochs.
    """
    train_set = get_dataset(data, "train", image_size, root=data_root)
    val_set = get_dataset(data, "val", image_size, root=data_root)
    test_set = get_dataset(data, "test", image_size, root=data_root)
    spec = train_set.spec
    seed_everything(train_config.seed)  # the initial weights of a built model depend on the seed too
    model, arch, _ = resolve_model(source, num_classes=spec.num_classes, in_chans=spec.in_chans)  # a directory keeps its weights
    callbacks = []
    if config is not None:
        config = AdversarialConfig(config.method, attack_config_for(train_set, config.attack), config.trades_beta)
        callbacks.append(AdversarialTraining(config, spec.mean, spec.std))
    trainer = Trainer(model, train_set, val_set, train_config, callbacks=callbacks)
    start = time.perf_counter()
    result = trainer.fit()
    seconds = time.perf_counter() - start
    final = trainer.eval_model
    eval_attack = eval_attack or (config.attack if config else AttackConfig())
    scores = adversarial_accuracy(final, test_set, ("fgsm", "pgd"), eval_attack)
    metrics = {
        "accuracy": accuracy(final, test_set),
        "accuracy_clean": scores["clean"],
        "accuracy_fgsm": scores["fgsm"],
        "accuracy_pgd": scores["pgd"],
        "val_accuracy": result.final.get("val_accuracy"),
        "train_seconds": seconds,
        "epochs": result.epochs_run,
    }
    meta = {
        "data": spec.to_dict(),
        "metrics": metrics,
        "metrics_conditions": {"accuracy_pgd": f"{data} test split ({len(test_set)} images), attack {attack_config_for(test_set, eval_attack).to_dict()}"},
        "train": {"model": source.spec, "config": train_config.to_dict(), "adversarial": config.to_dict() if config else None},
        "history": result.history,
        "parent": None,
    }
    save_artifact(final, arch, out, meta)
    return metrics

"""The one training loop: optimizer + warm-up/cosine schedule, EMA, AMP on CUDA, checkpoints, resume.

Resuming is exact: the data order and augmentation of epoch e depend only on (seed, e), and a
checkpoint holds weights, optimizer state, EMA, step count and RNG state, so an interrupted run
continued with `resume=True` ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from rich.progress import Progress

from slimvision.data import TensorImageDataset, make_loader
from slimvision.errors import ArtifactError
from slimvision.measure.accuracy import accuracy
from slimvision.progress import progress_bar
from slimvision.train.callbacks import Callback
from slimvision.train.checkpoint import checkpoint_dirs, load_checkpoint, save_checkpoint, set_rng_state
from slimvision.train.config import TrainConfig
from slimvision.train.ema import ModelEMA

# loss_fn(model, inputs, targets) -> (loss, logits)
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def random_shift(images: torch.Tensor, generator: torch.Generator, max_fraction: float = 0.125) -> torch.Tensor:
    """Shift each image by up to `max_fraction` of its side, filling with the border value (pad + crop)."""
    size = images.shape[-1]
    pad = max(1, int(round(size * max_fraction)))
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (images.shape[0], 2), generator=generator)
    return torch.stack([padded[i, :, y : y + size, x : x + size] for i, (y, x) in enumerate(offsets.tolist())])


def lr_factor(step: int, total_steps: int, warmup_steps: int) -> float:
    """Linear warm-up to 1, then cosine decay to 0."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)
    epochs_run: int = 0

    @property
    def final(self) -> dict[str, float]:
        return self.history[-1] if self.history else {}


class Trainer:
    """Trains `model` on `train_set`, validating on `val_set` each epoch; see module docstring."""

    def __init__(
        self,
        model: nn.Module,
        train_set: TensorImageDataset,
        val_set: TensorImageDataset | None,
        config: TrainConfig,
        out_dir: str | Path | None = None,
        callbacks: Sequence[Callback] = (),
        loss_fn: LossFn | None = None,
        extra_params: Sequence[nn.Parameter] = (),
        writes_checkpoints: bool = True,
    ):
        self.config = config
        self.device = torch.device(config.resolved_device())
        self.model = model.to(self.device)
        self.train_set, self.val_set = train_set, val_set
        self.out_dir = Path(out_dir) if out_dir else None
        self.writes_checkpoints = writes_checkpoints  # False: resume from out_dir but never write it (data-parallel ranks > 0)
        self.callbacks = list(callbacks)
        self.loss_fn = loss_fn or self.cross_entropy
        self.extra_params = list(extra_params)
        self.optimizer = self._build_optimizer()
        self.steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.warmup_steps = int(round(config.warmup_epochs * self.steps_per_epoch))
        self.step = 0
        self.epoch = 0
        self.ema = ModelEMA(self.model, config.ema_decay) if config.ema_decay else None
        self.use_amp = self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if self.use_amp else None
        self.result = TrainResult()

    def cross_entropy(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(inputs)
        return F.cross_entropy(logits, targets, label_smoothing=self.config.label_smoothing), logits

    def _build_optimizer(self) -> torch.optim.Optimizer:
        cfg = self.config
        # No weight decay on BN/bias parameters (1-D), the usual practice for CNNs.
        decay = [p for p in self.model.parameters() if p.requires_grad and p.ndim > 1]
        no_decay = [p for p in self.model.parameters() if p.requires_grad and p.ndim <= 1]
        groups = [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay + self.extra_params, "weight_decay": 0.0},
        ]
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
        return torch.optim.AdamW(groups, lr=cfg.lr)

    def _set_lr(self) -> None:
        factor = lr_factor(self.step, self.total_steps, self.warmup_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr * factor

    def _emit(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def fit(self, resume: bool = False) -> TrainResult:
        """Run the remaining epochs; with `resume`, continue from the newest checkpoint in out_dir."""
        cfg = self.config
        if resume:
            self._resume()
        else:
            seed_everything(cfg.seed)
        self._emit("on_train_begin")
        with self._progress() as progress:
            task = progress.add_task("train", total=self.total_steps, completed=self.step)
            while self.epoch < cfg.epochs:
                metrics = self._train_epoch(progress, task)
                self.epoch += 1
                self.result.history.append(metrics)
                self.result.epochs_run = self.epoch
                self._emit("on_epoch_end", self.epoch, metrics)
                if self.out_dir and self.writes_checkpoints and self._should_save():
                    self._save()
        self._emit("on_train_end")
        return self.result

    def _train_epoch(self, progress: Progress, task: Any) -> dict[str, float]:
        cfg = self.config
        self.model.train()
        self._emit("on_epoch_begin", self.epoch)
        augment_gen = torch.Generator().manual_seed(cfg.seed * 7919 + self.epoch)
        total_loss, seen = 0.0, 0
        for inputs, targets in make_loader(self.train_set, cfg.batch_size, shuffle=True, seed=cfg.seed, epoch=self.epoch):
            if cfg.augment:
                inputs = random_shift(inputs, augment_gen)
            inputs, targets = inputs.to(self.device), targets.to(self.device)
            self._emit("on_batch_begin", inputs, targets)
            loss = self._train_step(inputs, targets)
            total_loss += loss * targets.shape[0]
            seen += targets.shape[0]
            self._emit("on_batch_end", loss)
            progress.update(task, advance=1, description=f"epoch {self.epoch + 1}/{cfg.epochs} loss {loss:.3f}")
        metrics = {"epoch": self.epoch + 1, "train_loss": total_loss / max(seen, 1), "lr": self.optimizer.param_groups[0]["lr"]}
        if self.val_set is not None:
            metrics["val_accuracy"] = accuracy(self.eval_model, self.val_set)
        return metrics

    def _train_step(self, inputs: torch.Tensor, targets: torch.Tensor) -> float:
        self._set_lr()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, enabled=self.use_amp):
            loss, _ = self.loss_fn(self.model, inputs, targets)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {self.step}; lower the learning rate")
        if self.scaler:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        self._emit("on_after_backward")
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.ema:
            self.ema.update(self.model)
        self.step += 1
        return loss.item()

    @property
    def eval_model(self) -> nn.Module:
        """The weights to evaluate and export: the EMA copy when EMA is on."""
        return self.ema.module if self.ema else self.model

    def _should_save(self) -> bool:
        every = self.config.save_every
        return self.epoch == self.config.epochs or (every > 0 and self.epoch % every == 0)

    def _save(self) -> Path:
        loop_state = {
            "step": self.step,
            "history": self.result.history,
            "config": self.config.to_dict(),
            "callbacks": [c.state_dict() for c in self.callbacks],
        }
        return save_checkpoint(self.out_dir, self.epoch, self.model, self.optimizer, loop_state, self.ema.module if self.ema else None)

    def _resume(self) -> None:
        if self.out_dir is None:
            raise ArtifactError("resume needs an output directory holding checkpoints")
        found = checkpoint_dirs(self.out_dir)
        if not found:
            raise ArtifactError(f"nothing to resume: no checkpoints in {self.out_dir / 'checkpoints'}")
        state = load_checkpoint(found[-1], self.model, self.optimizer, self.ema.module if self.ema else None)
        self.epoch, self.step = state["epoch"], state["step"]
        self.result.history = list(state.get("history", []))
        self.result.epochs_run = self.epoch
        for callback, cb_state in zip(self.callbacks, state.get("callbacks", [])):
            callback.load_state_dict(cb_state)
        set_rng_state(state["rng"])

    def _progress(self) -> Progress:
        return progress_bar(self.config.progress)

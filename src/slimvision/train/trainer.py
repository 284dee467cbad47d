"""The one training loop: optimizer + warm-up/cosine schedule, EMA, AMP on CUDA, checkpoints, resume.

Resuming is exact: the data order of epoch e depends only on (seed, e) and each sample's
augmentation only on (seed, e, index) (see slimvision.data.loader), whatever the number of
loader workers; a checkpoint holds weights, optimizer state, EMA, step count and RNG state, so
an interrupted run continued with `resume=True` ends with the same weights as an uninterrupted one.

Under `torchrun` (a process group is initialised) every rank takes its share of each global
batch and the model is wrapped in DistributedDataParallel, so N processes follow the one-process
trajectory; only rank 0 writes checkpoints and validates.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from rich.progress import Progress

from slimvision.data import BatchMixer, ImageDataset, Loader, TrainAugment
from slimvision.data.transforms import sample_seed
from slimvision.errors import ArtifactError, ConfigError
from slimvision.measure.accuracy import accuracy
from slimvision.progress import progress_bar
from slimvision.train.callbacks import Callback
from slimvision.train.checkpoint import checkpoint_dirs, load_checkpoint, save_checkpoint, set_rng_state
from slimvision.train.config import TrainConfig
from slimvision.train.distributed import global_batch_norm
from slimvision.train.recompute import activation_checkpointing
from slimvision.train.ema import ModelEMA

# loss_fn(model, inputs, targets) -> (loss, logits)
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
        train_set: ImageDataset,
        val_set: ImageDataset | None,
        config: TrainConfig,
        out_dir: str | Path | None = None,
        callbacks: Sequence[Callback] = (),
        loss_fn: LossFn | None = None,
        extra_params: Sequence[nn.Parameter] = (),
        writes_checkpoints: bool = True,
        data_parallel: bool = True,
    ):
        self.config = config
        self.device = torch.device(config.resolved_device())
        self.model = model.to(self.device)
        if config.channels_last:  # in place, so the optimizer, EMA and callbacks hold the same parameters
            self.model.to(memory_format=torch.channels_last)
        self.train_set, self.val_set = train_set, val_set
        self.out_dir = Path(out_dir) if out_dir else None
        # data_parallel=False: the caller shards the data and syncs gradients itself (the supernet does)
        self.world_size = dist.get_world_size() if data_parallel and dist.is_initialized() else 1
        self.rank = dist.get_rank() if self.world_size > 1 else 0
        self.writes_checkpoints = writes_checkpoints and self.rank == 0  # other ranks resume from out_dir but never write it
        self.callbacks = list(callbacks)
        if loss_fn is not None and (config.mixup or config.cutmix):
            raise ConfigError("mixup/cutmix need the trainer's cross-entropy loss; this verb brings its own loss")
        self.loss_fn = loss_fn or self.cross_entropy
        self.extra_params = list(extra_params)
        self.optimizer = self._build_optimizer()
        self.train_module: nn.Module = self.model
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.train_module = DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        augment = TrainAugment(train_set.spec, train_set.train_crop, train_set.flip_ok, config.auto_augment) if config.augment else None
        self.mixer = BatchMixer(train_set.spec.num_classes, config.mixup, config.cutmix)
        self.loader = Loader(
            train_set, config.batch_size, shuffle=True, seed=config.seed, workers=config.workers, augment=augment,
            rank=self.rank, world_size=self.world_size, pin_memory=self.device.type == "cuda",
        )
        self.augment_description = augment.description if augment else None
        self.steps_per_epoch = min(len(self.loader), config.max_steps_per_epoch or len(self.loader))
        self.total_steps = self.steps_per_epoch * config.epochs
        self.warmup_steps = int(round(config.warmup_epochs * self.steps_per_epoch))
        self.step = 0
        self.epoch = 0
        self.ema = ModelEMA(self.model, config.ema_decay, config.ema_warmup) if config.ema_decay else None
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
        sync_bn = global_batch_norm(self.model, enabled=self.world_size > 1 and cfg.sync_bn)
        recompute = activation_checkpointing(self.model, enabled=cfg.checkpoint_activations)
        with sync_bn, recompute, self._progress() as progress:
            task = progress.add_task("train", total=self.total_steps, completed=self.step)
            while self.epoch < cfg.epochs:
                metrics = self._train_epoch(progress, task)
                self.epoch += 1
                self.result.history.append(metrics)
                self.result.epochs_run = self.epoch
                self._emit("on_epoch_end", self.epoch, metrics)
                if self.out_dir and self.writes_checkpoints and self._should_save():
                    self._save()
        if cfg.channels_last:  # hand back an ordinary model: exporters and pruners need not know the layout
            self.model.to(memory_format=torch.contiguous_format)
            if self.ema:
                self.ema.module.to(memory_format=torch.contiguous_format)
        self._emit("on_train_end")
        return self.result

    def _train_epoch(self, progress: Progress, task: Any) -> dict[str, float]:
        cfg = self.config
        self.model.train()
        self._emit("on_epoch_begin", self.epoch)
        total_loss, seen = 0.0, 0
        skipped_before = len(self.loader.skipped)
        started = time.perf_counter()
        for index, (inputs, targets) in enumerate(self.loader.epoch(self.epoch)):
            if index == self.steps_per_epoch:
                break
            if self.mixer.active:
                inputs, targets = self.mixer(inputs, targets, sample_seed(cfg.seed, self.epoch, -1 - index))
            inputs = inputs.to(self.device, non_blocking=True)
            if cfg.channels_last and inputs.ndim == 4:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            targets = targets.to(self.device, non_blocking=True)
            self._emit("on_batch_begin", inputs, targets)
            loss = self._train_step(inputs, targets)
            total_loss += loss * targets.shape[0]
            seen += targets.shape[0]
            self._emit("on_batch_end", loss)
            progress.update(task, advance=1, description=f"epoch {self.epoch + 1}/{cfg.epochs} loss {loss:.3f}")
        loop_seconds = time.perf_counter() - started
        skipped = len(self.loader.skipped) - skipped_before
        if self.world_size > 1:  # the epoch's numbers over all ranks
            counts = torch.tensor([skipped, seen, total_loss], dtype=torch.float64)
            dist.all_reduce(counts)
            skipped, seen, total_loss = int(counts[0]), int(counts[1]), float(counts[2])
        metrics = {"epoch": self.epoch + 1, "train_loss": total_loss / max(seen, 1), "lr": self.optimizer.param_groups[0]["lr"],
                   "images_seen": seen, "images_per_second": seen / max(loop_seconds, 1e-9)}  # loading + training, all ranks
        if skipped or self.loader.skip_bad_images:
            metrics["skipped_images"] = skipped
        if self.val_set is not None and self.rank == 0:
            metrics["val_accuracy"] = accuracy(self.eval_model, self.val_set, batch_size=self.config.batch_size)  # bounded memory at 224 px
        return metrics

    def _train_step(self, inputs: torch.Tensor, targets: torch.Tensor) -> float:
        self._set_lr()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, enabled=self.use_amp):
            loss, _ = self.loss_fn(self.train_module, inputs, targets)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {self.step}; lower the learning rate")
        if self.scaler:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if self.world_size > 1 and self.extra_params:  # parameters outside the model (e.g. distillation projectors)
            self._average_gradients(self.extra_params)
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

    def _average_gradients(self, params: Sequence[nn.Parameter]) -> None:
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

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
        if self.ema:
            self.ema.updates = self.step  # one EMA update per optimizer step: the warm-up continues where it stopped
        self.result.history = list(state.get("history", []))
        self.result.epochs_run = self.epoch
        for callback, cb_state in zip(self.callbacks, state.get("callbacks", [])):
            callback.load_state_dict(cb_state)
        set_rng_state(state["rng"])

    def _progress(self) -> Progress:
        return progress_bar(self.config.progress)

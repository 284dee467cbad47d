"""`Distiller`: plugs a distillation loss into the foundation Trainer (loss_fn + callbacks + extra params).

The teacher runs in eval mode without gradients; feature hooks keep only the current batch's
activations and are cleared after each loss computation.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from slimvision.distill import losses
from slimvision.errors import ConfigError
from slimvision.train import Callback, ModelEMA

LOSSES = ("none", "kd", "nkd", "uskd", "feature", "ema")


@dataclass
class DistillConfig:
    """Which loss and its weights; None means the loss's published default."""

    loss: str = "kd"
    temperature: float | None = None  # kd: 4, nkd: 1 (ema uses kd's)
    alpha: float | None = None  # kd/ema: weight of the KD term against CE (0.9 / 0.5); nkd: gamma (1.5); feature: weight (1.0); uskd: alpha (1.0)
    student_layer: str | None = None  # feature/uskd: student module whose output is matched / feeds the weak head
    teacher_layer: str | None = None  # feature: teacher module to match
    ema_decay: float = 0.999
    # ema: share of the epochs trained on cross-entropy alone (the EMA tracks the student from the first step) before
    # the EMA teacher's KD term starts; FuSTAL's code trains 60 of 100 epochs before its EMA-teacher stage
    ema_start: float = 0.6
    ema_warmup: bool = False  # ema: the Mean Teacher warm-up of the decay (not in FuSTAL's code), for runs shorter than its memory
    beta: float | None = None  # uskd: weight of the Zipf non-target term (0.1)
    mu: float | None = None  # uskd: weight of the weak supervision (0.005)
    uskd_ranking: str = "prob"  # uskd: "prob" (paper, first code release) or "log_prob" (current released code)
    preset: str | None = None  # published hyperparameters: imagenet-cnn | cifar100 | vit (explicit values win)

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown distillation loss {self.loss!r}; use one of {', '.join(LOSSES)}")
        if self.temperature is not None and self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")
        if self.preset is not None and self.preset not in losses.PRESETS:
            raise ConfigError(f"unknown distillation preset {self.preset!r}; use one of {', '.join(losses.PRESETS)}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0 <= self.ema_start < 1:
            raise ConfigError(f"ema_start must be in [0, 1) (a share of the epochs), got {self.ema_start}")
        if self.uskd_ranking not in losses.USKD_RANKINGS:
            raise ConfigError(f"unknown USKD ranking {self.uskd_ranking!r}; use one of {', '.join(losses.USKD_RANKINGS)}")

    def hyperparameters(self) -> dict[str, Any]:
        """The values the loss uses: explicit settings, else the preset's, else the published defaults."""
        preset = losses.PRESETS.get(self.preset or "", {}).get(self.loss, {})

        def pick(explicit: float | None, name: str, default: float) -> float:
            return explicit if explicit is not None else preset.get(name, default)

        if self.loss == "nkd":
            return {"temperature": pick(self.temperature, "temperature", losses.NKD_TEMPERATURE), "gamma": pick(self.alpha, "gamma", losses.NKD_GAMMA)}
        if self.loss == "uskd":
            return {"alpha": pick(self.alpha, "alpha", losses.USKD_ALPHA), "beta": pick(self.beta, "beta", losses.USKD_BETA),
                    "mu": pick(self.mu, "mu", losses.USKD_MU), "ranking": self.uskd_ranking}
        return {}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FeatureTap:
    """Forward hook that keeps the latest output of one named module (and only that)."""

    def __init__(self, model: nn.Module, name: str, role: str):
        modules = dict(model.named_modules())
        if name not in modules:
            sample = [n for n in modules if n][:8]
            raise ConfigError(f"{role} has no layer named {name!r}; e.g. {', '.join(sample)}")
        self.value: torch.Tensor | None = None
        self.handle = modules[name].register_forward_hook(self._store)

    def _store(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        self.value = output

    def take(self) -> torch.Tensor:
        value, self.value = self.value, None
        if value is None:
            raise RuntimeError("feature tap saw no forward pass")
        return value

    def remove(self) -> None:
        self.handle.remove()


class Projector(nn.Module):
    """Maps student features to the teacher's channels (1x1 conv / linear) and spatial size."""

    def __init__(self, student_channels: int, teacher_channels: int, tokens: bool):
        super().__init__()
        self.tokens = tokens
        self.proj = nn.Linear(student_channels, teacher_channels) if tokens else nn.Conv2d(student_channels, teacher_channels, 1)

    def forward(self, features: torch.Tensor, target_shape: torch.Size) -> torch.Tensor:
        projected = self.proj(features)
        if not self.tokens and projected.shape[-2:] != target_shape[-2:]:
            projected = F.interpolate(projected, size=target_shape[-2:], mode="bilinear", align_corners=False)
        return projected


class _EmaTeacherUpdate(Callback):
    """Updates the EMA after every step and switches its KD term on from epoch floor(start * epochs): at least the
    last epoch always distills."""

    def __init__(self, ema: ModelEMA, start: float):
        self.ema = ema
        self.start = start
        self.teaching = start == 0

    def on_train_begin(self, trainer) -> None:
        memory = round(1 / (1 - self.ema.decay))
        if not self.ema.warmup and trainer.total_steps < memory:
            warnings.warn(f"ema: the EMA teacher remembers about {memory} steps but this run has {trainer.total_steps}, so it stays "
                          "close to the starting network; pass --ema-warmup or a lower --ema-decay", stacklevel=2)

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        self.teaching = epoch >= int(self.start * trainer.config.epochs)

    def on_batch_end(self, trainer, loss: float) -> None:
        self.ema.update(trainer.model)


class Distiller:
    """Builds the Trainer's loss_fn, callbacks and extra parameters for one distillation loss."""

    def __init__(self, student: nn.Module, teacher: nn.Module | None, config: DistillConfig, example_inputs: torch.Tensor):
        self.config = config
        self.callbacks: list[Callback] = []
        self.extra_modules = nn.ModuleList()
        self.student_tap = self.teacher_tap = None
        self.projector: Projector | None = None
        self.weak_head: nn.Module | None = None
        if config.loss in ("kd", "nkd", "feature") and teacher is None:
            raise ConfigError(f"loss {config.loss!r} needs a teacher")
        self.ema_update: _EmaTeacherUpdate | None = None
        if config.loss == "ema":
            self.ema_update = _EmaTeacherUpdate(ModelEMA(student, config.ema_decay, config.ema_warmup), config.ema_start)
            teacher = self.ema_update.ema.module
            self.callbacks.append(self.ema_update)
        self.teacher = teacher
        if teacher is not None:
            teacher.eval()
            for param in teacher.parameters():
                param.requires_grad_(False)
            self._check_classes(student, teacher, example_inputs)
        if config.loss == "feature":
            if not config.student_layer or not config.teacher_layer:
                raise ConfigError("feature distillation needs --student-layer and --teacher-layer")
            self.student_tap = FeatureTap(student, config.student_layer, "student")
            self.teacher_tap = FeatureTap(teacher, config.teacher_layer, "teacher")
            with torch.no_grad():
                was_training = student.training
                student.eval()
                student(example_inputs)
                teacher(example_inputs)
                student.train(was_training)
            s_feat, t_feat = self.student_tap.take(), self.teacher_tap.take()
            tokens = s_feat.ndim == 3
            self.projector = Projector(s_feat.shape[-1] if tokens else s_feat.shape[1], t_feat.shape[-1] if tokens else t_feat.shape[1], tokens)
            self.extra_modules.append(self.projector)
        if config.loss == "uskd":
            if not config.student_layer:
                raise ConfigError("uskd needs --student-layer (the intermediate features for weak supervision)")
            self.student_tap = FeatureTap(student, config.student_layer, "student")
            with torch.no_grad():
                was_training = student.training
                student.eval()
                logits = student(example_inputs)
                student.train(was_training)
            features = self.student_tap.take()
            # maps (N, C, H, W) -> C after global pooling; tokens (N, L, C) -> C of the CLS token
            channels = features.shape[-1] if features.ndim == 3 else features.shape[1]
            self.weak_head = nn.Linear(channels, logits.shape[1])
            self.extra_modules.append(self.weak_head)

    @staticmethod
    def _check_classes(student: nn.Module, teacher: nn.Module, example: torch.Tensor) -> None:
        with torch.no_grad():
            was_training = student.training
            student.eval()
            s_classes = student(example).shape[-1]
            student.train(was_training)
            t_classes = teacher(example).shape[-1]
        if s_classes != t_classes:
            raise ConfigError(f"teacher predicts {t_classes} classes but the student predicts {s_classes}")

    @property
    def extra_params(self) -> list[nn.Parameter]:
        return list(self.extra_modules.parameters())

    def to(self, device: torch.device) -> "Distiller":
        self.extra_modules.to(device)
        if self.teacher is not None:
            self.teacher.to(device)
        return self

    def _teacher_logits(self, inputs: torch.Tensor) -> torch.Tensor:
        self.teacher.eval()  # the Trainer only switches the student; keep BN/dropout of the teacher frozen
        with torch.no_grad():
            return self.teacher(inputs)

    def loss_fn(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        logits = model(inputs)
        ce = F.cross_entropy(logits, targets)
        if cfg.loss == "none" or (self.ema_update is not None and not self.ema_update.teaching):
            return ce, logits
        if cfg.loss in ("kd", "ema"):
            alpha = cfg.alpha if cfg.alpha is not None else (0.9 if cfg.loss == "kd" else 0.5)
            kd = losses.kd_loss(logits, self._teacher_logits(inputs), cfg.temperature or losses.KD_TEMPERATURE)
            return (1 - alpha) * ce + alpha * kd, logits
        if cfg.loss == "nkd":
            return ce + losses.nkd_loss(logits, self._teacher_logits(inputs), targets, **cfg.hyperparameters()), logits
        if cfg.loss == "uskd":
            return ce + losses.uskd_loss(logits, self.weak_head(weak_head_input(self.student_tap.take())), targets, **cfg.hyperparameters()), logits
        # feature
        self._teacher_logits(inputs)
        student_features, teacher_features = self.student_tap.take(), self.teacher_tap.take()
        weight = cfg.alpha if cfg.alpha is not None else 1.0
        return ce + weight * losses.feature_loss(self.projector(student_features, teacher_features.shape), teacher_features), logits

    def close(self) -> None:
        for tap in (self.student_tap, self.teacher_tap):
            if tap is not None:
                tap.remove()


def weak_head_input(features: torch.Tensor) -> torch.Tensor:
    """USKD's weak-head input: global average pool of a feature map (the CNN code's neck), the CLS token of tokens (ViT)."""
    if features.ndim == 4:
        return features.mean(dim=(2, 3))
    if features.ndim == 3:
        return features[:, 0]
    return features


def copy_teacher(teacher: nn.Module) -> nn.Module:
    """A frozen copy, so distillation never changes the caller's teacher."""
    return copy.deepcopy(teacher).eval()

"""Training configuration."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from slimvision.errors import ConfigError

DEFAULT_LR = {"sgd": 0.1, "adamw": 1e-3}
DEFAULT_WEIGHT_DECAY = {"sgd": 5e-4, "adamw": 0.05}


@dataclass
class TrainConfig:
    """Everything that decides a training run; recorded in meta.json and checked on resume."""

    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float | None = None  # None -> DEFAULT_LR[optimizer]
    momentum: float = 0.9
    weight_decay: float | None = None  # None -> DEFAULT_WEIGHT_DECAY[optimizer]
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0
    ema_decay: float | None = None
    # the EMA's n-th update uses min(decay, 1 - 1/(n + 1)) (Mean Teacher): without it a run shorter than the EMA's
    # memory of ~1/(1 - decay) steps saves mostly its initial weights (digits, 51 steps at 0.999: top-1 0.10)
    ema_warmup: bool = True
    augment: bool = True  # pad-and-crop (small images) or random-resized crop (photos), plus flips where labels allow
    auto_augment: str | None = None  # "trivialaugment" | "randaugment" (kornia), after crop and flip
    mixup: float = 0.0  # probability that a batch is mixed with MixUp
    cutmix: float = 0.0  # probability that a batch is mixed with CutMix (at most one of the two per batch)
    workers: int = 0  # loader worker processes (results do not depend on it)
    # NHWC weights and batches: oneDNN's CPU convolutions run faster on them (one thread: resnet20 1.2x, MobileNetV2
    # 1.7-2.2x, benchmarks/results/train_layout.md); rounding differs from NCHW, so runs are not bit-identical across layouts
    channels_last: bool = False
    checkpoint_activations: bool = False  # recompute each block in backward instead of keeping its activations (less memory, one extra forward pass per step)
    sync_bn: bool = True  # under torchrun, BatchNorm statistics over the global batch (as one process would compute them)
    max_steps_per_epoch: int | None = None  # train on at most this many batches per epoch (quick runs, benchmarks)
    seed: int = 0
    save_every: int = 1  # checkpoint every N epochs (0 = only the last)
    grad_clip: float | None = None
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {self.batch_size}")
        if self.optimizer not in DEFAULT_LR:
            raise ConfigError(f"optimizer must be one of {sorted(DEFAULT_LR)}, got {self.optimizer!r}")
        if self.lr is None:
            self.lr = DEFAULT_LR[self.optimizer]
        if self.weight_decay is None:
            self.weight_decay = DEFAULT_WEIGHT_DECAY[self.optimizer]
        if self.lr <= 0:
            raise ConfigError(f"learning rate must be > 0, got {self.lr}")
        if self.save_every < 0:
            raise ConfigError(f"save-every must be >= 0, got {self.save_every}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"EMA decay must be in (0, 1), got {self.ema_decay}")
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0, got {self.workers}")
        if self.max_steps_per_epoch is not None and self.max_steps_per_epoch < 1:
            raise ConfigError(f"max-steps-per-epoch must be >= 1, got {self.max_steps_per_epoch}")
        if not (0.0 <= self.mixup <= 1.0 and 0.0 <= self.cutmix <= 1.0 and self.mixup + self.cutmix <= 1.0):
            raise ConfigError(f"mixup and cutmix are probabilities with a sum <= 1, got {self.mixup} and {self.cutmix}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label smoothing must be in [0, 1), got {self.label_smoothing}")

    def resolved_device(self) -> str:
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device

    def to_dict(self) -> dict:
        return asdict(self)

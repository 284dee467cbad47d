"""Supernet training with any sampler, on the foundation Trainer (the sampler lives in the loss function).

Under `torchrun --nproc_per_node N` the same call trains data-parallel (see `slimvision.train.distributed`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from slimvision.data import get_dataset
from slimvision.distill.losses import kd_loss
from slimvision.errors import ConfigError
from slimvision.io import ArchSpec, write_artifact_files
from slimvision.nas.sampling import Sampler, create_sampler
from slimvision.train import Callback, Trainer, TrainConfig, distributed, seed_everything

SUPERNETS = {"mbv2": "nas_mbv2_supernet", "resnet": "nas_resnet_supernet"}


@dataclass
class SupernetConfig:
    space: str = "mbv2"
    sampler: str = "sandwich"
    epochs: int = 10
    lr: float = 0.05
    batch_size: int = 64
    seed: int = 0
    channels_last: bool = False  # TrainConfig.channels_last


class _SamplerState(Callback):
    """Checkpoints the sampler's RNG and memory bank with the trainer's state."""

    def __init__(self, sampler: Sampler):
        self.sampler = sampler

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)


def sampled_loss(sampler: Sampler):
    """loss_fn for the Trainer: sum of the sampled subnets' losses (in-place KD from the first if sandwich)."""

    def loss_fn(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor):
        archs = sampler.sample()
        total, teacher_logits, first_logits = 0.0, None, None
        for position, arch in enumerate(archs):
            model.set_active(arch)
            logits = model(inputs)
            if sampler.distill and teacher_logits is not None:
                loss = kd_loss(logits, teacher_logits, temperature=1.0)
            else:
                loss = F.cross_entropy(logits, targets)
            if position == 0:
                teacher_logits, first_logits = logits.detach(), logits
            sampler.observe(arch, loss.item())
            total = total + loss
        model.set_active(model.space.largest())
        return total, first_logits

    return loss_fn


def train_supernet(
    config: SupernetConfig, out_dir: str | Path, data: str = "digits", image_size: int | None = 32, resume: bool = False, data_root: str | None = None
) -> dict[str, Any]:
    """Train the weight-sharing supernet of `config.space`; checkpoints in out_dir, resumable; saves the artifact.

    `data_root` is the local path of cifar10 / imagefolder data.
    """
    if config.space not in SUPERNETS:
        raise ConfigError(f"no supernet for space {config.space!r}; supernets exist for: {', '.join(SUPERNETS)}")
    workers = distributed.world_size()
    if config.batch_size % workers:
        raise ConfigError(f"batch size {config.batch_size} is not divisible by the {workers} data-parallel workers")
    with distributed.process_group():
        train, val = get_dataset(data, "train", image_size, root=data_root), get_dataset(data, "val", image_size, root=data_root)
        seed_everything(config.seed)
        arch = ArchSpec(SUPERNETS[config.space], {"num_classes": train.spec.num_classes, "in_chans": train.spec.in_chans})
        supernet = arch.build()
        sampler = create_sampler(config.sampler, supernet.space, config.seed)  # same seed on every rank: same subnets
        lead = distributed.rank() == 0
        train_config = TrainConfig(epochs=config.epochs, lr=config.lr, batch_size=config.batch_size // workers, seed=config.seed, augment=True,
                                   channels_last=config.channels_last, progress=lead)
        trainer = Trainer(supernet, distributed.shard(train), val, train_config, out_dir, callbacks=[_SamplerState(sampler), distributed.GradientAverager()],
                          loss_fn=sampled_loss(sampler), writes_checkpoints=lead, data_parallel=False)
        result = trainer.fit(resume=resume)
    summary = {"val_accuracy_largest": result.final.get("val_accuracy"), "epochs": result.epochs_run, "world_size": workers}
    if lead:
        meta = {"data": train.spec.to_dict(), "supernet": {**asdict(config), "world_size": workers}, "history": result.history,
                "metrics": {"val_accuracy_largest": result.final.get("val_accuracy")}, "parent": None}
        write_artifact_files(supernet, arch, out_dir, meta)
    return summary

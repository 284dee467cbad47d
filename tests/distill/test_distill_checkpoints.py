"""distill(checkpoint_dir=..., resume=...): checkpoints to continue from, and the losses that must restart instead."""

import shutil

import pytest
import torch

from slimvision.data import get_dataset
from slimvision.distill import DistillConfig, distill
from slimvision.models import create_model
from slimvision.train import TrainConfig, seed_everything
from slimvision.train.checkpoint import checkpoint_dirs


def _setup():
    seed_everything(0)
    train = get_dataset("synthetic", "train", 8).subset(64)
    student = create_model("small_cnn", in_chans=3, widths=(4, 8, 8))
    teacher = create_model("small_cnn", in_chans=3, widths=(8, 16, 16))
    return student, teacher, train


def test_a_resumed_distillation_continues_after_its_last_checkpoint_and_ends_like_an_uninterrupted_one(tmp_path):
    student, teacher, train = _setup()
    config = TrainConfig(epochs=3, batch_size=16, lr=0.05, warmup_epochs=0, seed=0)
    whole = distill(student, teacher, train, None, DistillConfig("kd"), config, checkpoint_dir=tmp_path / "whole")
    assert [p.name for p in checkpoint_dirs(tmp_path / "whole")] == ["epoch_0001", "epoch_0002", "epoch_0003"]

    for kept in checkpoint_dirs(tmp_path / "whole")[:2]:  # what a kill after the second epoch leaves
        shutil.copytree(kept, tmp_path / "cut" / "checkpoints" / kept.name)
    student, teacher, train = _setup()
    resumed = distill(student, teacher, train, None, DistillConfig("kd"), config, checkpoint_dir=tmp_path / "cut", resume=True)
    assert resumed.resumed_from_epoch == 2 and len(resumed.history) == 3
    for key, value in whole.student.state_dict().items():
        assert torch.allclose(value, resumed.student.state_dict()[key], atol=1e-6), key


@pytest.mark.parametrize("loss, layers", [("ema", {}), ("uskd", {"student_layer": "features.3"})])
def test_losses_whose_state_is_outside_the_student_write_no_checkpoints(tmp_path, loss, layers):
    student, _, train = _setup()
    result = distill(student, None, train, None, DistillConfig(loss, **layers), TrainConfig(epochs=1, batch_size=16, warmup_epochs=0),
                     checkpoint_dir=tmp_path, resume=True)
    assert result.resumed_from_epoch == 0 and not checkpoint_dirs(tmp_path)

"""save_artifact rebuilds the module from what it is about to write and refuses to write one that would not reload."""

import pytest
import torch
import torch.nn as nn

from slimvision.errors import ArtifactError
from slimvision.io import ArchSpec, load_artifact, save_artifact, write_artifact_files


class Scaled(nn.Module):
    """A layer holding a bare per-channel parameter, like LayerScale."""

    def __init__(self, channels: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))

    def forward(self, x):
        return x * self.gamma.view(1, -1, 1, 1)


def test_unrecorded_shape_is_named_and_nothing_is_written(tmp_path):
    arch = ArchSpec("small_cnn", {"num_classes": 3, "in_chans": 1})
    model = arch.build()
    model.features[0] = nn.Conv2d(1, 8, 3, 1, 1, bias=False)  # narrowed by hand, but the spec still says 16
    out = tmp_path / "m"
    with pytest.raises(ArtifactError) as info:
        save_artifact(model, arch, out)
    message = str(info.value)
    assert f"cannot save {out}: features.0.weight has shape (8, 1, 3, 3), but the arch spec rebuilds it as (16, 1, 3, 3)" in message
    assert "\n" not in message
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_existing_output_survives_a_refused_save(tmp_path):
    arch = ArchSpec("small_cnn")
    save_artifact(arch.build(), arch, tmp_path / "m")
    before = (tmp_path / "m" / "model.safetensors").read_bytes()
    wrong = ArchSpec("small_cnn", {"num_classes": 5})
    with pytest.raises(ArtifactError, match=r"fc.weight has shape \(10, 64\), but the arch spec rebuilds it as \(5, 64\)"):
        save_artifact(arch.build(), wrong, tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == before


def test_extra_and_missing_tensors_are_named(tmp_path):
    arch = ArchSpec("small_cnn")
    model = arch.build()
    model.features.append(Scaled(64))
    with pytest.raises(ArtifactError, match=r"the model has tensor 'features.\d+.gamma', which the arch spec does not rebuild"):
        save_artifact(model, arch, tmp_path / "extra")
    model = arch.build()
    model.fc = nn.Identity()
    with pytest.raises(ArtifactError, match="the arch spec rebuilds tensor 'fc.bias', which the model does not have"):
        save_artifact(model, arch, tmp_path / "missing")
    assert not (tmp_path / "extra").exists() and not (tmp_path / "missing").exists()


def test_a_rebuilt_model_that_fails_its_forward_pass_is_refused(tmp_path):
    arch = ArchSpec("small_cnn", {"in_chans": 1})
    model = arch.build()
    with pytest.raises(ArtifactError, match=r"fails on input \(1, 3, 8, 8\) \(RuntimeError"):
        save_artifact(model, arch, tmp_path / "m", {"data": {"name": "synthetic", "num_classes": 10, "in_chans": 3, "image_size": 8, "mean": [0.5], "std": [0.25]}})
    assert not (tmp_path / "m").exists()
    # the recorded input shape is what the check runs: the right one saves, and an explicit one overrides meta
    save_artifact(model, arch, tmp_path / "m", {"data": {"name": "synthetic", "num_classes": 10, "in_chans": 1, "image_size": 8, "mean": [0.5], "std": [0.25]}})
    save_artifact(model, arch, tmp_path / "m2", {"data": {"name": "synthetic", "num_classes": 10, "in_chans": 3, "image_size": 8, "mean": [0.5], "std": [0.25]}}, input_size=(1, 8, 8))
    assert load_artifact(tmp_path / "m2").model(torch.zeros(1, 1, 8, 8)).shape == (1, 10)


def test_write_artifact_files_checks_before_writing(tmp_path):
    arch = ArchSpec("small_cnn")
    model = arch.build()
    model.features[0] = nn.Conv2d(1, 8, 3, 1, 1, bias=False)
    with pytest.raises(ArtifactError, match="features.0.weight"):
        write_artifact_files(model, arch, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_recorded_shapes_pass_the_check(tmp_path):
    arch = ArchSpec("small_cnn", {"num_classes": 3})
    model = arch.build()
    model.features[0] = nn.Conv2d(1, 8, 3, 1, 1, bias=False)
    model.features[1] = nn.BatchNorm2d(8)
    model.features[3] = nn.Conv2d(8, 32, 3, 2, 1, bias=False)
    save_artifact(model.eval(), arch.with_shapes_of(model), tmp_path / "p", {"data": {"name": "synthetic", "num_classes": 10, "in_chans": 1, "image_size": 8, "mean": [0.5], "std": [0.25]}})
    x = torch.randn(2, 1, 8, 8)
    assert torch.allclose(model(x), load_artifact(tmp_path / "p").model(x))


def test_the_saved_model_keeps_its_training_mode_and_weights(tmp_path):
    arch = ArchSpec("small_cnn", {"in_chans": 1})
    model = arch.build().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    save_artifact(model, arch, tmp_path / "m", {"data": {"name": "synthetic", "num_classes": 10, "in_chans": 1, "image_size": 8, "mean": [0.5], "std": [0.25]}})
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN statistics untouched by the check


def test_the_check_leaves_the_random_stream_alone(tmp_path):
    arch = ArchSpec("small_cnn", {"in_chans": 1})
    model = arch.build()
    torch.manual_seed(7)
    save_artifact(model, arch, tmp_path / "m", input_size=(1, 8, 8))
    after_save = torch.rand(3)
    torch.manual_seed(7)
    assert torch.equal(after_save, torch.rand(3))  # a save does not change what the next random draw is

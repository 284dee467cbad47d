import pytest
import torch

from slimvision.errors import ConfigError
from slimvision.robust import CORRUPTIONS, corrupt, corruption_accuracy


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruptions_keep_shape_and_range_and_grow_with_severity(name):
    pixels = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.6 + 0.2
    changes = []
    for severity in (1, 3, 5):
        out = corrupt(name, pixels, severity, torch.Generator().manual_seed(0))
        assert out.shape == pixels.shape and out.min() >= 0 and out.max() <= 1
        changes.append((out - pixels).abs().mean().item())
    assert 0 < changes[0] < changes[1] < changes[2]


def test_jpeg_works_on_grayscale_and_blur_keeps_flat_images_flat():
    flat = torch.full((2, 1, 8, 8), 0.5)
    assert torch.allclose(corrupt("gaussian_blur", flat, 5), flat, atol=1e-6)
    assert (corrupt("jpeg", flat, 5) - flat).abs().max() < 0.02


def test_unknown_corruption_or_severity_is_named():
    with pytest.raises(ConfigError, match="fog"):
        corrupt("fog", torch.rand(1, 1, 4, 4), 1)
    with pytest.raises(ConfigError, match="severity"):
        corrupt("jpeg", torch.rand(1, 1, 4, 4), 9)


def test_corruption_accuracy_falls_with_severity(trained_digits_model, digits):
    scores = corruption_accuracy(trained_digits_model, digits["test"], ("gaussian_noise", "brightness"), (1, 5))
    for name in ("gaussian_noise", "brightness"):
        assert scores[name][5] < scores[name][1]

import pytest
import torch
import torch.nn as nn

from slimvision.errors import ConfigError
from slimvision.robust import AttackConfig, PixelModel, adversarial_accuracy, fgsm, pgd
from slimvision.robust.evaluate import pixel_model_for

MEAN, STD = [0.3], [0.4]


def _linear_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))


def _hand_gradient(linear: nn.Linear, pixels: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """d(sum CE)/d pixels for logits = W ((x - mean) / std) + b, worked out by hand: (softmax - onehot) W / std."""
    z = ((pixels - MEAN[0]) / STD[0]).flatten(1)
    probs = torch.softmax(z @ linear.weight.T + linear.bias, dim=1)
    onehot = torch.nn.functional.one_hot(targets, 3).float()
    return ((probs - onehot) @ linear.weight / STD[0]).view_as(pixels)


def test_fgsm_on_a_linear_model_matches_the_hand_computation():
    model = _linear_model()
    pixels = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    targets = torch.tensor([0, 1, 2, 0, 1])
    grad = _hand_gradient(model[1], pixels, targets)
    wrapped = PixelModel(model, MEAN, STD)

    linf = fgsm(wrapped, pixels, targets, AttackConfig(eps=0.05, norm="linf"))
    assert torch.allclose(linf, (pixels + 0.05 * grad.sign()).clamp(0, 1), atol=1e-6)

    l2 = fgsm(wrapped, pixels, targets, AttackConfig(eps=0.5, norm="l2", clip=None))
    unit = grad / grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    assert torch.allclose(l2, pixels + 0.5 * unit, atol=1e-6)


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 0.6)])
def test_pgd_stays_inside_the_pixel_eps_ball_and_the_unit_range(norm, eps):
    model = _linear_model()
    pixels = torch.rand(8, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    targets = torch.arange(8) % 3
    adversarial = pgd(PixelModel(model, MEAN, STD), pixels, targets, AttackConfig(eps=eps, steps=7, norm=norm))
    delta = (adversarial - pixels).flatten(1)
    size = delta.abs().max(dim=1).values if norm == "linf" else delta.norm(dim=1)
    assert (size <= eps + 1e-5).all()
    assert size.max() > 0.5 * eps  # it moved: the budget in pixel units was used, not divided by std
    assert adversarial.min() >= 0 and adversarial.max() <= 1


def test_pgd_raises_the_loss_more_than_fgsm_and_is_seeded():
    model = _linear_model()
    wrapped = PixelModel(model, MEAN, STD)
    pixels = torch.rand(16, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    targets = torch.arange(16) % 3
    config = AttackConfig(eps=0.05, steps=10)
    loss = lambda x: nn.functional.cross_entropy(wrapped(x), targets).item()  # noqa: E731
    first = pgd(wrapped, pixels, targets, config)
    assert torch.equal(first, pgd(wrapped, pixels, targets, config))
    assert loss(first) >= loss(fgsm(wrapped, pixels, targets, config)) - 1e-6 > loss(pixels)


def test_pgd_accuracy_is_at_most_fgsm_accuracy_is_at_most_clean_accuracy(trained_digits_model, digits):
    scores = adversarial_accuracy(trained_digits_model, digits["test"], ("fgsm", "pgd"), AttackConfig(eps=0.1, steps=10))
    assert scores["clean"] > 0.7
    assert scores["pgd"] <= scores["fgsm"] <= scores["clean"]
    assert scores["pgd"] < scores["clean"] - 0.2  # the attack really bites at eps 0.1 (about 25 grey levels)


def test_zero_eps_leaves_accuracy_unchanged(trained_digits_model, digits):
    scores = adversarial_accuracy(trained_digits_model, digits["test"], ("fgsm", "pgd"), AttackConfig(eps=0.0, steps=2))
    assert scores["fgsm"] == scores["pgd"] == scores["clean"]


def test_normalisation_is_applied_inside(trained_digits_model, digits):
    dataset = digits["test"].subset(32)
    wrapped = pixel_model_for(trained_digits_model, dataset)
    pixels = wrapped.to_pixels(dataset.images)
    assert 0 <= pixels.min() and pixels.max() <= 1 + 1e-5
    assert torch.allclose(wrapped(pixels), trained_digits_model(dataset.images), atol=1e-5)


def test_bad_attack_settings_name_the_option():
    with pytest.raises(ConfigError, match="--norm"):
        AttackConfig(norm="l3")
    with pytest.raises(ConfigError, match="--eps"):
        AttackConfig(eps=float("nan"))
    with pytest.raises(ConfigError, match="--steps"):
        AttackConfig(steps=0)

"""Proxies pinned to the formulas of the authors' code on tiny fixed inputs: fisher's per-channel broadcast,
Zen-score's BN term with the layers' momentum (0.1), repeats, the pre-GAP rule, NASWOT's *ReLU* hooks."""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from slimvision.errors import ConfigError
from slimvision.nas.proxies import PROXIES
from slimvision.nas.proxies.measures import pre_gap_features, zen_score


class ConvHead(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(2, 3, 2, bias=False)
        self.fc = nn.Linear(3 * 2 * 2, 4, bias=False)

    def forward(self, x):
        return self.fc(torch.flatten(self.conv(x), 1))


def test_fisher_broadcasts_each_channel_over_its_weights():
    net = ConvHead()
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(6, 2, 3, 3, generator=g), torch.randint(0, 4, (6,), generator=g)
    conv_out = F.conv2d(x, net.conv.weight.detach()).requires_grad_(True)
    logits = (torch.flatten(conv_out, 1) @ net.fc.weight.detach().T).requires_grad_(True)
    loss = F.cross_entropy(logits, y)
    g_conv, g_logits = torch.autograd.grad(loss, (conv_out, logits))
    conv_channels = 0.5 * ((conv_out.detach() * g_conv).sum(dim=(2, 3)) ** 2).mean(0)  # (3,)
    fc_channels = 0.5 * ((logits.detach() * g_logits) ** 2).mean(0)  # (4,)
    expected = float(conv_channels.sum()) * (2 * 2 * 2) + float(fc_channels.sum()) * 12  # prod(weight.shape[1:])
    assert PROXIES.get("fisher")(net, (x, y)) == pytest.approx(expected, rel=1e-5)


class ConvBN(nn.Module):
    """1x1 conv (one channel) -> BN: small enough to write Zen-score by hand."""

    def __init__(self, momentum: float = 0.1):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(1, momentum=momentum)

    def forward_features(self, x):
        return self.bn(self.conv(x))

    def forward(self, x):
        return self.forward_features(x).mean(dim=(2, 3))


def hand_zen(shape, repeat, momentum=0.1, alpha=0.01, seed=0, eps_bn=1e-5):
    """Zen-score of ConvBN from the formulas: Gaussian init, two passes, running_var updated with `momentum`."""
    g = torch.Generator().manual_seed(seed)
    running_var = 1.0
    scores = []
    for _ in range(repeat):
        w = float(torch.randn((1, 1, 1, 1), generator=g))
        x = torch.randn(shape, generator=g).double().numpy()
        noise = torch.randn(shape, generator=g).double().numpy()
        outputs = []
        for z in (w * x, w * (x + alpha * noise)):
            outputs.append((z - z.mean()) / math.sqrt(z.var() + eps_bn))
            running_var = (1 - momentum) * running_var + momentum * z.var(ddof=1)
        delta = np.abs(outputs[0] - outputs[1]).reshape(shape[0], -1).sum(1).mean()
        scores.append(math.log(delta) + math.log(math.sqrt(running_var)))
    return float(np.mean(scores))


def test_zen_bn_term_uses_the_layers_momentum_not_one():
    shape = (4, 1, 3, 3)
    images = (torch.zeros(shape), torch.zeros(4, dtype=torch.long))
    assert zen_score(ConvBN(), images) == pytest.approx(hand_zen(shape, 1), rel=1e-5)
    assert zen_score(ConvBN(momentum=0.5), images) == pytest.approx(hand_zen(shape, 1, momentum=0.5), rel=1e-5)
    # the paper's batch-variance reading (momentum 1) is a different number on the same draws
    assert abs(hand_zen(shape, 1, momentum=1.0) - hand_zen(shape, 1)) > 1e-3


def test_zen_repeat_is_the_mean_over_fresh_draws_with_running_stats_carried_over():
    shape = (4, 1, 3, 3)
    images = (torch.zeros(shape), torch.zeros(4, dtype=torch.long))
    assert zen_score(ConvBN(), images, repeat=3) == pytest.approx(hand_zen(shape, 3), rel=1e-5)
    assert zen_score(ConvBN(), images, repeat=3) != pytest.approx(zen_score(ConvBN(), images), rel=1e-6)
    with pytest.raises(ConfigError, match="repeat"):
        zen_score(ConvBN(), images, repeat=0)


class Pooled(nn.Module):
    """A classifier without forward_features: conv -> BN -> ReLU -> AdaptiveAvgPool2d -> Linear."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.body(x)), 1))


def test_zen_without_forward_features_scores_the_input_of_the_global_pool():
    images = (torch.zeros(8, 1, 6, 6), torch.zeros(8, dtype=torch.long))
    model = Pooled()
    with_method = Pooled()
    with_method.load_state_dict(model.state_dict())
    with_method.forward_features = with_method.body
    assert zen_score(model, images) == pytest.approx(zen_score(with_method, images), rel=1e-9)
    x = torch.randn(2, 1, 6, 6)
    assert pre_gap_features(model)(x).shape == (2, 4, 6, 6)  # not the pooled (2, 4) vector


def test_zen_refuses_a_model_without_pre_gap_features():
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(ConfigError, match="forward_features"):
        zen_score(net, (torch.zeros(2, 1, 2, 2), torch.zeros(2, dtype=torch.long)))


class DeadBranch(nn.Module):
    """A BN that only ever sees zeros (like a cell whose edges are all `none`) next to a live conv path."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(1)

    def forward_features(self, x):
        return self.conv(x) + self.bn(x * 0)

    def forward(self, x):
        return self.forward_features(x).mean(dim=(1, 2, 3))


def test_zen_is_finite_when_a_bn_sees_only_zeros_and_minus_inf_only_for_a_constant_output():
    images = (torch.zeros(4, 1, 3, 3), torch.zeros(4, dtype=torch.long))
    assert math.isfinite(zen_score(DeadBranch(), images))  # running_var = 0.81, not 0
    constant = ConvBN()
    constant.forward_features = lambda x: torch.zeros_like(x)
    assert zen_score(constant, images) == float("-inf")


class MyReLU(nn.Module):
    def forward(self, x):
        return x.clamp_min(0)


@pytest.mark.parametrize("activation", [MyReLU(), nn.LeakyReLU(0.1), nn.ReLU6()])
def test_naswot_hooks_every_module_whose_class_name_contains_relu(activation):
    net = nn.Sequential(nn.Linear(2, 2, bias=False), activation)
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(2))
    x = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])  # codes 11, 10, 00 -> K = [[2,1,0],[1,2,1],[0,1,2]]
    assert PROXIES.get("naswot")(net, (x, torch.zeros(3, dtype=torch.long))) == pytest.approx(math.log(4.0))


def test_naswot_ignores_activations_not_named_relu():
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.GELU())
    x = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    assert PROXIES.get("naswot")(net, (x, torch.zeros(3, dtype=torch.long))) == float("-inf")  # no hooks: K = 0


def test_zen_on_cell_archs_is_minus_inf_only_when_the_features_ignore_the_input():
    from slimvision.nas.spaces.cell import arch_from_string, nas_cell

    images = (torch.zeros(8, 1, 8, 8), torch.zeros(8, dtype=torch.long))
    # node 1 is `none` (always zero) and feeds a conv-BN: that BN sees only zeros, the output still depends on x
    dead_bn = nas_cell(10, 1, arch=arch_from_string("|none~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"))
    assert math.isfinite(zen_score(dead_bn, images))
    # every path from the input to the cell output is cut by a `none` edge: the features are constant
    cut = nas_cell(10, 1, arch=arch_from_string("|none~0|+|nor_conv_1x1~0|none~1|+|none~0|avg_pool_3x3~1|none~2|"))
    assert zen_score(cut, images) == float("-inf")


def test_proxy_options_reach_the_proxy_through_the_evaluator():
    import random

    from slimvision.nas import SPACES, create_evaluator

    space = SPACES.get("cell")()
    arch = space.sample(random.Random(1))
    once = create_evaluator("zen", space, batch_size=8)
    twice = create_evaluator("zen", space, batch_size=8, proxy_options={"repeat": 2})
    torch.manual_seed(0)
    model = space.build(arch, once.num_classes, once.in_chans)
    assert twice.score(arch) == pytest.approx(zen_score(model, once.batch, repeat=2), rel=1e-12)
    assert twice.score(arch) != once.score(arch)

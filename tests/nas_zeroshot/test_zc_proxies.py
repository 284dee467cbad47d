import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from slimvision.nas.proxies import PROXIES
from slimvision.nas.proxies.measures import conv_linear_macs


def two_layer(relu: bool = True, bias: bool = False) -> nn.Sequential:
    torch.manual_seed(0)
    layers = [nn.Linear(3, 4, bias=bias)] + ([nn.ReLU()] if relu else []) + [nn.Linear(4, 2, bias=bias)]
    return nn.Sequential(*layers)


def batch(n: int = 5, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g), torch.randint(0, 2, (n,), generator=g)


def test_synflow_equals_twice_the_output_of_the_abs_network_and_ignores_data():
    net = two_layer()
    w1, w2 = net[0].weight.detach().abs().double(), net[2].weight.detach().abs().double()
    r = (w2 @ w1 @ torch.ones(3, dtype=torch.float64)).sum()  # R = 1^T |W2| |W1| 1 (all positive, ReLU passes)
    assert PROXIES.get("synflow")(net, batch()) == pytest.approx(2 * float(r), rel=1e-9)  # each layer contributes R
    assert PROXIES.get("synflow")(net, batch(7, seed=3)) == PROXIES.get("synflow")(net, batch())


def test_snip_and_grad_norm_match_hand_gradients_of_a_linear_classifier():
    net = nn.Linear(3, 2, bias=False)
    x, y = batch()
    probs = F.softmax(x @ net.weight.detach().T, 1)
    grad = (probs - F.one_hot(y, 2)).T @ x / len(y)  # dCE/dW, mean reduction
    assert PROXIES.get("snip")(net, (x, y)) == pytest.approx(float((grad * net.weight.detach()).abs().sum()), rel=1e-5)
    assert PROXIES.get("grad_norm")(net, (x, y)) == pytest.approx(float(grad.norm()), rel=1e-5)


def test_fisher_matches_hand_value_on_a_linear_classifier():
    net = nn.Linear(3, 2, bias=False)
    x, y = batch()
    act = x @ net.weight.detach().T
    g = (F.softmax(act, 1) - F.one_hot(y, 2)) / len(y)
    # each output channel's value counts once per weight of that channel (in_features = 3), as in the authors' code
    assert PROXIES.get("fisher")(net, (x, y)) == pytest.approx(3 * float((0.5 * (act * g).pow(2).mean(0)).sum()), rel=1e-5)


def test_grasp_equals_minus_theta_hessian_gradient_product():
    net = nn.Linear(3, 2, bias=False)
    x, y = batch()
    w0 = net.weight.detach().clone()

    def loss(w):
        return F.cross_entropy(x @ w.T, y)

    g = torch.func.grad(loss)(w0)
    hessian = torch.autograd.functional.hessian(loss, w0).reshape(6, 6)
    expected = -(w0.reshape(-1) @ (hessian @ g.reshape(-1)))
    assert PROXIES.get("grasp")(net, (x, y)) == pytest.approx(float(expected), rel=1e-4, abs=1e-7)


def test_naswot_is_the_log_determinant_of_the_hand_built_hamming_kernel():
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU())
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(2))
    x = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])  # codes 11, 10, 00 -> K = [[2,1,0],[1,2,1],[0,1,2]]
    assert PROXIES.get("naswot")(net, (x, torch.zeros(3, dtype=torch.long))) == pytest.approx(math.log(4.0))
    # Same inputs, different activation patterns (all on): K is all 2s, singular -> score changes.
    x_same = torch.tensor([[1.0, 1.0], [2.0, 1.0], [1.0, 3.0]])
    assert PROXIES.get("naswot")(net, (x_same, torch.zeros(3, dtype=torch.long))) < math.log(4.0)


def test_jacob_cov_of_a_linear_net_matches_the_eigenvalue_formula():
    net = two_layer(relu=False)
    x, y = batch(4)
    n, k = 4, 1e-5  # identical Jacobians -> correlation matrix of ones -> eigenvalues (n, 0, 0, 0)
    expected = -((math.log(n + k) + 1 / (n + k)) + (n - 1) * (math.log(k) + 1 / k))
    assert PROXIES.get("jacob_cov")(net, (x, y)) == pytest.approx(expected, rel=1e-3)


def test_zen_is_data_free_deterministic_and_log_linear_in_alpha_for_a_linear_net():
    from slimvision.nas.proxies.measures import zen_score

    net = two_layer(relu=False)
    net.forward_features = net.forward
    x, y = batch()
    assert zen_score(net, (x, y)) == zen_score(net, (x * 100, y))
    assert zen_score(net, (x, y), alpha=0.02) - zen_score(net, (x, y), alpha=0.01) == pytest.approx(math.log(2), abs=1e-4)


def test_macs_hook_count_matches_flop_counter_on_a_cell_network():
    from slimvision.measure import count_macs
    from slimvision.nas.spaces.cell import arch_from_string, nas_cell

    model = nas_cell(10, 1, arch=arch_from_string("conv3x3,skip,conv1x1,avgpool,none,conv3x3"))
    assert conv_linear_macs(model, (1, 8, 8)) == count_macs(model, (1, 8, 8))


def test_every_proxy_is_registered_as_an_evaluator_and_deterministic():
    import random

    from slimvision.nas import SPACES, create_evaluator

    space = SPACES.get("cell")()
    arch = space.sample(random.Random(0))
    for name in ("zen", "synflow", "snip", "grasp", "gradnorm", "grad_norm", "fisher", "naswot", "jacob_cov", "params", "macs"):
        evaluator = create_evaluator(name, space, batch_size=16)
        first, second = evaluator.score(arch), evaluator.score(arch)
        assert math.isfinite(first) and first == second, name

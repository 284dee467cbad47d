"""Zero-cost proxies: `score(model, batch) -> float` on an untrained network; higher should mean better.

Definitions follow the authors' code (zero-cost-proxies `foresight` package, Zen-NAS, NASWOT); see docs/nas_zeroshot.md.
Per-weight scores (synflow, snip, grasp) are summed over the weights of every Conv2d and Linear layer.
"""

from __future__ import annotations

import copy
import math
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from slimvision.errors import ConfigError
from slimvision.registry import Registry

Batch = tuple[torch.Tensor, torch.Tensor]
ProxyFn = Callable[[nn.Module, Batch], float]
PROXIES: Registry[ProxyFn] = Registry("zero-cost proxy")


def _weighted_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _fresh_copy(model: nn.Module) -> nn.Module:
    clone = copy.deepcopy(model)
    clone.train()
    clone.zero_grad(set_to_none=True)
    return clone


@PROXIES.register("params")
def params_score(model: nn.Module, batch: Batch) -> float:
    """Number of parameters."""
    return float(sum(p.numel() for p in model.parameters()))


@PROXIES.register("macs")
def macs_score(model: nn.Module, batch: Batch) -> float:
    """Multiply-accumulates of one image (Conv2d and Linear layers)."""
    return float(conv_linear_macs(model, tuple(batch[0].shape[1:])))


def conv_linear_macs(model: nn.Module, input_size: tuple[int, ...]) -> int:
    """MACs of one image counted by forward hooks on Conv2d/Linear; equals `count_macs` for such nets, much faster."""
    total = 0

    def conv_hook(module: nn.Conv2d, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        kernel = module.weight.shape[1] * module.weight.shape[2] * module.weight.shape[3]
        total += output[0].numel() * kernel

    def linear_hook(module: nn.Linear, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += output[0].numel() * module.in_features

    handles = [m.register_forward_hook(conv_hook if isinstance(m, nn.Conv2d) else linear_hook) for m in _weighted_layers(model)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_size))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total


@PROXIES.register("synflow")
def synflow_score(model: nn.Module, batch: Batch) -> float:
    """SynFlow: sum |theta * dR/dtheta|, R = sum(f_|theta|(1)), float64, BN bypassed (identity), data-free."""
    net = _fresh_copy(model).double()
    for name, module in list(net.named_modules()):  # BN bypass as in the authors' code (bn=False copy)
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(module, child_name, nn.Identity())
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    ones = torch.ones((1, *batch[0].shape[1:]), dtype=torch.float64)
    net(ones).sum().backward()
    return float(sum((m.weight.detach() * m.weight.grad).abs().sum() for m in _weighted_layers(net) if m.weight.grad is not None))


def _loss_grads(net: nn.Module, batch: Batch) -> None:
    inputs, targets = batch
    F.cross_entropy(net(inputs), targets).backward()


@PROXIES.register("snip")
def snip_score(model: nn.Module, batch: Batch) -> float:
    """SNIP: sum |theta * dL/dtheta| for the cross-entropy loss of one batch."""
    net = _fresh_copy(model)
    _loss_grads(net, batch)
    return float(sum((m.weight.detach() * m.weight.grad).abs().sum() for m in _weighted_layers(net) if m.weight.grad is not None))


@PROXIES.register("grad_norm")
def grad_norm_score(model: nn.Module, batch: Batch) -> float:
    """GradNorm: sum over Conv2d/Linear layers of the L2 norm of dL/dW."""
    net = _fresh_copy(model)
    _loss_grads(net, batch)
    return float(sum(m.weight.grad.norm() for m in _weighted_layers(net) if m.weight.grad is not None))


@PROXIES.register("grasp")
def grasp_score(model: nn.Module, batch: Batch) -> float:
    """GraSP: sum of -theta * (H g), H g by double backprop (temperature 1)."""
    net = _fresh_copy(model)
    inputs, targets = batch
    weights = [m.weight for m in _weighted_layers(net)]
    first = torch.autograd.grad(F.cross_entropy(net(inputs), targets), weights, allow_unused=True)
    grads = torch.autograd.grad(F.cross_entropy(net(inputs), targets), weights, create_graph=True, allow_unused=True)
    z = sum((g1.detach() * g2).sum() for g1, g2 in zip(first, grads) if g1 is not None and g2 is not None)
    if not isinstance(z, torch.Tensor) or not z.requires_grad:
        return 0.0
    hessian_grads = torch.autograd.grad(z, weights, allow_unused=True)
    return float(sum((-w.detach() * hg).sum() for w, hg in zip(weights, hessian_grads) if hg is not None))


@PROXIES.register("fisher")
def fisher_score(model: nn.Module, batch: Batch) -> float:
    """Fisher: per output channel k of every Conv2d/Linear, F_k = 0.5 * mean_n (sum_hw a * dL/da)^2, counted prod(W.shape[1:]) times.

    The authors' code computes F_k per channel, then broadcasts it to the weight's shape before summing,
    so each channel counts once per weight it owns (in_channels/groups * kh * kw, or in_features).
    """
    net = _fresh_copy(model)
    per_layer: list[tuple[nn.Module, torch.Tensor]] = []

    def keep(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        output.retain_grad()
        per_layer.append((module, output))

    handles = [m.register_forward_hook(keep) for m in _weighted_layers(net)]
    try:
        _loss_grads(net, batch)
    finally:
        for handle in handles:
            handle.remove()
    total = 0.0
    for module, act in per_layer:
        if act.grad is None:
            continue
        product = act.detach() * act.grad
        per_sample = product.sum(dim=tuple(range(2, product.dim()))) if product.dim() > 2 else product
        per_channel = 0.5 * per_sample.pow(2).mean(0)
        weights_per_channel = math.prod(module.weight.shape[1:])
        total += float(per_channel.sum()) * weights_per_channel
    return total


@PROXIES.register("jacob_cov")
def jacob_cov_score(model: nn.Module, batch: Batch) -> float:
    """jacob_cov: -sum(log(v + k) + 1/(v + k)) over eigenvalues v of the correlation of input Jacobians, k = 1e-5."""
    net = _fresh_copy(model)
    inputs = batch[0].clone().requires_grad_(True)
    net(inputs).sum().backward()
    jac = inputs.grad.reshape(inputs.shape[0], -1).double().numpy()
    corr = np.corrcoef(jac)
    if not np.all(np.isfinite(corr)):
        return float("-inf")
    eig = np.linalg.eigvalsh(corr)
    k = 1e-5
    return float(-np.sum(np.log(eig + k) + 1.0 / (eig + k)))


def _is_relu(module: nn.Module) -> bool:
    """The NASWOT code's rule: every module whose class name contains "ReLU" (ReLU, ReLU6, LeakyReLU, ...)."""
    return "ReLU" in type(module).__name__


@PROXIES.register("naswot")
def naswot_score(model: nn.Module, batch: Batch) -> float:
    """NASWOT: log|K_H|, K_H[i,j] = #units where inputs i,j share the on/off state, over every module named *ReLU*."""
    net = _fresh_copy(model)
    n = batch[0].shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64)

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        code = (inputs[0].detach().reshape(n, -1) > 0).double()
        kernel.add_(code @ code.T + (1 - code) @ (1 - code).T)

    handles = [m.register_forward_hook(hook) for m in net.modules() if _is_relu(m)]
    try:
        with torch.no_grad():
            net(batch[0])
    finally:
        for handle in handles:
            handle.remove()
    return float(torch.linalg.slogdet(kernel)[1])


ZEN_ALPHA = 0.01


@PROXIES.register("zen")
def zen_score(model: nn.Module, batch: Batch, alpha: float = ZEN_ALPHA, seed: int = 0, repeat: int = 1) -> float:
    """Zen-score as in the Zen-NAS code: mean over `repeat` draws of log E|f(x) - f(x + alpha*eps)| + sum log sqrt(mean running_var).

    Each draw re-initialises Conv2d/Linear weights N(0,1) (bias 0) and BN/GroupNorm affine (1, 0) and runs two
    data-free passes (x, eps ~ N(0,1) of the batch's shape) in training mode. The BN term reads every
    BatchNorm2d's running_var after those passes with the layers' own momentum (0.1 by default), as the
    reference code does; running statistics start fresh (mean 0, var 1) and carry over between draws.
    f is the pre-GAP feature map, see `pre_gap_features`.
    """
    if repeat < 1:
        raise ConfigError(f"zen: repeat must be >= 1, got {repeat}")
    net = _fresh_copy(model)
    features = pre_gap_features(net)
    generator = torch.Generator().manual_seed(seed)
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
    scores = []
    with torch.no_grad():
        for _ in range(repeat):
            _gaussian_init(net, generator)
            shape = batch[0].shape
            x = torch.randn(shape, generator=generator)
            eps = torch.randn(shape, generator=generator)
            out = features(x)
            out_perturbed = features(x + alpha * eps)
            diff = (out - out_perturbed).abs().reshape(shape[0], -1).sum(1).mean()
            bn_term = sum(float(torch.log(torch.sqrt(m.running_var.mean()))) for m in net.modules() if isinstance(m, nn.BatchNorm2d))
            scores.append(float(torch.log(diff)) + bn_term)
    return float(np.mean(scores))


def _gaussian_init(net: nn.Module, generator: torch.Generator) -> None:
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            module.weight.copy_(torch.randn(module.weight.shape, generator=generator))
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)) and module.affine:
            module.weight.fill_(1.0)
            module.bias.zero_()


def pre_gap_features(net: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The function x -> pre-GAP feature map: `forward_pre_GAP` or `forward_features` if the model has one, else
    the input of the last `nn.AdaptiveAvgPool2d` the forward pass runs. Anything else is refused (never post-pool features).
    """
    for method in ("forward_pre_GAP", "forward_features"):
        if callable(getattr(net, method, None)):
            return getattr(net, method)
    pools = [m for m in net.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
    if not pools:
        raise ConfigError(
            f"zen: {type(net).__name__} has no forward_features and no nn.AdaptiveAvgPool2d; "
            "define forward_features(x) returning the feature map before global pooling"
        )
    captured: list[torch.Tensor] = []

    def run(x: torch.Tensor) -> torch.Tensor:
        handles = [pool.register_forward_pre_hook(lambda m, inp: captured.append(inp[0])) for pool in pools]
        try:
            net(x)
        finally:
            for handle in handles:
                handle.remove()
        last = captured[-1]
        captured.clear()
        return last

    return run


def compute_proxy(name: str, model: nn.Module, batch: Batch, **options: float) -> float:
    """PROXIES[name](model, batch, **options) under a fixed seed."""
    torch.manual_seed(0)
    return PROXIES.get(name)(model, batch, **options)

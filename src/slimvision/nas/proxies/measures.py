"""Zero-cost proxies: `score(model, batch) -> float` on an untrained network; higher should mean better.

Definitions follow the authors' code (zero-cost-proxies `foresight` package, Zen-NAS, NASWOT); see docs/nas_zeroshot.md.
Per-weight scores (synflow, snip, grasp) are summed over the weights of every Conv2d and Linear layer.
"""

from __future__ import annotations

import copy
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

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
    """Fisher: per output channel of every Conv2d/Linear, 0.5 * mean_n (sum_hw a * dL/da)^2, summed."""
    net = _fresh_copy(model)
    activations: list[torch.Tensor] = []

    def keep(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        output.retain_grad()
        activations.append(output)

    handles = [m.register_forward_hook(keep) for m in _weighted_layers(net)]
    try:
        _loss_grads(net, batch)
    finally:
        for handle in handles:
            handle.remove()
    total = 0.0
    for act in activations:
        if act.grad is None:
            continue
        product = act.detach() * act.grad
        per_sample = product.sum(dim=(2, 3)) if product.dim() == 4 else product
        total += float((0.5 * per_sample.pow(2).mean(0)).sum())
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


@PROXIES.register("naswot")
def naswot_score(model: nn.Module, batch: Batch) -> float:
    """NASWOT: log|K_H|, K_H[i,j] = #units where inputs i,j share the ReLU on/off state, over every nn.ReLU."""
    net = _fresh_copy(model)
    n = batch[0].shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64)

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        code = (inputs[0].detach().reshape(n, -1) > 0).double()
        kernel.add_(code @ code.T + (1 - code) @ (1 - code).T)

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            net(batch[0])
    finally:
        for handle in handles:
            handle.remove()
    return float(torch.linalg.slogdet(kernel)[1])


@PROXIES.register("zen")
def zen_score(model: nn.Module, batch: Batch, alpha: float = 0.01, seed: int = 0) -> float:
    """Zen-score: log E|f(x) - f(x + alpha*eps)| on pre-GAP features + sum log sqrt(mean sigma_BN^2), Gaussian init.

    Data-free: x and eps are N(0,1) of the batch's shape. BN layers run in training mode; sigma_BN^2 is the batch
    variance of the perturbed pass (momentum set to 1 so running_var holds it).
    """
    net = _fresh_copy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator))
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = 1.0
                if module.affine:
                    module.weight.fill_(1.0)
                    module.bias.zero_()
        shape = batch[0].shape
        x = torch.randn(shape, generator=generator)
        eps = torch.randn(shape, generator=generator)
        features = _pre_gap(net)
        out = features(x)
        out_perturbed = features(x + alpha * eps)
        diff = (out - out_perturbed).abs().reshape(shape[0], -1).sum(1).mean()
        bn_term = sum(torch.log(torch.sqrt(m.running_var.mean())) for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
        return float(torch.log(diff) + bn_term)


def _pre_gap(net: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """forward_features if the model has it, else the input of its last Linear layer."""
    if hasattr(net, "forward_features"):
        return net.forward_features  # type: ignore[return-value]
    last = _weighted_layers(net)[-1]
    captured: list[torch.Tensor] = []

    def run(x: torch.Tensor) -> torch.Tensor:
        handle = last.register_forward_pre_hook(lambda m, inp: captured.append(inp[0]))
        try:
            net(x)
        finally:
            handle.remove()
        return captured.pop()

    return run


def compute_proxy(name: str, model: nn.Module, batch: Batch) -> float:
    """PROXIES[name](model, batch) under a fixed seed."""
    torch.manual_seed(0)
    return PROXIES.get(name)(model, batch)

"""Differentiable NAS on the `cell` space: DARTS (softmax relaxation, first/second-order) and GDAS (hard Gumbel samples).

Both run on the foundation Trainer: it trains the supernet weights on the train split (the weight step), and
a callback takes an architecture step on a validation batch before every weight step (the bi-level scheme).
Architecture logits live outside the model, so the Trainer's optimizer never touches them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from slimvision.errors import ConfigError
from slimvision.nas.spaces.cell import EDGE_NAMES, OPS
from slimvision.nas.supernet.cell import PARAMETER_FREE_OPS, CellSupernet, parameter_free_share
from slimvision.train import Callback

# The derived cell is reported as collapsed when more than half its edges are parameter-free (skip/avgpool):
# the failure mode DARTS is known for (Zela et al. 2020, "Understanding and robustifying DARTS").
COLLAPSE_EDGES = len(EDGE_NAMES) // 2 + 1


def arch_gradient(weight_params: Sequence[torch.Tensor], arch_params: Sequence[torch.Tensor], train_loss: Callable[[], torch.Tensor],
                  val_loss: Callable[[], torch.Tensor], lr: float = 0.0, second_order: bool = False, epsilon: float = 0.01) -> list[torch.Tensor]:
    """d L_val / d alpha. First order: at the current weights. Second order (DARTS eq. 7-8): through one unrolled SGD step
    w' = w - lr * dL_train/dw, with the Hessian-vector product by central finite differences (w +- eps * dL_val/dw').

    The weights are restored before returning; `.grad` fields are never touched.
    """
    weight_params, arch_params = list(weight_params), list(arch_params)
    if not second_order:
        return [g if g is not None else torch.zeros_like(a) for g, a in zip(torch.autograd.grad(val_loss(), arch_params, allow_unused=True), arch_params)]
    backup = [p.detach().clone() for p in weight_params]
    train_grads = torch.autograd.grad(train_loss(), weight_params, allow_unused=True)
    with torch.no_grad():
        for p, g in zip(weight_params, train_grads):
            if g is not None:
                p.sub_(lr * g)
    grads = torch.autograd.grad(val_loss(), arch_params + weight_params, allow_unused=True)
    arch_grads = [g if g is not None else torch.zeros_like(a) for g, a in zip(grads[: len(arch_params)], arch_params)]
    weight_grads = [g if g is not None else torch.zeros_like(p) for g, p in zip(grads[len(arch_params):], weight_params)]
    norm = torch.sqrt(sum((g * g).sum() for g in weight_grads))
    eps = epsilon / norm.clamp_min(1e-12)

    def arch_grad_at(sign: float) -> list[torch.Tensor]:
        with torch.no_grad():
            for p, saved, g in zip(weight_params, backup, weight_grads):
                p.copy_(saved + sign * eps * g)
        found = torch.autograd.grad(train_loss(), arch_params, allow_unused=True)
        return [g if g is not None else torch.zeros_like(a) for g, a in zip(found, arch_params)]

    plus, minus = arch_grad_at(1.0), arch_grad_at(-1.0)
    with torch.no_grad():
        for p, saved in zip(weight_params, backup):
            p.copy_(saved)
    return [g - lr * (gp - gm) / (2 * eps) for g, gp, gm in zip(arch_grads, plus, minus)]


def gumbel_softmax_hard(logits: torch.Tensor, tau: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """One-hot rows (argmax of softmax((logits + Gumbel noise) / tau)) whose gradient is the soft sample's (straight-through)."""
    uniform = torch.rand(logits.shape, generator=generator, dtype=logits.dtype).clamp(1e-10, 1.0 - 1e-10)
    soft = F.softmax((logits - torch.log(-torch.log(uniform))) / tau, dim=-1)
    hard = F.one_hot(soft.argmax(-1), logits.shape[-1]).to(soft.dtype)
    return hard - soft.detach() + soft


def derive_arch(logits: torch.Tensor) -> dict[str, str]:
    """The discrete cell: on each edge the op with the largest logit, `none` excluded (as DARTS derives)."""
    allowed = [k for k, op in enumerate(OPS) if op != "none"]
    return {name: OPS[allowed[int(logits[row, allowed].argmax())]] for row, name in enumerate(EDGE_NAMES)}


def collapse_report(arch: dict[str, str], logits: torch.Tensor) -> dict[str, Any]:
    """How much of the derived cell and of the softmax mass sits on parameter-free ops; `collapsed` flags the DARTS failure."""
    free_edges = sum(arch[name] in PARAMETER_FREE_OPS for name in EDGE_NAMES)
    return {"parameter_free_edges": free_edges, "parameter_free_share": parameter_free_share(F.softmax(logits, -1)),
            "collapsed": free_edges >= COLLAPSE_EDGES}


@dataclass
class DifferentiableConfig:
    method: str = "darts"  # darts | gdas
    second_order: bool = False  # DARTS only
    arch_lr: float = 3e-3
    arch_weight_decay: float = 1e-3
    tau_max: float = 10.0  # GDAS temperature, annealed linearly to tau_min over the epochs
    tau_min: float = 0.1
    # Epochs that train only the weights (uniform mixing) before the logits move: untrained convs otherwise lose
    # to parameter-free ops in the first steps and the search collapses at once (seen on digits: all-avgpool after 1 epoch).
    warmup_epochs: int = 0

    def __post_init__(self) -> None:
        if self.method not in ("darts", "gdas"):
            raise ConfigError(f"differentiable method {self.method!r}: use darts or gdas")
        if self.second_order and self.method != "darts":
            raise ConfigError("second-order architecture gradients are a DARTS option, not GDAS")


class ArchitectureStep(Callback):
    """Before each weight step: one Adam step on the architecture logits from a validation batch."""

    def __init__(self, supernet: CellSupernet, logits: torch.nn.Parameter, config: DifferentiableConfig, val_batches, epochs: int, seed: int):
        self.supernet, self.logits, self.config = supernet, logits, config
        self.optimizer = torch.optim.Adam([logits], lr=config.arch_lr, betas=(0.5, 0.999), weight_decay=config.arch_weight_decay)
        self.val_batches = itertools.cycle(list(val_batches))
        self.epochs = epochs
        self.generator = torch.Generator().manual_seed(seed)
        self.tau = config.tau_max
        self.epoch = 0

    def edge_weights(self) -> tuple[torch.Tensor, bool]:
        """The relaxation of the current logits: softmax (DARTS) or a hard Gumbel sample (GDAS)."""
        if self.config.method == "gdas":
            return gumbel_softmax_hard(self.logits, self.tau, self.generator), True
        return F.softmax(self.logits, -1), False

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        self.epoch = epoch
        progress = epoch / max(1, self.epochs - 1)
        self.tau = self.config.tau_max - (self.config.tau_max - self.config.tau_min) * progress

    def on_batch_begin(self, trainer, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        if self.epoch < self.config.warmup_epochs:
            return
        val_inputs, val_targets = next(self.val_batches)

        def loss_on(x: torch.Tensor, y: torch.Tensor) -> Callable[[], torch.Tensor]:
            def loss() -> torch.Tensor:
                weights, hard = self.edge_weights()
                return F.cross_entropy(self.supernet(x, weights, hard), y)
            return loss

        weight_params = [p for p in self.supernet.parameters() if p.requires_grad]
        grads = arch_gradient(weight_params, [self.logits], loss_on(inputs, targets), loss_on(val_inputs, val_targets),
                              lr=trainer.optimizer.param_groups[0]["lr"], second_order=self.config.second_order)
        self.optimizer.zero_grad(set_to_none=True)
        self.logits.grad = grads[0]
        self.optimizer.step()
        self.logits.grad = None


def weight_loss(step: ArchitectureStep):
    """loss_fn for the Trainer: the supernet's cross-entropy under the current relaxation (logits held fixed)."""

    def loss_fn(model: CellSupernet, inputs: torch.Tensor, targets: torch.Tensor):
        weights, hard = step.edge_weights()
        logits = model(inputs, weights.detach(), hard)
        return F.cross_entropy(logits, targets), logits

    return loss_fn

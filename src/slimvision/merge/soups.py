"""Weight soups: uniform, greedy and learned averages of models fine-tuned from one start.

All ingredients must have the same tensors (names, shapes, dtypes); `check_compatible` names the
first one that differs. Averaged BatchNorm statistics do not describe the averaged weights, so
every soup re-estimates them on a few training batches (`recalibrate_batchnorm`).
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from slimvision.data import TensorImageDataset, make_loader
from slimvision.errors import ConfigError
from slimvision.measure.accuracy import accuracy
from slimvision.train.batchnorm import recalibrate_batchnorm

State = dict[str, torch.Tensor]


def check_compatible(states: Sequence[State], names: Sequence[str]) -> None:
    """Raise ConfigError naming the first tensor whose name, shape or dtype differs from the first ingredient's."""
    if len(states) < 2:
        raise ConfigError(f"a soup needs at least 2 ingredients, got {len(states)}")
    reference = states[0]
    for state, name in zip(states[1:], names[1:]):
        for key in reference:
            if key not in state:
                raise ConfigError(f"cannot merge {name} with {names[0]}: tensor {key!r} is missing from {name} (different architectures)")
            if state[key].shape != reference[key].shape:
                raise ConfigError(f"cannot merge {name} with {names[0]}: tensor {key!r} has shape {tuple(state[key].shape)} "
                                  f"vs {tuple(reference[key].shape)} (different architectures)")
            if state[key].dtype != reference[key].dtype:
                raise ConfigError(f"cannot merge {name} with {names[0]}: tensor {key!r} is {state[key].dtype} vs {reference[key].dtype}")
        extra = [key for key in state if key not in reference]
        if extra:
            raise ConfigError(f"cannot merge {name} with {names[0]}: tensor {extra[0]!r} is missing from {names[0]} (different architectures)")


def weighted_average(states: Sequence[State], weights: Sequence[float] | None = None) -> State:
    """sum_i w_i * state_i for floating tensors (uniform when `weights` is None); integer tensors come from the first."""
    weights = list(weights) if weights is not None else [1.0 / len(states)] * len(states)
    merged: State = {}
    for key, first in states[0].items():
        if first.is_floating_point():
            merged[key] = sum(w * state[key].float() for w, state in zip(weights, states)).to(first.dtype)
        else:
            merged[key] = first.clone()  # e.g. BatchNorm's num_batches_tracked
    return merged


def build_soup(template: nn.Module, state: State, train_set: TensorImageDataset | None, bn_batches: int) -> nn.Module:
    """A copy of `template` holding `state`, BatchNorm statistics re-estimated on `train_set`."""
    model = copy.deepcopy(template)
    model.load_state_dict(state)
    if train_set is not None:
        device = next(model.parameters()).device
        # unshuffled: the same batches every time
        recalibrate_batchnorm(model, (images.to(device) for _, (images, _) in zip(range(bn_batches), make_loader(train_set, 128))))
    return model.eval()


def uniform_soup(template: nn.Module, states: Sequence[State], train_set: TensorImageDataset | None, bn_batches: int = 8) -> nn.Module:
    """The plain average of all ingredients."""
    return build_soup(template, weighted_average(states), train_set, bn_batches)


def greedy_soup(template: nn.Module, states: Sequence[State], val_set: TensorImageDataset, train_set: TensorImageDataset | None,
                bn_batches: int = 8) -> tuple[nn.Module, list[int], list[float]]:
    """(soup, kept ingredient indices, held-out accuracy of each ingredient).

    Ingredients are tried from best to worst held-out accuracy; one is kept only if the average
    with it scores strictly higher on `val_set`. The starting soup is the best ingredient exactly
    as given, so the result is never worse than it on `val_set`.
    """
    ingredient_accuracy = []
    for state in states:
        ingredient_accuracy.append(accuracy(build_soup(template, state, None, 0), val_set))
    order = sorted(range(len(states)), key=lambda i: -ingredient_accuracy[i])
    kept = [order[0]]
    best_model = build_soup(template, states[order[0]], None, 0)
    best_accuracy = ingredient_accuracy[order[0]]
    for index in order[1:]:
        candidate = build_soup(template, weighted_average([states[i] for i in kept + [index]]), train_set, bn_batches)
        candidate_accuracy = accuracy(candidate, val_set)
        if candidate_accuracy > best_accuracy:
            kept.append(index)
            best_model, best_accuracy = candidate, candidate_accuracy
    return best_model, kept, ingredient_accuracy


def learned_soup(template: nn.Module, states: Sequence[State], val_set: TensorImageDataset, train_set: TensorImageDataset | None,
                 per_layer: bool = False, epochs: int = 20, lr: float = 0.05, batch_size: int = 128, bn_batches: int = 8,
                 seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    """(soup, mixing coefficients) with coefficients softmax(logits) fitted to minimise cross-entropy on `val_set`.

    Coefficients are one per ingredient, or with `per_layer` one per ingredient for every
    parameter tensor (rows sum to 1). BatchNorm runs on batch statistics while fitting, since
    running statistics of the mixture are unknown until re-estimated.
    """
    keys = [name for name, _ in template.named_parameters()]
    stacked = {key: torch.stack([state[key].float() for state in states]) for key in keys}
    rows = len(keys) if per_layer else 1
    logits = torch.zeros(rows, len(states), requires_grad=True)  # zeros: start from the uniform soup
    optimizer = torch.optim.Adam([logits], lr=lr)
    model = copy.deepcopy(template).train()
    buffers = {name: buffer.clone() for name, buffer in model.named_buffers()}
    for epoch in range(epochs):
        for images, labels in make_loader(val_set, batch_size, shuffle=True, seed=seed, epoch=epoch):
            coefficients = F.softmax(logits, dim=1)
            params = {key: torch.tensordot(coefficients[i if per_layer else 0], stacked[key], dims=1) for i, key in enumerate(keys)}
            loss = F.cross_entropy(functional_call(model, {**params, **buffers}, (images,)), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    coefficients = F.softmax(logits.detach(), dim=1)
    merged = dict(states[0])
    for i, key in enumerate(keys):
        merged[key] = torch.tensordot(coefficients[i if per_layer else 0], stacked[key], dims=1).to(states[0][key].dtype)
    buffer_mix = weighted_average(states, coefficients.mean(0).tolist())  # buffers: the mean mixture, re-estimated below
    for key in states[0]:
        if key not in keys:
            merged[key] = buffer_mix[key]
    return build_soup(template, merged, train_set, bn_batches), coefficients

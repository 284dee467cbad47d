"""Top-k accuracy of a model on a dataset."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from slimvision.data import make_loader


@torch.no_grad()
def evaluate_accuracy(model: torch.nn.Module, dataset: Dataset, batch_size: int = 256, topk: tuple[int, ...] = (1,)) -> dict[int, float]:
    """{k: fraction of samples whose label is among the top-k logits} in eval mode, in [0, 1]."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    hits = {k: 0 for k in topk}
    total = 0
    try:
        for images, labels in make_loader(dataset, batch_size):
            logits = model(images.to(device))
            labels = labels.to(device)
            ranked = logits.topk(max(topk), dim=1).indices
            for k in topk:
                hits[k] += (ranked[:, :k] == labels[:, None]).any(dim=1).sum().item()
            total += labels.numel()
    finally:
        model.train(was_training)
    return {k: hits[k] / max(total, 1) for k in topk}


def accuracy(model: torch.nn.Module, dataset: Dataset, batch_size: int = 256) -> float:
    """Top-1 accuracy in [0, 1]."""
    return evaluate_accuracy(model, dataset, batch_size, (1,))[1]

import copy

import pytest
import torch

from slimvision.data import get_dataset
from slimvision.models import create_model
from slimvision.train import Trainer, TrainConfig, seed_everything

WIDTHS = (8, 16, 32)


@pytest.fixture(scope="module")
def digits():
    return {split: get_dataset("digits", split) for split in ("train", "val", "test")}


@pytest.fixture(scope="module")
def fine_tuned(digits):
    """Three small CNNs fine-tuned from one pretrained model with different seeds and learning rates."""
    torch.set_num_threads(1)
    seed_everything(0)
    base = create_model("small_cnn", num_classes=10, in_chans=1, widths=WIDTHS)
    Trainer(base, digits["train"], None, TrainConfig(epochs=3, lr=0.05, progress=False)).fit()
    models = []
    for seed, lr in ((1, 0.02), (2, 0.01), (3, 0.04)):
        model = copy.deepcopy(base)
        Trainer(model, digits["train"], None, TrainConfig(epochs=1, lr=lr, seed=seed, warmup_epochs=0, progress=False)).fit()
        models.append(model.eval())
    return models

import pytest
import torch

from slimvision.data import get_dataset
from slimvision.models import create_model
from slimvision.train import Trainer, TrainConfig, seed_everything

WIDTHS = (8, 16, 32)


def digits_model() -> torch.nn.Module:
    seed_everything(0)
    return create_model("small_cnn", num_classes=10, in_chans=1, widths=WIDTHS)


@pytest.fixture(scope="module")
def digits():
    return {split: get_dataset("digits", split) for split in ("train", "val", "test")}


@pytest.fixture(scope="module")
def trained_digits_model(digits):
    """A small CNN trained 4 epochs on digits (about 85% test accuracy)."""
    torch.set_num_threads(1)
    model = digits_model()
    Trainer(model, digits["train"], None, TrainConfig(epochs=4, lr=0.05, progress=False)).fit()
    return model.eval()

import textwrap

import pytest

MODEL_FILE = '''
import torch.nn as nn


def build(num_classes=10, in_chans=3, width=16):
    return nn.Sequential(
        nn.Conv2d(in_chans, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1, stride=2), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, num_classes),
    )
'''


def write_recipe(directory, distill_epochs=2, extra_stages="", finetune_epochs=0):
    """A tiny recipe on synthetic 16x16 data with a user model from models.py:build; returns its path."""
    (directory / "models.py").write_text(MODEL_FILE)
    recipe = directory / "recipe.yaml"
    recipe.write_text(textwrap.dedent(f"""\
        model: models.py:build
        model_kwargs: {{width: 16}}
        data: {{name: synthetic, image_size: 16}}
        threads: 1
        stages:
          - {{stage: train, epochs: 2, label: trained}}
          - {{stage: prune, method: l1, macs_ratio: 0.5, finetune_epochs: {finetune_epochs}, label: pruned}}
          - {{stage: distill, teacher: train, loss: kd, epochs: {distill_epochs}, label: distilled}}
        """) + extra_stages)
    return recipe


@pytest.fixture
def tiny_recipe(tmp_path):
    return write_recipe(tmp_path)

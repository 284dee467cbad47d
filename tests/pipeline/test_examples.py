"""The shipped example recipes are valid (the CIFAR-10 one only lacks its local data)."""

from pathlib import Path

import pytest

from slimvision.errors import ConfigError
from slimvision.pipeline.demo import demo_recipe
from slimvision.pipeline.recipe import load_recipe

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_demo_example_is_the_built_in_demo_recipe():
    assert load_recipe(EXAMPLES / "demo.yaml") == demo_recipe()


def test_the_user_model_example_builds_from_its_file():
    recipe = load_recipe(EXAMPLES / "user_model.yaml")
    assert recipe.model == f"{EXAMPLES / 'models.py'}:build"
    assert recipe.names() == ["train", "prune", "distill", "quantize", "export"]


def test_the_cifar10_example_asks_for_its_local_data(tmp_path):
    if (EXAMPLES.parent / "data" / "cifar-10-batches-py").is_dir():
        assert load_recipe(EXAMPLES / "cifar10.yaml").data.name == "cifar10"
        return
    with pytest.raises(ConfigError, match=r"data\.root: directory not found: .*cifar-10-batches-py"):
        load_recipe(EXAMPLES / "cifar10.yaml")

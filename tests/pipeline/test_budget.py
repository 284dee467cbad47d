"""Budget mode: --target builds prune -> distill -> INT8, or stops with the closest point when out of reach."""

import json

import pytest

from slimvision.errors import ConfigError
from slimvision.pipeline.budget import budget_recipe, parse_target
from tests.pipeline.conftest import MODEL_FILE


@pytest.mark.parametrize("text", ["size=3MB", "latency=2ms", "macs=-1", "latency=0ms@bs1"])
def test_bad_targets_are_refused_with_the_expected_forms(text):
    with pytest.raises(ConfigError, match="--target"):
        parse_target(text)


def test_a_macs_target_becomes_the_prune_ratio(tmp_path):
    (tmp_path / "models.py").write_text(MODEL_FILE)
    source = f"{tmp_path / 'models.py'}:build"
    recipe, choice = budget_recipe(source, "synthetic", parse_target("macs=200k"), image_size=16)
    assert [s.stage for s in recipe.stages] == ["prune", "distill", "quantize"]
    assert abs(recipe.stages[0].macs_ratio - 200e3 / choice["macs_before"]) < 1e-9
    assert recipe.stages[1].teacher == source and recipe.stages[2].backend == "auto"


def test_an_impossible_latency_says_how_close_it_got(tmp_path, cli):
    (tmp_path / "models.py").write_text(MODEL_FILE)
    code, _, err = cli("optimize", "--model", tmp_path / "models.py:build", "--data", "synthetic", "--image-size", "16",
                       "--target", "latency=0.000001ms@bs32", "--out", tmp_path / "run", "--threads", "1")
    assert code == 1 and "out of reach on this machine" in err and "still takes" in " ".join(err.split())
    assert not (tmp_path / "run").exists()


def test_a_latency_target_already_met_needs_no_pruning(tmp_path):
    (tmp_path / "models.py").write_text(MODEL_FILE)
    recipe, choice = budget_recipe(f"{tmp_path / 'models.py'}:build", "synthetic", parse_target("latency=1000ms@bs1"), image_size=16, threads=1)
    assert choice["macs_ratio"] == 1.0 and [s.stage for s in recipe.stages] == ["quantize"]  # already within budget: nothing pruned

"""Budget mode: --target builds prune -> distill -> INT8, or stops with the closest point when out of reach."""

import json
import re

import pytest

from slimvision.errors import ConfigError
from slimvision.pipeline.budget import budget_recipe, parse_target
from tests.pipeline.conftest import MODEL_FILE


@pytest.mark.parametrize("text", ["size=3", "size=3XB", "latency=2ms", "macs=-1", "latency=0ms@bs1", "size=0KB"])
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


def test_size_targets_read_decimal_and_binary_units():
    assert parse_target("size=200KB").value == 200_000 and parse_target("size=200KB").kind == "size"
    assert parse_target("size=1.5MiB").value == 1.5 * 1024 * 1024
    assert parse_target("size=512B").value == 512


def test_a_size_target_prunes_until_the_final_int8_file_fits(tmp_path, cli):
    (tmp_path / "models.py").write_text(MODEL_FILE)
    run = tmp_path / "run"
    code, out, err = cli("optimize", "--model", tmp_path / "models.py:build", "--data", "synthetic", "--image-size", "16",
                         "--target", "size=9KB", "--out", run, "--threads", "1")  # the unpruned model's INT8 file is ~11 KB
    assert code == 0, err
    text = " ".join(out.split())
    assert "budget size=9KB: params_ratio" in text and "budget met" in text
    final = json.loads((run / "summary.json").read_text())[-1]
    assert final["kind"] == "quantize" and final["size_bytes"] <= 9000  # measured on the artifact the run wrote
    assert final["size_bytes"] >= 0.9 * 9000  # pruned no further than needed
    assert json.loads((run / "prune" / "stage.json").read_text())["options"]["params_ratio"] < 1.0


def test_an_impossible_size_says_how_close_it_got(tmp_path, cli):
    (tmp_path / "models.py").write_text(MODEL_FILE)
    code, _, err = cli("optimize", "--model", tmp_path / "models.py:build", "--data", "synthetic", "--image-size", "16",
                       "--target", "size=1KB", "--out", tmp_path / "run")
    message = " ".join(err.split())
    assert code == 1 and "--target size=1,000 bytes is out of reach" in message
    assert re.search(r"pruned to 5% of its params the model's INT8 file still takes [0-9,]+ bytes \(unpruned [0-9,]+ bytes\), the closest point reached", message)
    assert not (tmp_path / "run").exists()

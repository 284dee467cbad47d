import json

import pytest

from slimvision.cli import run

SMALL = '{"widths": [8, 8, 16]}'


@pytest.fixture(scope="module")
def ingredients(tmp_path_factory):
    root = tmp_path_factory.mktemp("soup")
    assert run(["train", "--model", "small_cnn", "--model-kwargs", SMALL, "--data", "digits", "--epochs", "2", "--out", str(root / "base"), "--json"]) == 0
    dirs = []
    for seed, lr in ((1, "0.02"), (2, "0.01"), (3, "0.03")):
        out = root / f"ft{seed}"
        assert run(["train", "--model", "small_cnn", "--model-kwargs", SMALL, "--weights", str(root / "base" / "model.safetensors"),
                    "--data", "digits", "--epochs", "1", "--lr", lr, "--seed", str(seed), "--out", str(out), "--json"]) == 0
        dirs.append(out)
    return root, dirs


def test_merge_greedy_json_and_artifact(cli, ingredients):
    root, dirs = ingredients
    code, out, _ = cli("merge", "--models", *dirs, "--method", "greedy", "--data", "digits", "--out", root / "greedy", "--json")
    assert code == 0
    result = json.loads(out)
    assert len(result["accuracy_ingredients"]) == 3 and 0 < result["accuracy_merged"] <= 1
    assert result["val_accuracy_merged"] >= max(result["val_accuracy_ingredients"])
    meta = json.loads((root / "greedy" / "meta.json").read_text())
    assert meta["merge"]["method"] == "greedy" and meta["merge"]["ingredients"] == [str(d) for d in dirs]
    code, out, _ = cli("eval", root / "greedy", "--json")
    assert code == 0 and json.loads(out)["accuracy"] == pytest.approx(result["accuracy_merged"])


def test_merge_learned_via_repeated_option(cli, ingredients):
    root, dirs = ingredients
    code, out, _ = cli("merge", "--models", dirs[0], "--models", dirs[1], "--method", "learned", "--learned-epochs", "2", "--out", root / "learned", "--json")
    assert code == 0
    assert sum(json.loads(out)["coefficients"][0]) == pytest.approx(1.0)


def test_merge_refuses_different_architectures_in_one_line(cli, ingredients, tmp_path):
    root, dirs = ingredients
    assert run(["train", "--model", "small_cnn", "--data", "digits", "--epochs", "1", "--out", str(tmp_path / "wide"), "--json"]) == 0
    code, _, err = cli("merge", "--models", dirs[0], tmp_path / "wide", "--out", tmp_path / "x")
    assert code == 1
    assert "features.0.weight" in err and "different architectures" in err and "Traceback" not in err
    assert not (tmp_path / "x").exists()

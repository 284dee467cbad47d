import json

import pytest


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    from slimvision.cli import run

    out = tmp_path_factory.mktemp("robust") / "model"
    code = run(["robust", "train", "--model", "small_cnn", "--model-kwargs", '{"widths": [8, 8, 16]}', "--data", "digits",
                "--epochs", "1", "--steps", "2", "--out", str(out), "--json"])
    assert code == 0
    return out


def test_robust_train_writes_an_artifact_with_robust_metrics(saved_model):
    meta = json.loads((saved_model / "meta.json").read_text())
    assert meta["train"]["adversarial"]["method"] == "pgd"
    assert {"accuracy_clean", "accuracy_fgsm", "accuracy_pgd"} <= set(meta["metrics"])


def test_robust_eval_json_has_the_contract_keys(cli, saved_model):
    code, out, _ = cli("robust", "eval", "--model", saved_model, "--data", "digits", "--attacks", "fgsm,pgd", "--eps", "0.05",
                       "--steps", "3", "--corruptions", "jpeg", "--severities", "1,5", "--limit", "100", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["accuracy_pgd"] <= result["accuracy_fgsm"] <= result["accuracy_clean"]
    assert result["attack"]["eps"] == 0.05 and result["samples"] == 100
    assert set(result["corruptions"]["jpeg"]) == {"1", "5"}


def test_robust_eval_refuses_an_unknown_attack_in_one_line(cli, saved_model):
    code, _, err = cli("robust", "eval", "--model", saved_model, "--attacks", "fgsm,cw")
    assert code == 1 and "'cw'" in err and "Traceback" not in err

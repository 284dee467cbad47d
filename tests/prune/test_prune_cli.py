import json

import pytest


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from slimvision.cli import run

    out = tmp_path_factory.mktemp("run") / "sc"
    assert run(["train", "--model", "small_cnn", "--data", "digits", "--epochs", "4", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("method", ["l1", "chex", "precrop"])
def test_prune_cli_json_summary(cli, trained, tmp_path, method):
    code, out, err = cli(
        "prune", "--model", trained, "--method", method, "--macs-ratio", "0.5", "--finetune-epochs", "1",
        "--threads", "1", "--out", tmp_path / "p", "--json",
    )
    assert code == 0, err
    summary = json.loads(out)
    for key in ("params_before", "params_after", "macs_before", "macs_after", "accuracy_after", "latency_ms_before", "latency_ms_after"):
        assert key in summary
    assert summary["macs_after"] <= 0.55 * summary["macs_before"]
    assert summary["accuracy_after"] > 0.3  # chance is 0.1
    code, out, _ = cli("eval", tmp_path / "p", "--json")
    assert code == 0 and json.loads(out)["accuracy"] == pytest.approx(summary["accuracy_after"])
    meta = json.loads((tmp_path / "p" / "meta.json").read_text())
    assert meta["parent"] == str(trained) and meta["prune"]["method"] == method


def test_prune_cli_bad_budget_leaves_no_output(cli, trained, tmp_path):
    code, _, err = cli("prune", "--model", trained, "--macs-ratio", "1.5", "--out", tmp_path / "p")
    assert code == 1 and "must be in (0, 1]" in err and not (tmp_path / "p").exists()
    code, _, err = cli("prune", "--model", trained, "--method", "chex", "--macs-ratio", "0.5", "--out", tmp_path / "p")
    assert code == 1 and "--finetune-epochs" in err and not (tmp_path / "p").exists()


@pytest.mark.parametrize("method", ["l1", "bn", "chex"])
def test_prune_cli_channels_last_trains_every_phase_in_nhwc(cli, trained, tmp_path, monkeypatch, method):
    """bn's sparsity training, CHEX's exploration and the fine-tuning all get the layout; the artifact records it."""
    from slimvision.prune import run as prune_run

    layouts, original = [], prune_run.Trainer

    def recording_trainer(model, train_set, val_set, config, *args, **kwargs):
        layouts.append(config.channels_last)
        return original(model, train_set, val_set, config, *args, **kwargs)

    monkeypatch.setattr(prune_run, "Trainer", recording_trainer)
    extra = ["--sparsity-epochs", "1"] if method == "bn" else []
    code, out, err = cli(
        "prune", "--model", trained, "--method", method, "--macs-ratio", "0.5", "--finetune-epochs", "1", *extra,
        "--channels-last", "--threads", "1", "--out", tmp_path / "p", "--json",
    )
    assert code == 0, err
    assert layouts == [True] * (2 if method == "bn" else 1)
    assert json.loads(out)["accuracy_after"] > 0.3
    assert json.loads((tmp_path / "p" / "meta.json").read_text())["prune"]["finetune"]["channels_last"] is True

import json
import os
import subprocess
import sys

import pytest


def test_help_lists_verbs(cli):
    code, out, _ = cli("--help")
    assert code == 0 and "profile" in out and "train" in out


def test_profile_resnet56_json(cli):
    code, out, _ = cli("profile", "resnet56", "--input-size", "3", "32", "32", "--num-classes", "10", "--repeats", "2", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["params"] == 853_018
    assert abs(data["macs"] / 125.5e6 - 1) < 0.03
    assert set(data["latency_ms"]) == {"1", "32"} and data["threads"] >= 1 and data["input_size"] == [3, 32, 32]
    assert data["latency_ms"]["32"]["median"] > 0


def test_train_eval_roundtrip(cli, tmp_path):
    out = tmp_path / "run"
    code, stdout, err = cli("train", "--model", "small_cnn", "--data", "digits", "--epochs", "3", "--out", out, "--json")
    assert code == 0, err
    metrics = json.loads(stdout)
    assert metrics["accuracy"] > 0.5  # chance is 0.1
    code, stdout, _ = cli("eval", out, "--json")
    assert code == 0
    assert json.loads(stdout)["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-9)
    recorded = json.loads((out / "meta.json").read_text())["metrics"]["accuracy"]
    assert recorded == metrics["accuracy"]
    # a second train into the same directory without --resume is refused, and the run is untouched
    before = (out / "model.safetensors").read_bytes()
    code, _, err = cli("train", "--model", "small_cnn", "--data", "digits", "--epochs", "3", "--out", out)
    assert code == 1 and "--resume" in err
    assert (out / "model.safetensors").read_bytes() == before


def test_a_short_runs_ema_is_a_working_model_thanks_to_the_warmup(cli, tmp_path):
    """51 steps against an EMA memory of ~1,000: without the warm-up the saved EMA is still the initialization."""
    results = {}
    for flag in ("--ema-warmup", "--no-ema-warmup"):
        out = tmp_path / flag
        code, stdout, err = cli("train", "--model", "small_cnn", "--data", "digits", "--epochs", "3", "--ema-decay", "0.999", flag, "--out", out, "--json")
        assert code == 0, err
        results[flag] = json.loads(stdout)["accuracy"]
        assert json.loads((out / "run.json").read_text())["config"]["ema_warmup"] is (flag == "--ema-warmup")
    assert results["--ema-warmup"] > 0.5 > results["--no-ema-warmup"]


def test_resume_continues_a_finished_run_to_more_epochs_is_refused_when_args_differ(cli, tmp_path):
    out = tmp_path / "run"
    assert cli("train", "--model", "small_cnn", "--data", "digits", "--epochs", "1", "--channels-last", "--out", out)[0] == 0
    assert json.loads((out / "run.json").read_text())["config"]["channels_last"] is True
    code, _, err = cli("train", "--out", out, "--resume", "--lr", "0.5")
    assert code == 1 and "differs" in err
    code, _, err = cli("train", "--out", out, "--resume", "--no-channels-last")
    assert code == 1 and "channels_last=False differs" in err


@pytest.mark.parametrize(
    "args,needle",
    [
        (["eval", "/no/such/dir"], "not found"),
        (["profile", "resnet9000"], "neither a model directory nor a zoo model"),
        (["profile", "resnet20", "--input-size", "3", "0", "32"], "must be positive"),
        (["train", "--model", "resnet20", "--data", "digits", "--epochs", "-2", "--out", "{tmp}/neg"], "epochs must be >= 1"),
        (["train", "--model", "nosuch", "--data", "digits", "--out", "{tmp}/bad"], "unknown model"),
        (["train", "--model", "small_cnn", "--data", "cifar10", "--data-root", "{tmp}/none", "--out", "{tmp}/c"], "not found"),
    ],
)
def test_bad_inputs_give_one_line_and_no_output(cli, tmp_path, args, needle):
    args = [a.format(tmp=tmp_path) for a in args]
    code, out, err = cli(*args)
    assert code == 1
    assert needle in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not any(p.name in ("neg", "bad", "c") for p in tmp_path.iterdir())


def test_truncated_weights_via_cli(cli, tmp_path):
    out = tmp_path / "run"
    assert cli("train", "--model", "small_cnn", "--data", "digits", "--epochs", "1", "--out", out)[0] == 0
    weights = out / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:64])
    code, _, err = cli("eval", out)
    assert code == 1 and "model.safetensors" in err and "Traceback" not in err


def test_console_script_exit_code_on_error():
    result = subprocess.run([sys.executable, "-m", "slimvision", "eval", "/missing"], capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error:") and "Traceback" not in result.stderr


def test_ci_runs_the_readme_test_command_verbatim():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    readme_commands = [line for line in (root / "README.md").read_text().splitlines() if line.startswith("python3 -m venv")]
    assert len(readme_commands) == 2 and readme_commands[0].endswith("slimvision demo")
    assert readme_commands[1] in (root / ".ci" / "run").read_text()


def test_slimvision_warnings_are_one_line_on_stderr(cli, tmp_path):
    code, _, err = cli("distill", "--student", "small_cnn", "--loss", "ema", "--epochs", "1", "--data", "digits", "--out", tmp_path / "s")
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == ["warning: ema: the EMA teacher remembers about 1000 steps but this run has 17, so it stays close to the starting "
                     "network; pass --ema-warmup or a lower --ema-decay"]

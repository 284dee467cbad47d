"""Your own model through every verb: a `models.py:build` source from the CLI, end to end."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

SRC = str(Path(__file__).resolve().parents[2] / "src")

MODELS_PY = """
import torch.nn as nn


class Net(nn.Module):
    def __init__(self, num_classes, width):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        return self.head(self.features(x))


def build(num_classes=10, width=16):
    return Net(num_classes, width)
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A user's directory holding models.py, as the working directory."""
    home = tmp_path / "project"
    home.mkdir()
    (home / "models.py").write_text(MODELS_PY)
    monkeypatch.chdir(home)
    return home


def test_own_model_prune_eval_quantize_and_reload_elsewhere(cli, project, tmp_path):
    code, out, err = cli(
        "prune", "--model", "models.py:build", "--model-kwargs", '{"num_classes": 10}', "--data", "digits", "--image-size", "32",
        "--method", "l1", "--macs-ratio", "0.5", "--out", "P", "--json",
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["macs_after"] / summary["macs_before"] == pytest.approx(0.5, abs=0.05)
    arch = json.loads((project / "P" / "arch.json").read_text())
    assert arch["source"] == "file" and arch["model"] == f"{project / 'models.py'}:build" and arch["kwargs"] == {"num_classes": 10}
    assert arch["shapes"]  # the pruned widths

    code, out, err = cli("eval", "P", "--json")
    assert code == 0, err
    assert json.loads(out)["accuracy"] == pytest.approx(summary["accuracy_after"], abs=1e-9)

    code, out, err = cli("quantize", "--model", "P", "--backend", "onnxruntime", "--calib-samples", "64", "--threads", "1", "--out", "Q", "--json")
    assert code == 0, err
    assert json.loads(out)["backend"] == "onnxruntime" and (project / "Q" / "model.onnx").is_file()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = (
        "import sys, torch; from slimvision.io import load_artifact; m = load_artifact(sys.argv[1]).model;"
        "print(m.features[0].out_channels, tuple(m(torch.zeros(2, 1, 32, 32)).shape))"
    )
    run = subprocess.run([sys.executable, "-c", script, str(project / "P")], cwd=elsewhere, env={**os.environ, "PYTHONPATH": SRC},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [str(arch["shapes"]["features.0"]["attrs"]["out_channels"]), "(2,", "10)"]


def test_own_model_with_weights_in_profile_eval_export_and_distill(cli, project, tmp_path):
    sys.path.insert(0, str(project))
    try:
        from models import build  # the user's own module, as their training script would import it
    finally:
        sys.path.remove(str(project))
    torch.save(build(width=8).state_dict(), project / "w8.pt")

    code, out, err = cli("profile", "models.py:build", "--model-kwargs", '{"width": 8}', "--input-size", "1", "16", "16", "--batch-size", "1", "--repeats", "2", "--json")
    assert code == 0, err
    assert json.loads(out)["params"] == sum(p.numel() for p in build(width=8).parameters())

    code, out, err = cli("eval", "models.py:build", "--model-kwargs", '{"width": 8}', "--weights", "w8.pt", "--data", "digits", "--json")
    assert code == 0, err
    assert json.loads(out)["samples"] == 360

    code, _, err = cli("eval", "models.py:build", "--weights", "w8.pt", "--data", "digits")
    assert code == 1 and "w8.pt: features.0.weight has shape (8, 1, 3, 3), architecture expects (16, 1, 3, 3)" in " ".join(err.split())

    code, out, err = cli("export", "--model", "models.py:build", "--weights", "w8.pt", "--model-kwargs", '{"width": 8}', "--input-size", "1", "16", "16", "--out", "m.onnx")
    assert code == 0, err
    assert (project / "m.onnx").is_file()

    code, out, err = cli(
        "distill", "--student", "models.py:build", "--student-kwargs", '{"width": 4}', "--teacher", "models.py:build",
        "--teacher-kwargs", '{"width": 8}', "--teacher-weights", "w8.pt", "--data", "digits", "--loss", "kd", "--epochs", "1", "--out", "S", "--json",
    )
    assert code == 0, err
    student = json.loads((project / "S" / "arch.json").read_text())
    # the builder names num_classes, not in_chans: it gets (and arch.json records) the data's class count only
    assert student["source"] == "file" and student["kwargs"] == {"width": 4, "num_classes": 10}
    assert json.loads((project / "S" / "meta.json").read_text())["distill"]["teacher"] == "models.py:build"


def test_train_your_own_model_and_resume_from_another_directory(cli, project, tmp_path, monkeypatch):
    code, out, err = cli("train", "--model", "models.py:build", "--model-kwargs", '{"width": 8}', "--data", "digits", "--epochs", "1", "--out", "T", "--json")
    assert code == 0, err
    arch = json.loads((project / "T" / "arch.json").read_text())
    assert (arch["source"], arch["kwargs"]) == ("file", {"width": 8, "num_classes": 10})
    assert json.loads((project / "T" / "run.json").read_text())["model"] == f"{project / 'models.py'}:build"
    monkeypatch.chdir(tmp_path)
    code, out, err = cli("train", "--out", project / "T", "--resume", "--json")  # rebuilds models.py:build from run.json
    assert code == 0, err
    assert json.loads(out)["epochs"] == 1
    # --weights starts training from a user's weights file: with a vanishing LR the weights stay where they started
    start = project / "T" / "model.safetensors"
    code, _, err = cli("train", "--model", f"{project / 'models.py'}:build", "--model-kwargs", '{"width": 8}', "--weights", start,
                       "--data", "digits", "--epochs", "1", "--lr", "1e-12", "--out", tmp_path / "U")
    assert code == 0, err
    before, after = load_file(str(start)), load_file(str(tmp_path / "U" / "model.safetensors"))
    assert torch.allclose(before["features.0.weight"], after["features.0.weight"], atol=1e-6)
    torch.save({}, tmp_path / "empty.pt")
    code, _, err = cli("train", "--model", f"{project / 'models.py'}:build", "--weights", tmp_path / "empty.pt", "--data", "digits", "--out", tmp_path / "V")
    assert code == 1 and "weights do not match the architecture" in err and not (tmp_path / "V" / "model.safetensors").exists()


@pytest.mark.parametrize(
    "args,needle",
    [
        (["prune", "--model", "models.py:build", "--model-kwargs", "{width: 8}", "--data", "digits", "--macs-ratio", "0.5", "--out", "X"], "--model-kwargs is not valid JSON"),
        (["prune", "--model", "models.py:nope", "--data", "digits", "--macs-ratio", "0.5", "--out", "X"], "models.py has no attribute 'nope'"),
        (["quantize", "--model", "models.py:build", "--model-kwargs", '{"depth": 2}', "--data", "digits", "--out", "X"], "unexpected keyword argument 'depth'"),
        (["profile", "models.py"], "name the builder function in the file, e.g. models.py:build"),
        (["export", "--model", "models.py:build", "--out", "X"], "records no input size: pass --input-size"),
    ],
)
def test_source_errors_are_one_line_and_write_nothing(cli, project, args, needle):
    code, out, err = cli(*args)
    assert code == 1
    assert needle in " ".join(err.split()) and "Traceback" not in err
    assert not (project / "X").exists()


def test_library_source_without_the_library_says_how_to_install(cli, project, monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)
    code, _, err = cli("profile", "timm:resnet18", "--input-size", "3", "32", "32")
    assert code == 1 and "pip install 'slimvision[models]'" in " ".join(err.split())

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from safetensors.torch import save_file

from slimvision.errors import ArtifactError, ConfigError, SlimvisionError
from slimvision.io import ArchSpec, load_artifact, resolve_model, save_artifact
from slimvision.models import ModelSource

SRC = str(Path(__file__).resolve().parents[2] / "src")

BUILDER = """
import torch.nn as nn


def build(num_classes=10, width=8):
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes),
    )
"""


@pytest.fixture
def models_py(tmp_path):
    path = tmp_path / "proj" / "models.py"
    path.parent.mkdir()
    path.write_text(BUILDER)
    return path


def test_file_source_is_recorded_and_rebuilt_in_a_new_process_elsewhere(models_py, tmp_path, monkeypatch):
    monkeypatch.chdir(models_py.parent)
    model, arch, meta = resolve_model(ModelSource("models.py:build", {"num_classes": 3}), num_classes=10)
    assert meta == {} and model[-1].out_features == 3  # user kwargs win over the data's
    assert (arch.source, arch.model, arch.kwargs) == ("file", f"{models_py}:build", {"num_classes": 3})
    save_artifact(model.eval(), arch, tmp_path / "art", {"data": {"name": "synthetic", "num_classes": 10, "in_chans": 1, "image_size": 8, "mean": [0.5], "std": [0.25]}})
    recorded = json.loads((tmp_path / "art" / "arch.json").read_text())
    assert recorded["source"] == "file" and recorded["model"] == f"{models_py}:build"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = (
        "import torch; from slimvision.io import load_artifact; torch.manual_seed(0); x = torch.randn(2, 1, 8, 8);"
        f"print(load_artifact({str(tmp_path / 'art')!r}).model(x).sum().item())"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=elsewhere, env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    torch.manual_seed(0)
    assert float(out.stdout) == pytest.approx(model(torch.randn(2, 1, 8, 8)).sum().item(), abs=1e-5)


def test_missing_builder_file_gives_one_line_naming_it(models_py, tmp_path):
    model, arch, _ = resolve_model(f"{models_py}:build")
    save_artifact(model, arch, tmp_path / "art")
    models_py.unlink()
    with pytest.raises(SlimvisionError) as info:
        load_artifact(tmp_path / "art")
    assert f"model builder file not found: {models_py}" in str(info.value) and "\n" not in str(info.value)


def test_module_function_source_roundtrip(tmp_path, monkeypatch):
    (tmp_path / "userpkg_art").mkdir()
    (tmp_path / "userpkg_art" / "__init__.py").write_text(BUILDER)
    monkeypatch.syspath_prepend(str(tmp_path))
    model, arch, _ = resolve_model(ModelSource("userpkg_art:build", {"width": 4}))
    save_artifact(model, arch, tmp_path / "art")
    assert load_artifact(tmp_path / "art").arch == arch
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path)])
    monkeypatch.delitem(sys.modules, "userpkg_art")
    with pytest.raises(ConfigError, match="cannot import module 'userpkg_art' for the model builder"):
        load_artifact(tmp_path / "art")


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_user_weights_are_loaded_as_tensors(models_py, tmp_path, suffix):
    trained, _, _ = resolve_model(f"{models_py}:build")
    with torch.no_grad():
        trained[0].weight.fill_(0.5)
    path = tmp_path / f"w{suffix}"
    if suffix == ".pt":
        torch.save({"state_dict": trained.state_dict()}, path)
    else:
        save_file(trained.state_dict(), str(path))
    loaded, arch, _ = resolve_model(ModelSource(f"{models_py}:build", weights=str(path)))
    assert torch.equal(loaded[0].weight, trained[0].weight)
    assert arch.kwargs == {}  # the weights end up in model.safetensors when saved, not in arch.json


def test_pickled_objects_and_mismatched_weights_are_refused(models_py, tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"w": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ArtifactError, match="refused to load"):
        resolve_model(ModelSource(f"{models_py}:build", weights=str(tmp_path / "evil.pt")))
    other, _, _ = resolve_model(ModelSource(f"{models_py}:build", {"width": 4}))
    torch.save(other.state_dict(), tmp_path / "w4.pt")
    with pytest.raises(ArtifactError, match=r"0.weight has shape \(4, 1, 3, 3\), architecture expects \(8, 1, 3, 3\)"):
        resolve_model(ModelSource(f"{models_py}:build", weights=str(tmp_path / "w4.pt")))


def test_a_builder_gets_the_data_defaults_its_signature_names(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text(
        "import torch.nn as nn\n"
        "def named(num_classes=10, in_chans=1, width=4):\n"
        "    return nn.Sequential(nn.Conv2d(in_chans, width, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))\n"
        "def classes_only(num_classes=10):\n"
        "    return named(num_classes=num_classes)\n"
        "def anything(**kwargs):\n"
        "    return named(**kwargs)\n"
    )
    _, arch, _ = resolve_model(f"{path}:named", num_classes=4, in_chans=3)
    assert arch.kwargs == {"num_classes": 4, "in_chans": 3}
    model = load_artifact_roundtrip(arch, tmp_path / "named")
    assert model[0].in_channels == 3 and model[-1].out_features == 4
    assert resolve_model(f"{path}:classes_only", num_classes=4, in_chans=3)[1].kwargs == {"num_classes": 4}
    assert resolve_model(f"{path}:anything", num_classes=4, in_chans=3)[1].kwargs == {}
    assert resolve_model(ModelSource(f"{path}:named", {"in_chans": 1}), num_classes=4, in_chans=3)[1].kwargs == {"in_chans": 1, "num_classes": 4}


def load_artifact_roundtrip(arch: ArchSpec, directory: Path) -> nn.Module:
    """The module `arch` builds, saved and loaded back (the recorded kwargs rebuild it)."""
    save_artifact(arch.build().eval(), arch, directory, input_size=(arch.kwargs.get("in_chans", 1), 8, 8))
    return load_artifact(directory).model


def test_source_mistakes_give_hints(tmp_path, models_py):
    with pytest.raises(ConfigError, match="name the builder function in the file, e.g. .*models.py:build"):
        resolve_model(str(models_py))
    with pytest.raises(ConfigError, match="a weights file needs a builder"):
        resolve_model("weights.pt")
    model, arch, _ = resolve_model("small_cnn")
    save_artifact(model, arch, tmp_path / "art")
    with pytest.raises(ConfigError, match="saved model directory: --model-kwargs and --weights apply only to a builder"):
        resolve_model(ModelSource(str(tmp_path / "art"), {"num_classes": 3}))


def test_zoo_gets_data_defaults_and_old_arch_json_without_source_still_loads(tmp_path):
    model, arch, _ = resolve_model("small_cnn", num_classes=4, in_chans=1)
    assert arch.source == "zoo" and arch.kwargs == {"num_classes": 4, "in_chans": 1}
    save_artifact(model, arch, tmp_path / "art")
    spec = json.loads((tmp_path / "art" / "arch.json").read_text())
    del spec["source"]  # as written before sources were recorded
    (tmp_path / "art" / "arch.json").write_text(json.dumps(spec))
    assert load_artifact(tmp_path / "art").arch == arch


def test_timm_source_artifact_rebuilds_through_timm(tmp_path, monkeypatch):
    calls = []
    timm = types.ModuleType("timm")

    def create_model(name, pretrained=False, num_classes=1000, in_chans=3):
        calls.append(name)
        return nn.Sequential(nn.Conv2d(in_chans, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))

    timm.create_model = create_model
    monkeypatch.setitem(sys.modules, "timm", timm)
    model, arch, _ = resolve_model("timm:tiny_net", num_classes=6, in_chans=1)
    assert (arch.source, arch.model, arch.kwargs) == ("timm", "tiny_net", {"num_classes": 6, "in_chans": 1})
    save_artifact(model, arch, tmp_path / "art", input_size=(1, 8, 8))
    assert load_artifact(tmp_path / "art").model(torch.zeros(1, 1, 8, 8)).shape == (1, 6)
    assert calls.count("tiny_net") >= 3  # built, rebuilt by the save check, rebuilt by the load

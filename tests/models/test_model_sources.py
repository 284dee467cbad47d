import sys
import types

import pytest
import torch
import torch.nn as nn

from slimvision.errors import ConfigError
from slimvision.models.sources import build_model, parse_model_kwargs, parse_model_source

BUILDER_FILE = """
import torch.nn as nn
from blocks import head  # a neighbour module, imported as a script would


def build(num_classes=10, width=4):
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head(width, num_classes))


def not_a_model():
    return 42


def broken(num_classes=10):
    raise ValueError("width must be even")
"""


@pytest.fixture
def builder_file(tmp_path):
    (tmp_path / "blocks.py").write_text("import torch.nn as nn\n\ndef head(i, o):\n    return nn.Linear(i, o)\n")
    path = tmp_path / "my_models.py"
    path.write_text(BUILDER_FILE)
    return path


def test_sources_are_parsed_into_kind_and_target(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_model_source("resnet20") == ("zoo", "resnet20")
    assert parse_model_source("mypkg.models:build") == ("callable", "mypkg.models:build")
    assert parse_model_source("nets/my_models.py:build") == ("file", f"{tmp_path / 'nets' / 'my_models.py'}:build")
    assert parse_model_source("timm:resnet18") == ("timm", "resnet18")
    assert parse_model_source("torchvision:mobilenet_v3_small") == ("torchvision", "mobilenet_v3_small")
    for bad in ("timm:", "my-pkg.models:build", "mypkg:", ":build"):
        with pytest.raises(ConfigError):
            parse_model_source(bad)


def test_file_builder_gets_the_kwargs_and_may_import_its_neighbours(builder_file):
    model = build_model("file", f"{builder_file}:build", {"num_classes": 7, "width": 3})
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 7)
    assert model[0].out_channels == 3
    # the file is imported once: a second build uses the same classes
    again = build_model("file", f"{builder_file}:build", {})
    assert type(again[4]) is type(model[4])


def test_module_function_builder(tmp_path, monkeypatch):
    package = tmp_path / "userpkg_sources"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text("import torch.nn as nn\n\nclass Zoo:\n    @staticmethod\n    def tiny(num_classes=10):\n        return nn.Linear(4, num_classes)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    kind, target = parse_model_source("userpkg_sources.nets:Zoo.tiny")
    assert build_model(kind, target, {"num_classes": 3}).out_features == 3


@pytest.mark.parametrize(
    "target,kwargs,needle",
    [
        ("{file}:nope", {}, "has no attribute 'nope'"),
        ("{file}:not_a_model", {}, "returned a int, not a torch.nn.Module"),
        ("{file}:broken", {}, "model builder {file}:broken failed with kwargs {{}} (ValueError: width must be even)"),
        ("{file}:build", {"depth": 3}, "unexpected keyword argument 'depth'"),
        ("{missing}:build", {}, "model builder file not found: {missing}"),
    ],
)
def test_builder_errors_name_the_file_and_function(builder_file, target, kwargs, needle):
    names = {"file": builder_file, "missing": builder_file.parent / "gone.py"}
    with pytest.raises(ConfigError) as info:
        build_model("file", target.format(**names), kwargs)
    message = str(info.value)
    assert needle.format(**names) in message and "\n" not in message


def test_a_file_that_fails_to_import_is_named(tmp_path):
    path = tmp_path / "bad_models.py"
    path.write_text("import no_such_dependency_xyz\n")
    with pytest.raises(ConfigError, match=r"importing model builder file .*bad_models.py failed \(ModuleNotFoundError"):
        build_model("file", f"{path}:build", {})


def test_a_missing_module_is_named():
    with pytest.raises(ConfigError, match="cannot import module 'no_such_pkg_xyz.models'"):
        build_model("callable", "no_such_pkg_xyz.models:build", {})


def test_timm_not_installed_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # what an absent package looks like to the import system
    with pytest.raises(ConfigError) as info:
        build_model("timm", "resnet18", {})
    assert "timm:NAME sources need timm, which is not installed: pip install 'slimvision[models]'" in str(info.value)


def test_torchvision_that_fails_to_import_is_reported_in_one_line(tmp_path, monkeypatch):
    # torchvision built for another torch fails inside its own import, not with "no module"
    fake = tmp_path / "torchvision"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise RuntimeError('operator torchvision::nms does not exist')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "torchvision", raising=False)
    with pytest.raises(ConfigError) as info:
        build_model("torchvision", "resnet18", {})
    message = str(info.value)
    assert "torchvision is installed but fails to import (operator torchvision::nms does not exist)" in message
    assert "pip install" in message and "\n" not in message
    with pytest.raises(ConfigError, match=r"cannot import module 'torchvision.models' .*nms does not exist\); pip install"):
        build_model(*parse_model_source("torchvision.models:resnet18"), {})


def fake_timm(calls):
    module = types.ModuleType("timm")

    def create_model(name, pretrained=False, num_classes=1000, in_chans=3):
        calls.append({"name": name, "pretrained": pretrained, "num_classes": num_classes, "in_chans": in_chans})
        if name != "tiny_net":
            raise RuntimeError(f"Unknown model ({name})")
        return nn.Sequential(nn.Conv2d(in_chans, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, num_classes))

    module.create_model = create_model
    return module


def test_timm_source_calls_create_model_without_downloading(monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "timm", fake_timm(calls))
    model = build_model("timm", "tiny_net", {"num_classes": 5, "in_chans": 1})
    assert model(torch.zeros(1, 1, 8, 8)).shape == (1, 5)
    assert calls == [{"name": "tiny_net", "pretrained": False, "num_classes": 5, "in_chans": 1}]
    with pytest.raises(ConfigError, match="'pretrained' would download weights; pass a local file with --weights"):
        build_model("timm", "tiny_net", {"pretrained": True})
    with pytest.raises(ConfigError, match=r"model builder timm:resnet9000 failed .*Unknown model \(resnet9000\)"):
        build_model("timm", "resnet9000", {})


def test_torchvision_source_calls_get_model_without_weights(monkeypatch):
    calls = []
    torchvision = types.ModuleType("torchvision")
    torchvision.models = types.SimpleNamespace(get_model=lambda name, weights, **kw: calls.append((name, weights, kw)) or nn.Linear(3, kw["num_classes"]))
    monkeypatch.setitem(sys.modules, "torchvision", torchvision)
    assert build_model("torchvision", "resnet18", {"num_classes": 4}).out_features == 4
    assert calls == [("resnet18", None, {"num_classes": 4})]


def test_model_kwargs_must_be_a_json_object():
    assert parse_model_kwargs('{"num_classes": 10}') == {"num_classes": 10}
    assert parse_model_kwargs(None) == {}
    with pytest.raises(ConfigError, match="--model-kwargs is not valid JSON"):
        parse_model_kwargs("{num_classes: 10}")
    with pytest.raises(ConfigError, match="--model-kwargs must be a JSON object"):
        parse_model_kwargs("[10]")


@pytest.mark.parametrize("target", ["subprocess:run", "os:system", "torch.hub:load", "builtins:exec"])
def test_callables_that_could_run_commands_are_refused(tmp_path, target):
    marker = tmp_path / "ran"
    with pytest.raises(ConfigError, match="are refused; name a function in your own code"):
        build_model("callable", target, {"args": f"touch {marker}", "shell": True})
    assert not marker.exists()

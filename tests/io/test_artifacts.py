import json

import pytest
import torch

from slimvision.errors import ArtifactError
from slimvision.io import ArchSpec, load_artifact, load_state_file, save_artifact
from slimvision.io.atomic import atomic_directory


def test_artifact_roundtrip_without_pickle(tmp_path):
    arch = ArchSpec("resnet20", {"num_classes": 4, "in_chans": 1})
    model = arch.build().eval()
    save_artifact(model, arch, tmp_path / "m", {"metrics": {"accuracy": 0.5}})
    loaded = load_artifact(tmp_path / "m")
    x = torch.randn(2, 1, 16, 16)
    assert torch.equal(model(x), loaded.model(x))
    assert loaded.meta["metrics"]["accuracy"] == 0.5 and "torch" in loaded.meta["environment"]
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["arch.json", "meta.json", "model.safetensors"]


def test_changed_layer_shapes_are_recorded_and_rebuilt(tmp_path):
    arch = ArchSpec("small_cnn", {"num_classes": 3})
    model = arch.build()
    # narrow the first conv to 8 channels by hand, as a pruner would
    model.features[0] = torch.nn.Conv2d(1, 8, 3, 1, 1, bias=False)
    model.features[1] = torch.nn.BatchNorm2d(8)
    model.features[3] = torch.nn.Conv2d(8, 32, 3, 2, 1, bias=False)
    pruned = arch.with_shapes_of(model)
    assert set(pruned.shapes) == {"features.0", "features.1", "features.3"}
    save_artifact(model.eval(), pruned, tmp_path / "p")
    loaded = load_artifact(tmp_path / "p").model
    x = torch.randn(2, 1, 8, 8)
    assert torch.allclose(model(x), loaded(x))


def test_truncated_weights_give_clear_error(tmp_path):
    arch = ArchSpec("small_cnn")
    save_artifact(arch.build(), arch, tmp_path / "m")
    weights = tmp_path / "m" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ArtifactError, match="model.safetensors: corrupt or truncated"):
        load_artifact(tmp_path / "m")


def test_missing_dir_and_bad_arch(tmp_path):
    with pytest.raises(ArtifactError, match="not found"):
        load_artifact(tmp_path / "nope")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "arch.json").write_text(json.dumps({"model": "x"}))
    with pytest.raises(ArtifactError, match="not a slimvision arch spec"):
        load_artifact(tmp_path / "bad")


def test_weights_of_wrong_architecture_are_named(tmp_path):
    arch = ArchSpec("small_cnn")
    save_artifact(arch.build(), arch, tmp_path / "m")
    spec = json.loads((tmp_path / "m" / "arch.json").read_text())
    spec["kwargs"] = {"widths": [8, 32, 64]}
    (tmp_path / "m" / "arch.json").write_text(json.dumps(spec))
    with pytest.raises(ArtifactError, match="features.0.weight has shape"):
        load_artifact(tmp_path / "m")


def test_pt_files_load_with_weights_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"w": torch.ones(2), "evil": Evil()}, tmp_path / "x.pt")
    with pytest.raises(ArtifactError, match="refused to load"):
        load_state_file(tmp_path / "x.pt")
    torch.save({"w": torch.ones(2)}, tmp_path / "ok.pt")
    assert torch.equal(load_state_file(tmp_path / "ok.pt")["w"], torch.ones(2))


def test_atomic_directory_keeps_old_output_on_failure(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_directory(out) as tmp:
            (tmp / "new.txt").write_text("half")
            raise RuntimeError("boom")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temp dir left behind
    with atomic_directory(out) as tmp:
        (tmp / "new.txt").write_text("done")
    assert [p.name for p in out.iterdir()] == ["new.txt"]

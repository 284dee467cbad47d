"""Broken or hostile artifacts fail on load with one error naming the file and field; a seeded fuzz of them never crashes."""

import json
import random
import struct
import time

import pytest
import torch

from slimvision.errors import ArtifactError, SlimvisionError
from slimvision.io import ArchSpec, load_artifact, save_artifact

DATA = {"name": "digits", "num_classes": 10, "in_chans": 1, "image_size": 8, "mean": [0.5], "std": [0.25], "options": {}}


@pytest.fixture
def artifact(tmp_path):
    arch = ArchSpec("small_cnn", {"num_classes": 10, "in_chans": 1})
    torch.manual_seed(0)
    return save_artifact(arch.build(), arch, tmp_path / "m", {"data": DATA, "metrics": {"accuracy": 0.8}})


def _relabel(path, key, dtype):
    """Rewrite one tensor's dtype in a safetensors header (same byte size), as a hostile edit would."""
    raw = path.read_bytes()
    (length,) = struct.unpack_from("<Q", raw)
    header = json.loads(raw[8 : 8 + length])
    header[key]["dtype"] = dtype
    text = json.dumps(header, separators=(",", ":")).encode().ljust(length)
    assert len(text) == length
    path.write_bytes(raw[:8] + text + raw[8 + length :])


def test_float_weights_relabelled_as_int32_are_refused(artifact):
    from safetensors.torch import load_file

    key = next(k for k, v in load_file(artifact / "model.safetensors").items() if v.dtype == torch.float32 and v.ndim == 4)
    _relabel(artifact / "model.safetensors", key, "I32")
    with pytest.raises(ArtifactError, match=rf"model.safetensors: {key} is stored as int32, the architecture expects float32"):
        load_artifact(artifact)


def test_nan_weights_are_refused_unless_allowed(artifact, monkeypatch):
    from safetensors.torch import load_file, save_file

    state = load_file(artifact / "model.safetensors")
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = torch.full_like(state[key], float("nan"))
    save_file(state, str(artifact / "model.safetensors"))
    with pytest.raises(ArtifactError, match=rf"model.safetensors: {key} holds \d+ NaN/Inf values"):
        load_artifact(artifact)
    with pytest.warns(UserWarning, match="NaN/Inf"):
        load_artifact(artifact, allow_nonfinite=True)
    monkeypatch.setenv("SLIMVISION_ALLOW_NONFINITE", "1")
    with pytest.warns(UserWarning):
        assert load_artifact(artifact).model is not None


@pytest.mark.parametrize(
    "file,edit,field",
    [
        ("meta.json", lambda m: m["data"].update(image_size=0), "data.image_size"),
        ("meta.json", lambda m: m["data"].update(image_size="32"), "data.image_size"),
        ("meta.json", lambda m: m["data"].update(in_chans=-1), "data.in_chans"),
        ("meta.json", lambda m: m["data"].pop("num_classes"), "data.num_classes"),
        ("meta.json", lambda m: m["data"].update(std=[0]), "data.std"),
        ("meta.json", lambda m: m.update(data=[1, 2]), "data"),
        ("arch.json", lambda a: a.pop("model"), "model"),
        ("arch.json", lambda a: a.update(kwargs="num_classes=10"), "kwargs"),
        ("arch.json", lambda a: a["kwargs"].update(num_classes=0), "kwargs.num_classes"),
        ("arch.json", lambda a: a.update(shapes=[1]), "shapes"),
        ("arch.json", lambda a: a.update(version="1"), "version"),
    ],
)
def test_malformed_fields_name_the_file_and_field(artifact, file, edit, field):
    data = json.loads((artifact / file).read_text())
    edit(data)
    (artifact / file).write_text(json.dumps(data))
    with pytest.raises(ArtifactError) as error:
        load_artifact(artifact)
    assert file in str(error.value) and f"field {field!r}" in str(error.value), str(error.value)


def test_json_that_is_not_an_object_is_refused(artifact):
    (artifact / "arch.json").write_text("[1, 2, 3]")
    with pytest.raises(ArtifactError, match="arch.json: expected a JSON object"):
        load_artifact(artifact)


def _mutate_json(value, rng):
    """A structure-aware mutation of a JSON value: retype, drop or change one field somewhere inside."""
    replacements = [None, 0, -1, 10**12, "", "x", 1.5, float("nan"), [], {}, True, "../../etc", [1, "a"]]
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(sorted(value))
        action = rng.random()
        if action < 0.2:
            value.pop(key)
        elif action < 0.6:
            value[key] = rng.choice(replacements)
        else:
            value[key] = _mutate_json(value[key], rng)
        return value
    if isinstance(value, list) and value and rng.random() < 0.8:
        index = rng.randrange(len(value))
        value[index] = _mutate_json(value[index], rng)
        return value
    return rng.choice(replacements)


def test_fuzzed_artifacts_fail_with_a_slimvision_error_or_load_consistently(artifact):
    """300 seeded mutations of arch.json, meta.json and weight bytes: never a crash, never a silent wrong dtype."""
    rng = random.Random(16)
    originals = {name: (artifact / name).read_bytes() for name in ("arch.json", "meta.json", "model.safetensors")}
    outcomes = {"refused": 0, "loaded": 0}
    deadline = time.perf_counter() + 60
    for case in range(300):
        for name, data in originals.items():
            (artifact / name).write_bytes(data)
        target = ("arch.json", "meta.json", "model.safetensors")[case % 3]
        if target == "model.safetensors":
            raw = bytearray(originals[target])
            (length,) = struct.unpack_from("<Q", raw)
            for _ in range(rng.randint(1, 3)):  # bytes of the header (dtype, shapes, offsets) or the data
                raw[rng.randrange(8 + length if rng.random() < 0.7 else len(raw))] = rng.randrange(256)
            (artifact / target).write_bytes(bytes(raw))
        else:
            (artifact / target).write_text(json.dumps(_mutate_json(json.loads(originals[target]), rng)))
        try:
            loaded = load_artifact(artifact)
        except SlimvisionError as exc:
            assert "\n" not in str(exc)
            outcomes["refused"] += 1
        else:
            outcomes["loaded"] += 1
            state = loaded.model.state_dict()
            assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
            data = loaded.meta.get("data")
            assert data is None or (isinstance(data["image_size"], int) and data["image_size"] >= 1)
        assert time.perf_counter() < deadline, "fuzzing took too long (hang?)"
    assert outcomes["refused"] > 100 and outcomes["loaded"] > 10, outcomes

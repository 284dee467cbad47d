import json
import random
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from slimvision.ckpt import CompressConfig, compress_run, inspect, restore
from slimvision.errors import ArtifactError


@pytest.fixture(scope="module")
def adam_run(tmp_path_factory):
    from slimvision.cli import run

    out = tmp_path_factory.mktemp("ck") / "run"
    code = run(["train", "--model", "small_cnn", "--data", "digits", "--epochs", "5", "--optimizer", "adamw", "--out", str(out)])
    assert code == 0
    return out


def test_lossless_restores_every_checkpoint_bit_exactly(adam_run, tmp_path):
    result = compress_run(adam_run, tmp_path / "a.svckpt", CompressConfig(lossless=True))
    assert result.n_checkpoints == 5
    for index in range(5):
        restore(tmp_path / "a.svckpt", tmp_path / f"r{index}", index)
        name = f"epoch_{index + 1:04d}"
        for file in ("model.safetensors", "optimizer.safetensors"):
            original = load_file(adam_run / "checkpoints" / name / file)
            restored = load_file(tmp_path / f"r{index}" / "checkpoints" / name / file)
            assert original.keys() == restored.keys()
            assert all(torch.equal(original[k], restored[k]) for k in original)
        assert json.loads((tmp_path / f"r{index}" / "checkpoints" / name / "state.json").read_text())["epoch"] == index + 1


def test_lossy_compression_keeps_the_model_close_and_prunes_momentum(adam_run, tmp_path):
    result = compress_run(adam_run, tmp_path / "l.svckpt", CompressConfig())
    assert result.ratio > 5  # a tiny model: the fixed per-tensor overhead limits the ratio
    report = inspect(tmp_path / "l.svckpt")
    last = report["checkpoints"][-1]["tensors"]
    momentum = [t for t in last if t["key"].endswith("/exp_avg") and t["encoding"] == "values"]
    weights = [t for t in last if t["encoding"] == "weight"]
    assert momentum and weights
    assert all(t["kept"] < 1.0 for t in momentum)  # momenta are pruned
    restore(tmp_path / "l.svckpt", tmp_path / "r", None)
    original = load_file(adam_run / "checkpoints" / "epoch_0005" / "model.safetensors")
    restored = load_file(tmp_path / "r" / "checkpoints" / "epoch_0005" / "model.safetensors")
    for key, tensor in original.items():
        if tensor.is_floating_point() and tensor.ndim > 1:
            assert (tensor - restored[key]).norm() / tensor.norm() < 0.2, key


def test_restored_run_resumes_training(adam_run, tmp_path, cli):
    compress_run(adam_run, tmp_path / "l.svckpt", CompressConfig())
    restore(tmp_path / "l.svckpt", tmp_path / "r", 2)  # epoch 3 of 5
    code, out, err = cli("train", "--out", tmp_path / "r", "--resume", "--json")
    assert code == 0, err
    assert json.loads(out)["epochs"] == 5 and json.loads(out)["accuracy"] > 0.5


def test_generic_state_dicts_of_a_transformer(tmp_path):
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)
    source = tmp_path / "states"
    source.mkdir()
    for step in range(3):
        with torch.no_grad():
            for p in layer.parameters():
                p.add_(0.01 * torch.randn_like(p))
        save_file({k: v.contiguous() for k, v in layer.state_dict().items()}, str(source / f"step_{step}.safetensors"))
    torch.save(layer.state_dict(), source / "step_3.pt")
    result = compress_run(source, tmp_path / "t.svckpt", CompressConfig(lossless=True))
    assert result.n_checkpoints == 4
    restore(tmp_path / "t.svckpt", tmp_path / "out", 3)
    restored = load_file(tmp_path / "out" / "step_3.safetensors")
    assert all(torch.equal(v, restored[k]) for k, v in layer.state_dict().items())


def test_corrupt_truncated_and_wrong_version_archives_fail_cleanly(adam_run, tmp_path):
    archive = tmp_path / "a.svckpt"
    compress_run(adam_run, archive, CompressConfig())
    data = archive.read_bytes()
    (tmp_path / "trunc.svckpt").write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF
    (tmp_path / "flip.svckpt").write_bytes(bytes(flipped))
    version = bytearray(data)
    version[8] = 9
    (tmp_path / "ver.svckpt").write_bytes(bytes(version))
    for name, needle in (("trunc", "truncated|shorter"), ("flip", "checksum|corrupt"), ("ver", "version 9")):
        with pytest.raises(ArtifactError, match=needle):
            restore(tmp_path / f"{name}.svckpt", tmp_path / f"out-{name}")
        assert not (tmp_path / f"out-{name}").exists()


def test_fuzzed_archives_never_crash_or_hang(tmp_path):
    source = tmp_path / "s"
    source.mkdir()
    for step in range(2):
        save_file({"w": torch.randn(8, 8), "b": torch.randn(8), "n": torch.tensor(step)}, str(source / f"{step}.safetensors"))
    compress_run(source, tmp_path / "small.svckpt", CompressConfig())
    data = (tmp_path / "small.svckpt").read_bytes()
    rng = random.Random(0)
    deadline = time.perf_counter() + 60
    for case in range(300):
        mutated = bytearray(data)
        if case % 3 == 0:
            mutated = mutated[: rng.randrange(len(mutated))]
        else:
            for _ in range(rng.randint(1, 4)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        (tmp_path / "fuzz.svckpt").write_bytes(bytes(mutated))
        try:
            inspect(tmp_path / "fuzz.svckpt")
        except ArtifactError:
            pass
        assert time.perf_counter() < deadline, "fuzzing took too long (hang?)"


def test_ckpt_cli_contract(adam_run, tmp_path, cli):
    code, out, err = cli("ckpt", "compress", adam_run, "--out", tmp_path / "c.svckpt", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert {"raw_bytes", "compressed_bytes", "ratio", "zstd_bytes", "n_checkpoints"} <= set(data) and data["n_checkpoints"] == 5
    code, out, _ = cli("ckpt", "inspect", tmp_path / "c.svckpt", "--json")
    assert code == 0 and json.loads(out)["n_checkpoints"] == 5
    code, _, err = cli("ckpt", "restore", tmp_path / "c.svckpt", "--out", tmp_path / "r")
    assert code == 1 and "--index" in err
    code, _, _ = cli("ckpt", "restore", tmp_path / "c.svckpt", "--last", "--out", tmp_path / "r")
    assert code == 0 and (tmp_path / "r" / "run.json").is_file()
    code, _, err = cli("ckpt", "restore", tmp_path / "c.svckpt", "--index", "99", "--out", tmp_path / "r99")
    assert code == 1 and "no checkpoint 99" in err and not (tmp_path / "r99").exists()


def test_joint_shrinking_keeps_momentum_only_where_the_weight_residual_is_kept():
    import numpy as np

    from slimvision.ckpt.codec import unpack_mask
    from slimvision.ckpt.excp import ExcpCodec

    torch.manual_seed(0)
    weight = torch.randint(0, 15, (16, 16)).float()  # 15 distinct values: the first checkpoint quantizes exactly
    codec = ExcpCodec(CompressConfig(alpha=1.0, beta=0.0))
    state = lambda w, m, v: {  # noqa: E731
        "model.safetensors": {"w": w},
        "optimizer.safetensors": {"state/w/exp_avg": m, "state/w/exp_avg_sq": v, "state/w/step": torch.tensor(1.0)},
    }
    codec.encode(state(weight, torch.randn(16, 16), torch.rand(16, 16)))
    residual = torch.zeros(16, 16)
    residual[:4] = 1.0  # only the first four rows move
    entries, blobs = codec.encode(state(weight + residual, torch.randn(16, 16), torch.rand(16, 16)))
    masks = {e["key"]: unpack_mask(blobs[e["blob_index"]], 256) for e in entries if e["encoding"] in ("weight", "values", "log-values")}
    assert masks["w"].reshape(16, 16)[:4].all() and not masks["w"].reshape(16, 16)[4:].any()
    assert not (masks["state/w/exp_avg"] & ~masks["w"]).any()  # beta = 0: momentum kept exactly where the weight is
    assert np.array_equal(masks["state/w/exp_avg_sq"], masks["state/w/exp_avg"])

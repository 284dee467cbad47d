"""The official ExCP rule pinned on tiny fixed tensors, the adaptive rule kept by name, k-means convergence, CLI --rule."""

import json

import numpy as np
import pytest
import torch

from slimvision.ckpt import CompressConfig
from slimvision.ckpt.codec import kmeans_1d, quantization_error, unpack_mask
from slimvision.ckpt.excp import ExcpCodec, decode_entry, lower_median, official_weight_mask
from slimvision.errors import ConfigError


def test_official_defaults_and_rule_names():
    official = CompressConfig()
    assert (official.rule, official.alpha, official.beta, official.bits, official.base_bits) == ("official", 5e-5, 2.0, 4, None)
    with pytest.raises(ConfigError, match="rule"):
        CompressConfig(rule="adaptive")
    with pytest.raises(ConfigError, match="base-bits"):
        CompressConfig(base_bits=9)


def test_lower_median_matches_torch_median():
    values = np.array([4.0, 1.0, 3.0, 2.0])
    assert lower_median(values) == 2.0 == float(torch.median(torch.from_numpy(values)))
    assert lower_median(np.array([5.0, 1.0, 3.0])) == 3.0


def test_official_weight_threshold_is_f_times_the_lower_median_with_one_scalar_f_per_tensor():
    residual = np.array([0.1, -0.5, 0.02, 0.3, -0.05, 0.2], dtype=np.float32)  # |r| sorted: .02 .05 .1 .2 .3 .5 -> lower median .1
    v = np.full(6, 1e-8, dtype=np.float32)  # sqrt(mean v) = 1e-4 -> f = min(2.5, 5e-5 / 1e-4) = 0.5 -> threshold 0.05
    keep, scale = official_weight_mask(residual, v, 5e-5)
    assert scale == pytest.approx(0.5)
    assert keep.tolist() == [True, True, False, True, False, True]  # 0.05 is not > 0.05
    keep, scale = official_weight_mask(residual, np.full(6, 1e-14, dtype=np.float32), 5e-5)  # f capped at 2.5 -> threshold 0.25
    assert scale == 2.5 and keep.tolist() == [False, True, False, True, False, False]
    keep, scale = official_weight_mask(residual, None, 5e-5)  # no second moment: the cap
    assert scale == 2.5
    # one scalar per tensor: a large v on one element does not move that element's threshold alone
    v_spread = np.array([1e-8, 1e-8, 1e-8, 1e-8, 1e-8, 5e-8], dtype=np.float32)
    keep_spread, scale_spread = official_weight_mask(residual, v_spread, 5e-5)
    assert scale_spread == pytest.approx(5e-5 / np.sqrt(np.mean(v_spread, dtype=np.float64)))


def state(w, b, m, v, mb, vb):
    return {
        "model.safetensors": {"w": w, "b": b},
        "optimizer.safetensors": {"state/w/exp_avg": m, "state/w/exp_avg_sq": v, "state/w/step": torch.tensor(2.0),
                                  "state/b/exp_avg": mb, "state/b/exp_avg_sq": vb, "state/b/step": torch.tensor(2.0)},
    }


def test_official_codec_chain_first_reference_lossless_then_joint_shrinking_and_linear_v():
    g = torch.Generator().manual_seed(0)
    w0, b0 = torch.randn(8, 8, generator=g), torch.randn(8, generator=g)
    moments = lambda: (torch.randn(8, 8, generator=g), torch.rand(8, 8, generator=g) * 1e-6, torch.randn(8, generator=g), torch.rand(8, generator=g) * 1e-6)  # noqa: E731
    codec = ExcpCodec(CompressConfig(rule="official"))
    first_entries, first_blobs = codec.encode(state(w0, b0, *moments()))
    by_key = {e["key"]: e for e in first_entries}
    assert by_key["w"]["encoding"] == "raw" and by_key["b"]["encoding"] == "raw"  # the full-precision reference
    w1, b1 = w0 + 0.01 * torch.randn(8, 8, generator=g), b0 + 0.01 * torch.randn(8, generator=g)
    m, v, mb, vb = moments()
    entries, blobs = codec.encode(state(w1, b1, m, v, mb, vb))
    by_key = {e["key"]: e for e in entries}
    residual = (w1 - w0).numpy().reshape(-1)
    f = min(2.5, 5e-5 / np.sqrt(np.mean(v.numpy(), dtype=np.float64)))
    expected_w = np.abs(residual) > f * np.sort(np.abs(residual))[(residual.size - 1) // 2]
    mask = lambda key: unpack_mask(blobs[by_key[key]["blob_index"]], int(np.prod(by_key[key]["shape"])))  # noqa: E731
    assert by_key["w"]["encoding"] == "weight" and np.array_equal(mask("w"), expected_w)
    assert by_key["w"]["threshold_scale"] == pytest.approx(f)
    m_abs = np.abs(m.numpy().reshape(-1))
    expected_m = (m_abs > 2.0 * m_abs.mean()) & expected_w
    assert np.array_equal(mask("state/w/exp_avg"), expected_m)
    assert np.array_equal(mask("state/w/exp_avg_sq"), expected_m)
    assert by_key["state/w/exp_avg_sq"]["encoding"] == "values"  # linear k-means, as the official code
    assert by_key["b"]["encoding"] == "weight"  # 1-D parameters follow the rule too
    # decoding (the archive reader) rebuilds the chain: kept residuals land on the reference, the rest stay put
    previous: dict = {}
    for entry in first_entries:
        decode_entry(entry, first_blobs, previous, "test")
    restored = {e["key"]: decode_entry(e, blobs, previous, "test") for e in entries}
    w_restored = restored["w"].numpy().reshape(-1)
    assert np.array_equal(w_restored[~expected_w], w0.numpy().reshape(-1)[~expected_w])
    assert np.abs(w_restored[expected_w] - w1.numpy().reshape(-1)[expected_w]).max() < 0.01
    v_restored = restored["state/w/exp_avg_sq"].numpy().reshape(-1)
    assert (v_restored[~expected_m] == 0).all() and (v_restored[expected_m] > 0).all()


def test_base_bits_quantizes_the_first_checkpoint_instead_of_storing_it_exactly():
    g = torch.Generator().manual_seed(1)
    w0, b0 = torch.randn(8, 8, generator=g), torch.randn(8, generator=g)
    codec = ExcpCodec(CompressConfig(base_bits=8))
    entries, _ = codec.encode(state(w0, b0, torch.randn(8, 8), torch.rand(8, 8), torch.randn(8), torch.rand(8)))
    by_key = {e["key"]: e for e in entries}
    assert by_key["w"]["encoding"] == "weight" and by_key["w"]["bits"] == 8 and by_key["w"]["kept"] == 1.0
    assert by_key["b"]["encoding"] == "weight" and by_key["b"]["bits"] == 8


def lloyd_step(values, codebook):
    index = np.searchsorted((codebook[:-1] + codebook[1:]) / 2, values)
    return np.array([values[index == k].mean() if (index == k).any() else codebook[k] for k in range(codebook.size)])


@pytest.mark.parametrize("distribution", ["laplace", "student_t"])
def test_kmeans_runs_to_a_fixed_point_as_good_as_a_converged_reference(distribution):
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(0)
    values = rng.laplace(size=20000) if distribution == "laplace" else rng.standard_t(3, 20000)
    codebook, index = kmeans_1d(values, 15)
    ours = quantization_error(values, codebook.astype(np.float64), index)
    reference = KMeans(15, n_init=10, random_state=0).fit(values.reshape(-1, 1))
    reference_error = float(np.sqrt(reference.inertia_) / np.linalg.norm(values))
    assert ours <= 1.02 * reference_error  # stopping after 15 Lloyd steps left ~20% more error here
    assert np.allclose(lloyd_step(values, codebook.astype(np.float64)), codebook, rtol=1e-3, atol=1e-4)


@pytest.fixture(scope="module")
def adam_run(tmp_path_factory):
    from slimvision.cli import run

    out = tmp_path_factory.mktemp("official") / "run"
    assert run(["train", "--model", "small_cnn", "--data", "digits", "--epochs", "3", "--optimizer", "adamw", "--out", str(out)]) == 0
    return out


def test_cli_official_rule_compresses_restores_and_resumes(adam_run, tmp_path, cli):
    archive = tmp_path / "o.svckpt"
    code, out, err = cli("ckpt", "compress", adam_run, "--out", archive, "--rule", "official", "--json")
    assert code == 0, err
    assert json.loads(out)["ratio"] > 1
    code, out, err = cli("ckpt", "inspect", archive, "--json")
    assert code == 0 and json.loads(out)["config"]["rule"] == "official" and json.loads(out)["config"]["alpha"] == 5e-5
    code, _, err = cli("ckpt", "restore", archive, "--index", "1", "--out", tmp_path / "r")
    assert code == 0, err
    code, out, err = cli("train", "--out", tmp_path / "r", "--resume", "--json")
    assert code == 0, err
    assert json.loads(out)["epochs"] == 3 and json.loads(out)["accuracy"] > 0.5
    code, _, err = cli("ckpt", "compress", adam_run, "--out", tmp_path / "x.svckpt", "--rule", "nope")
    assert code == 1 and "nope" in err and not (tmp_path / "x.svckpt").exists()

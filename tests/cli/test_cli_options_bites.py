"""The options users reach for first, each shown to change what the command does: prune --global / --ignore-layers /
--saliency synflow, quantize --calib-method."""

from __future__ import annotations

import json

import onnx
import pytest
from onnx import numpy_helper

from slimvision.io import load_artifact

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# conv "0": every output channel has the same L1 norm; conv "2": four strong channels (|w| = 8, 7, 6, 5) and four near zero
MODELS_PY = """
import torch
import torch.nn as nn


def build(num_classes=10):
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        net[0].weight.copy_(torch.randn(net[0].weight.shape, generator=generator).sign())
        strength = torch.tensor([8.0, 7.0, 6.0, 5.0, 0.01, 0.01, 0.01, 0.01])
        net[2].weight.copy_(torch.randn(net[2].weight.shape, generator=generator).sign() * strength[:, None, None, None])
    return net
"""


@pytest.fixture
def builder(tmp_path):
    path = tmp_path / "models.py"
    path.write_text(MODELS_PY)
    return f"{path}:build"


def _prune(cli, builder, out, *options):
    code, stdout, err = cli("prune", "--model", builder, "--data", "digits", "--method", "l1", "--channel-ratio", "0.5",
                            "--threads", "1", "--out", out, "--json", *options)
    assert code == 0, err
    model = load_artifact(out).model
    return model[0].out_channels, model[2]


def test_prune_uniform_halves_every_layer_and_global_cuts_only_the_weak_channels(cli, builder, tmp_path):
    first, second = _prune(cli, builder, tmp_path / "uniform", "--uniform")
    assert (first, second.out_channels) == (4, 4)
    # ranked across layers: the near-zero channels of conv 2 go first, conv 0 (all channels equally strong) keeps its 8
    first, second = _prune(cli, builder, tmp_path / "global", "--global")
    assert first == 8 and second.out_channels < 8
    assert (second.weight.abs().flatten(1).mean(1) >= 5.0).all()  # only strong channels survive
    assert json.loads((tmp_path / "global" / "meta.json").read_text())["prune"]["config"]["global_pruning"] is True


def test_prune_ignore_layers_keeps_that_layer_whole(cli, builder, tmp_path):
    first, second = _prune(cli, builder, tmp_path / "ignored", "--uniform", "--ignore-layers", "0")
    assert (first, second.out_channels) == (8, 4)


def _precrop(cli, builder, out, saliency, seed):
    code, _, err = cli("prune", "--model", builder, "--data", "digits", "--method", "precrop", "--saliency", saliency,
                       "--params-ratio", "0.3", "--seed", seed, "--threads", "1", "--out", out, "--json")
    assert code == 0, err
    assert json.loads((out / "meta.json").read_text())["prune"]["config"]["saliency"] == saliency
    model = load_artifact(out).model
    return model[0].out_channels, model[2].out_channels


def test_precrop_with_synflow_saliency_is_data_free_and_differs_from_snip(cli, builder, tmp_path):
    """SynFlow scores an all-ones input through |weights|: its pruned widths do not change with the seed's data batch; SNIP's use the data."""
    synflow = [_precrop(cli, builder, tmp_path / f"synflow{seed}", "synflow", seed) for seed in ("0", "1")]
    assert synflow[0] == synflow[1] and synflow[0] != (8, 8)
    assert _precrop(cli, builder, tmp_path / "snip", "snip", "0") != synflow[0]


def _input_scale(path) -> float:
    inits = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    return float(inits["input_scale"])


def test_quantize_calib_method_sets_the_activation_ranges(cli, builder, tmp_path):
    from slimvision.data import get_dataset

    scales = {}
    for method in ("minmax", "percentile"):
        out = tmp_path / method
        code, _, err = cli("quantize", "--model", builder, "--data", "digits", "--calib-samples", "64", "--calib-method", method,
                           "--threads", "1", "--out", out, "--json")
        assert code == 0, err
        meta = json.loads((out / "meta.json").read_text())
        assert meta["config"]["calib_method"] == method and meta["conditions"]["calibration"] == f"{method} on the first 64 calibration images"
        scales[method] = _input_scale(out / "model.onnx")
    images = get_dataset("digits", "train").images[:64]
    low, high = min(float(images.min()), 0.0), max(float(images.max()), 0.0)
    assert scales["minmax"] == pytest.approx((high - low) / 255.0, rel=1e-6)  # the exact range of the first 64 training images
    assert scales["percentile"] != pytest.approx(scales["minmax"], rel=1e-6)

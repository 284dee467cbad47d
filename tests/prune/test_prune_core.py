import copy
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch_pruning as tp

from slimvision.errors import ConfigError
from slimvision.io import save_artifact
from slimvision.io.artifact import ArchSpec
from slimvision.models import create_model
from slimvision.models.cifar_resnet import ChannelMapShortcut
from slimvision.prune import PruneConfig, prune
from slimvision.prune.shortcut import CUSTOM_PRUNERS, ChannelMapShortcutPruner


def _eval_model(name, **kw):
    torch.manual_seed(0)
    model = create_model(name, **kw).eval()
    # give BN non-trivial statistics so removed channels would show up in the outputs
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    return model


def test_shortcut_pruner_edits_the_channel_map_by_hand():
    shortcut = ChannelMapShortcut(4, 8, stride=1)  # map: [-1,-1,0,1,2,3,-1,-1]
    pruner = ChannelMapShortcutPruner()
    pruner.prune_in_channels(shortcut, [1])
    assert shortcut.channel_map.tolist() == [-1, -1, 0, -1, 1, 2, -1, -1] and shortcut.in_channels == 3
    pruner.prune_out_channels(shortcut, [0, 3, 7])
    assert shortcut.channel_map.tolist() == [-1, 0, 1, 2, -1]
    x = torch.randn(1, 3, 2, 2)
    y = shortcut(x)
    assert torch.equal(y[:, 1:4], x) and y[:, 0].abs().sum() == 0 and y[:, 4].abs().sum() == 0


def test_option_a_residual_pruning_equals_zeroing_those_channels():
    model = _eval_model("resnet20")
    example = torch.randn(4, 3, 32, 32)
    pruned = copy.deepcopy(model)
    graph = tp.DependencyGraph().build_dependency(pruned, example, customized_pruners=CUSTOM_PRUNERS)
    graph.get_pruning_group(pruned.conv1, tp.prune_conv_out_channels, idxs=[3, 7]).prune()
    masked = copy.deepcopy(model)
    with torch.no_grad():
        for bn in [masked.bn1] + [block.bn2 for block in masked.layer1]:
            bn.weight[[3, 7]] = 0
            bn.bias[[3, 7]] = 0
    assert pruned.layer2[0].shortcut.in_channels == 14
    assert torch.allclose(masked(example), pruned(example), atol=1e-5)


@pytest.mark.parametrize(
    "name,kw,size",
    [
        ("resnet20", {}, 32),
        ("resnet20", {"shortcut": "B"}, 32),
        ("mobilenetv2_cifar", {}, 32),
        ("starnet_s1", {}, 64),
        ("small_cnn", {"in_chans": 3}, 16),
    ],
)
def test_every_zoo_family_prunes_to_consistent_shapes_and_reloads(name, kw, size, tmp_path):
    model = _eval_model(name, **kw)
    example = torch.randn(2, 3, size, size)
    result = prune(model, example[:1], PruneConfig(method="l1", channel_ratio=0.6))
    assert result.params_after < result.params_before and result.macs_after < result.macs_before
    out = result.model(example)
    assert out.shape == (2, 10)
    arch = ArchSpec(name, {"num_classes": 10, "in_chans": 3, **kw}).with_shapes_of(result.model)
    save_artifact(result.model, arch, tmp_path / "m")
    torch.save(example, tmp_path / "x.pt")
    # a fresh process rebuilds the pruned model from arch.json alone
    script = (
        "import torch, sys; from slimvision.io import load_artifact;"
        f"m = load_artifact(r'{tmp_path / 'm'}').model; x = torch.load(r'{tmp_path / 'x.pt'}');"
        f"torch.save(m(x), r'{tmp_path / 'y.pt'}')"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    assert (torch.load(tmp_path / "y.pt") - out.detach()).abs().max() < 1e-5


def test_default_option_a_resnet56_meets_a_macs_budget():
    model = create_model("resnet56").eval()
    assert sum(p.numel() for p in model.parameters()) == 853_018
    result = prune(model, torch.zeros(1, 3, 32, 32), PruneConfig(method="l1", macs_ratio=0.4))
    assert abs(result.macs_kept / 0.4 - 1) < 0.05
    assert result.model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("method", ["random", "l2", "bn", "taylor"])
def test_criteria_prune_within_budget(method):
    model = _eval_model("small_cnn", in_chans=1)
    batches = [(torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,)))]
    result = prune(model, torch.zeros(1, 1, 8, 8), PruneConfig(method=method, params_ratio=0.5), batches)
    assert abs(result.params_kept - 0.5) < 0.08


def test_l1_removes_the_channels_with_smallest_weights():
    model = _eval_model("small_cnn", in_chans=1)
    with torch.no_grad():
        model.features[0].weight[[2, 5]] *= 1e-3  # two obviously unimportant first-layer filters
        model.features[1].weight[[2, 5]] *= 1e-3
    result = prune(model, torch.zeros(1, 1, 8, 8), PruneConfig(method="l1", channel_ratio=14 / 16))
    kept = result.model.features[0].weight
    assert kept.shape[0] == 14
    originals = torch.cat([model.features[0].weight[:2], model.features[0].weight[3:5], model.features[0].weight[6:]])
    assert torch.equal(kept, originals)


def test_iterative_pruning_runs_between_steps_and_reaches_budget():
    model = _eval_model("resnet20")
    calls = []
    result = prune(model, torch.zeros(1, 3, 32, 32), PruneConfig(method="l1", macs_ratio=0.5, iterative_steps=3), between_steps=lambda m, s: calls.append(s))
    assert calls == [1, 2]
    assert abs(result.macs_kept / 0.5 - 1) < 0.05


def test_a_module_holding_a_bare_parameter_is_pruned_with_its_channels():
    class Mixer(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(8, 1, 1))

        def forward(self, x):
            return x * self.scale

    model = nn.Sequential(nn.Conv2d(3, 8, 3), Mixer(), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
    result = prune(model, torch.zeros(1, 3, 16, 16), PruneConfig(channel_ratio=0.5))
    assert result.model[1].scale.shape == (result.model[0].out_channels, 1, 1) and result.model[0].out_channels == 4
    assert result.model(torch.randn(2, 3, 16, 16)).shape == (2, 4)
    with pytest.raises(ConfigError, match="unknown layers"):
        prune(model, torch.zeros(1, 3, 16, 16), PruneConfig(channel_ratio=0.5, ignore_layers=("nope",)))


@pytest.mark.parametrize("kw,needle", [({}, "exactly one budget"), ({"macs_ratio": 0.5, "params_ratio": 0.5}, "exactly one"), ({"macs_ratio": 0.0}, "in \\(0, 1\\]"), ({"macs_ratio": 0.5, "method": "magic"}, "unknown pruning method")])
def test_bad_configs_are_one_clear_error(kw, needle):
    with pytest.raises(ConfigError, match=needle):
        PruneConfig(**kw)


def test_impossible_budget_is_refused():
    model = _eval_model("small_cnn", in_chans=1)
    with pytest.raises(ConfigError, match="not reachable"):
        prune(model, torch.zeros(1, 1, 8, 8), PruneConfig(method="l1", macs_ratio=0.001))

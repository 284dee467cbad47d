import pytest
import torch

from slimvision.errors import ConfigError
from slimvision.measure import count_macs, count_params
from slimvision.models import create_model, list_models, register_model


@pytest.mark.parametrize(
    "name,shortcut,params,macs_m",
    [
        ("resnet20", "A", 269_722, 40.55),
        ("resnet56", "A", 853_018, 125.5),
        ("resnet20", "B", 272_474, None),
        ("resnet56", "B", 855_770, None),
    ],
)
def test_cifar_resnets_match_published_sizes(name, shortcut, params, macs_m):
    model = create_model(name, shortcut=shortcut)
    assert count_params(model) == params
    if macs_m:
        assert count_macs(model, (3, 32, 32)) / 1e6 == pytest.approx(macs_m, rel=0.03)


@pytest.mark.parametrize(
    "name,params_m,macs_m",
    [("starnet_s1", 2.9, 425), ("starnet_s2", 3.7, 547), ("starnet_s3", 5.8, 757), ("starnet_s4", 7.5, 1075)],
)
def test_starnet_matches_published_sizes_within_3_percent(name, params_m, macs_m):
    model = create_model(name, num_classes=1000)
    assert count_params(model) / 1e6 == pytest.approx(params_m, rel=0.03)
    assert count_macs(model, (3, 224, 224)) / 1e6 == pytest.approx(macs_m, rel=0.03)


def test_mobilenetv2_imagenet_size():
    # torchvision's reference mobilenet_v2 has 3,504,872 parameters and ~300M MACs.
    model = create_model("mobilenetv2", num_classes=1000)
    assert count_params(model) == 3_504_872
    assert count_macs(model, (3, 224, 224)) / 1e6 == pytest.approx(300.8, rel=0.01)


def test_option_a_shortcut_zero_pads_both_sides():
    model = create_model("resnet20")
    shortcut = model.layer2[0].shortcut
    x = torch.randn(2, 16, 8, 8)
    y = shortcut(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, 8:24], x[:, :, ::2, ::2])
    assert y[:, :8].abs().sum() == 0 and y[:, 24:].abs().sum() == 0


@pytest.mark.parametrize("name", list_models())
def test_every_zoo_model_runs_forward(name):
    model = create_model(name, num_classes=7, in_chans=1).eval()
    size = 32 if not name.startswith("starnet") else 64
    assert model(torch.randn(2, 1, size, size)).shape == (2, 7)


def test_registry_rejects_duplicate_model_name():
    with pytest.raises(ConfigError, match="already registered"):

        @register_model
        def resnet20(num_classes=10, in_chans=3):  # noqa: F811
            return None


def test_unknown_model_and_bad_kwargs():
    with pytest.raises(ConfigError, match="unknown model"):
        create_model("resnet9000")
    with pytest.raises(ConfigError, match="bad arguments"):
        create_model("resnet20", wings=2)


def test_zero_init_residual_starts_every_block_as_its_shortcut():
    torch.manual_seed(0)
    model = create_model("resnet56", in_chans=1, zero_init_residual=True).train()
    blocks = [block for stage in (model.layer1, model.layer2, model.layer3) for block in stage]
    assert len(blocks) == 27 and all(torch.all(block.bn2.weight == 0) for block in blocks)
    x = torch.randn(4, 16, 8, 8)
    assert torch.equal(model.layer1[0](x), torch.relu(x))  # the residual branch adds exactly zero
    assert all(torch.all(b.bn2.weight == 1) for b in create_model("resnet56", in_chans=1).layer1)  # off by default

import pytest
import torch
import torch.nn as nn

from slimvision.measure import count_macs
from slimvision.models import create_model
from slimvision.prune.chex import ChexExplorer, cosine_regrowth, leverage_scores, projection_residuals
from slimvision.prune.saliency import dead_layers, layer_densities, snip_saliency, synflow_saliency
from slimvision.prune.schedules import precrop_ratio_dict


def test_leverage_scores_by_hand():
    # orthogonal columns with norms 1, 1, 3: the top singular direction is the third column
    columns = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]])
    scores = leverage_scores(columns, 1)
    assert torch.allclose(scores, torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)
    # full rank: every column has leverage 1
    assert torch.allclose(leverage_scores(columns, 3), torch.ones(3), atol=1e-6)


def test_projection_residuals_by_hand():
    columns = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]])
    kept = torch.tensor([True, False, False])
    residual = projection_residuals(columns, kept)
    # column 0 lies in the kept span; column 1 = (1,1,0): half of it along e1 -> residual 1/sqrt(2); column 2 orthogonal
    assert torch.allclose(residual, torch.tensor([0.0, 2**-0.5, 1.0]), atol=1e-6)


def test_regrowth_factor_decays_on_a_cosine():
    assert cosine_regrowth(0.0, 0.3) == 0.3
    assert abs(cosine_regrowth(0.5, 0.3) - 0.15) < 1e-12
    assert cosine_regrowth(1.0, 0.3) < 1e-12


def test_chex_masks_never_exceed_target_and_finalize_meets_budget():
    torch.manual_seed(0)
    model = create_model("resnet20", in_chans=1).eval()
    example = torch.zeros(1, 1, 32, 32)
    explorer = ChexExplorer(model, example, 0.5, [model.fc])
    for progress in (0.0, 0.3, 0.6):
        explorer.explore(progress)
        for mask, target in zip(explorer.masks, explorer.targets):
            assert int(mask.sum()) == target
    # masked channels really are silent: their BN affine is zero
    layer, mask = explorer.layers[0], explorer.masks[0]
    assert layer.norm.weight[~mask].abs().sum() == 0
    before = count_macs(model, (1, 32, 32))
    pruned = explorer.finalize(model)
    assert count_macs(pruned, (1, 32, 32)) <= 0.5 * before * 1.001
    assert pruned(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_layer_densities_follow_a_global_threshold():
    saliency = {"a": torch.tensor([1.0, 2.0, 3.0, 4.0]), "b": torch.tensor([0.1, 0.2, 5.0, 6.0])}
    densities = layer_densities(saliency, keep_fraction=0.5)  # keeps 6, 5, 4, 3
    assert densities == {"a": 0.5, "b": 0.5}
    assert layer_densities(saliency, 0.25) == {"a": 0.0, "b": 0.5}


def test_precrop_widths_follow_densities():
    model = create_model("small_cnn", in_chans=1)
    densities = {"features.0": 0.16, "features.3": 0.04, "features.6": 0.09}
    ratios = precrop_ratio_dict(densities, max_ratio=0.95)(model, 0.5)
    keeps = {name: 1 - ratios[dict(model.named_modules())[name]] for name in densities}
    # kept width = (1 - 0.5) * sqrt(density) / mean sqrt(density) = 0.5 * (0.4, 0.2, 0.3) / 0.3
    assert abs(keeps["features.0"] - 2 / 3) < 1e-6
    assert abs(keeps["features.3"] - 1 / 3) < 1e-6
    assert abs(keeps["features.6"] - 0.5) < 1e-6


def test_snip_and_synflow_saliencies_have_weight_shapes():
    torch.manual_seed(0)
    model = create_model("small_cnn", in_chans=1)
    snip = snip_saliency(model, torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,)))
    synflow = synflow_saliency(model, (1, 8, 8))
    for name, module in model.named_modules():
        if name in snip:
            assert snip[name].shape == module.weight.shape == synflow[name].shape
            assert (synflow[name] >= 0).all()


def test_a_fresh_zoo_model_is_initialised_by_the_prune_seed_not_by_earlier_work(tmp_path):
    """PreCropping prunes a model at initialisation: the same --seed must give the same model whatever ran before it."""
    import torch

    from slimvision.io import load_artifact
    from slimvision.prune import FinetuneConfig, PruneConfig, prune_artifact

    def pruned_weights(out, noise):
        torch.rand(noise)  # what an earlier run in the same process consumed
        prune_artifact("small_cnn", PruneConfig(method="precrop", macs_ratio=0.5, seed=3), out, data="digits",
                       finetune_config=FinetuneConfig(epochs=0, seed=3), threads=1)
        return load_artifact(out).model.state_dict()

    first, second = pruned_weights(tmp_path / "a", 5), pruned_weights(tmp_path / "b", 17)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize("saliency", ["snip", "synflow"])
def test_precrop_names_layers_no_gradient_reaches_instead_of_ranking_them(cli, tmp_path, saliency):
    code, _, err = cli("prune", "--model", "resnet20", "--model-kwargs", '{"zero_init_residual": true}', "--method", "precrop",
                       "--saliency", saliency, "--macs-ratio", "0.5", "--data", "digits", "--out", tmp_path / "p")
    assert code == 1 and "no gradient reaches them" in err and "layer1.0.conv1" in err, err
    assert not (tmp_path / "p").exists()


def test_a_layer_the_loss_never_reaches_scores_zero():
    class WithSpareHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.head, self.spare = nn.Linear(64, 10), nn.Linear(64, 10)

        def forward(self, x):
            return self.head(x.flatten(1))

    snip = snip_saliency(WithSpareHead(), torch.randn(4, 1, 8, 8), torch.randint(0, 10, (4,)))
    assert dead_layers(snip) == ["spare"] and snip["head"].any()

import copy

import pytest
import torch

from slimvision.errors import ConfigError
from slimvision.measure import accuracy
from slimvision.merge import MergeConfig, check_compatible, merge, weighted_average
from slimvision.models import create_model


def _val_accuracy(models, digits):
    return [accuracy(m, digits["val"]) for m in models]


def test_greedy_soup_is_never_worse_than_its_best_ingredient_on_held_out_data(fine_tuned, digits):
    result = merge(fine_tuned, MergeConfig("greedy"), digits["train"], digits["val"])
    assert accuracy(result.model, digits["val"]) >= max(_val_accuracy(fine_tuned, digits))
    assert result.kept[0] == max(range(3), key=lambda i: _val_accuracy(fine_tuned, digits)[i])


def test_greedy_soup_leaves_out_a_harmful_ingredient(fine_tuned, digits):
    broken = copy.deepcopy(fine_tuned[0])
    with torch.no_grad():
        for parameter in broken.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=torch.Generator().manual_seed(0)) * parameter.std() * 3)
    ingredients = [*fine_tuned, broken]
    greedy = merge(ingredients, MergeConfig("greedy"), digits["train"], digits["val"])
    uniform = merge(ingredients, MergeConfig("uniform"), digits["train"], digits["val"])
    assert 3 not in greedy.kept
    assert accuracy(greedy.model, digits["val"]) >= max(_val_accuracy(ingredients, digits))
    assert accuracy(uniform.model, digits["val"]) < accuracy(greedy.model, digits["val"])


@pytest.mark.parametrize("per_layer", [False, True])
def test_learned_soup_coefficients_sum_to_one_and_mix_the_weights(fine_tuned, digits, per_layer):
    result = merge(fine_tuned, MergeConfig("learned", per_layer=per_layer, learned_epochs=3), digits["train"], digits["val"])
    coefficients = torch.tensor(result.coefficients)
    assert coefficients.shape[0] == (len(list(fine_tuned[0].parameters())) if per_layer else 1)
    assert torch.allclose(coefficients.sum(dim=1), torch.ones(coefficients.shape[0]), atol=1e-6)
    assert (coefficients >= 0).all()
    row = coefficients[-1]  # the last parameter tensor (fc.bias) uses the last row
    expected = sum(w * m.fc.bias for w, m in zip(row.tolist(), fine_tuned))
    assert torch.allclose(result.model.fc.bias, expected, atol=1e-5)
    assert accuracy(result.model, digits["val"]) > 0.7


def test_uniform_soup_averages_the_weights(fine_tuned, digits):
    result = merge(fine_tuned, MergeConfig("uniform"), digits["train"], digits["val"])
    expected = sum(m.features[0].weight for m in fine_tuned) / 3
    assert torch.allclose(result.model.features[0].weight, expected, atol=1e-6)


def test_mismatched_ingredients_are_refused_naming_the_first_differing_tensor():
    narrow = create_model("small_cnn", num_classes=10, in_chans=1, widths=(8, 16, 32)).state_dict()
    wide = create_model("small_cnn", num_classes=10, in_chans=1, widths=(8, 24, 32)).state_dict()
    with pytest.raises(ConfigError, match=r"B with A: tensor 'features.3.weight' has shape \(24, 8, 3, 3\)"):
        check_compatible([narrow, wide], ["A", "B"])
    other = create_model("resnet20", num_classes=10, in_chans=1).state_dict()
    with pytest.raises(ConfigError, match="missing from B"):
        check_compatible([narrow, other], ["A", "B"])
    with pytest.raises(ConfigError, match="at least 2"):
        check_compatible([narrow], ["A"])


def test_weighted_average_keeps_integer_buffers_from_the_first():
    a = {"w": torch.ones(2), "n": torch.tensor(3)}
    b = {"w": torch.zeros(2), "n": torch.tensor(7)}
    merged = weighted_average([a, b], [0.25, 0.75])
    assert torch.allclose(merged["w"], torch.full((2,), 0.25)) and merged["n"].item() == 3


def test_unknown_method_is_named():
    with pytest.raises(ConfigError, match="--method"):
        MergeConfig("ties")

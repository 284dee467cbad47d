import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from slimvision.data import dataset_from_spec, get_dataset
from slimvision.data.digits_hard import DigitsHardDataset, image_sources, render_digits_hard, source_digits
from slimvision.data.loader import SampleView
from slimvision.errors import DataError

SMALL = {"train_size": 48, "val_size": 24, "test_size": 40}


def test_default_sizes_meet_the_benchmark_minimums_without_rendering():
    sizes = {split: len(get_dataset("digits-hard", split)) for split in ("train", "val", "test")}
    assert sizes["train"] >= 20_000 and sizes["val"] >= 5_000 and sizes["test"] >= 10_000


def test_an_image_depends_only_on_seed_split_and_index():
    block, labels = render_digits_hard(0, "train", range(12))
    alone, alone_labels = render_digits_hard(0, "train", [7, 3])
    assert torch.equal(alone[0], block[7]) and torch.equal(alone[1], block[3])
    assert torch.equal(alone_labels, labels[[7, 3]])
    again, _ = render_digits_hard(0, "train", range(12))
    assert torch.equal(again, block)
    other_seed, _ = render_digits_hard(1, "train", range(12))
    other_split, _ = render_digits_hard(0, "test", range(12))
    assert not torch.equal(other_seed, block) and not torch.equal(other_split, block)
    assert len({bytes(image.numpy()) for image in block}) == 12  # no two indices render the same image


def test_dataset_items_equal_the_full_tensor_and_cross_block_boundaries(monkeypatch):
    monkeypatch.setattr("slimvision.data.digits_hard.BLOCK", 16)
    data = get_dataset("digits-hard", "val", **SMALL)
    images, labels = data.images, data.labels
    for index in (0, 15, 16, 23, -1):
        image, label = data[index]
        assert torch.equal(image, images[index]) and int(label) == int(labels[index])
    assert torch.equal(data.subset(20).images, images[:20])
    with pytest.raises(IndexError):
        data[24]


def test_source_digits_of_each_split_come_only_from_that_split():
    used = {}
    for split in ("train", "val", "test"):
        _, _, allowed = source_digits(split)
        used[split] = set()
        for index in range(60):
            digit, clutter = image_sources(0, split, index)
            assert digit in set(allowed) and set(clutter) <= set(allowed)
            used[split] |= {digit, *clutter}
    assert not used["train"] & used["test"] and not used["train"] & used["val"] and not used["val"] & used["test"]


def test_labels_are_the_labels_of_the_drawn_source_digits():
    targets = load_digits().target
    _, labels = render_digits_hard(3, "test", range(30))
    expected = [targets[image_sources(3, "test", index)[0]] for index in range(30)]
    assert labels.tolist() == [int(t) for t in expected]
    assert len(set(labels.tolist())) >= 6  # many classes, not one


def test_shapes_dtypes_and_value_ranges():
    pixels, _ = render_digits_hard(0, "train", range(32))
    assert pixels.dtype == torch.uint8 and pixels.shape == (32, 3, 32, 32)
    assert int(pixels.min()) < 40 and int(pixels.max()) > 215  # the full range is used, not a flat image
    data = get_dataset("digits-hard", "train", **SMALL)
    assert data.images.shape == (48, 3, 32, 32) and data.images.dtype == torch.float32
    assert data.labels.dtype == torch.int64 and 0 <= int(data.labels.min()) and int(data.labels.max()) <= 9
    mean = torch.tensor(data.spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(data.spec.std).view(1, 3, 1, 1)
    restored = data.images * std + mean
    assert float(restored.min()) >= -1e-5 and float(restored.max()) <= 1 + 1e-5
    assert abs(float(data.images.mean())) < 0.5 and 0.5 < float(data.images.std()) < 2.0  # roughly normalised
    small = get_dataset("digits-hard", "train", 16, **SMALL)
    assert small.images.shape == (48, 3, 16, 16) and small.spec.input_size == (3, 16, 16)
    assert torch.equal(small.labels, data.labels)


def test_spec_rebuilds_the_same_split_with_its_seed_and_sizes():
    data = get_dataset("digits-hard", "test", seed=5, **SMALL)
    rebuilt = dataset_from_spec(data.spec.to_dict(), "test")
    assert len(rebuilt) == 40 and torch.equal(rebuilt.images, data.images)
    assert not torch.equal(get_dataset("digits-hard", "test", **SMALL).images, data.images)


def test_a_bad_size_names_the_option():
    with pytest.raises(DataError, match="val_size"):
        get_dataset("digits-hard", "val", val_size=0)


def test_class_balance_is_close_to_uniform():
    labels = render_digits_hard(0, "train", range(400))[1].numpy()
    counts = np.bincount(labels, minlength=10)
    assert counts.min() >= 20 and counts.max() <= 65


def test_the_training_loader_reads_labels_without_rebuilding_the_split(monkeypatch):
    # An augmenting loader reads one label per sample; rebuilding the whole split for each one made a 20,000-image
    # epoch quadratic in the split size.
    data = get_dataset("digits-hard", "train", **SMALL)
    calls = []
    rows = DigitsHardDataset._rows
    monkeypatch.setattr(DigitsHardDataset, "_rows", lambda self, count: calls.append(count) or rows(self, count))
    view = SampleView(data, augment=lambda image, seed: image)
    labels = [int(view[(0, index)][1]) for index in range(len(data))]
    assert labels == render_digits_hard(0, "train", range(len(data)))[1].tolist()
    assert calls == []

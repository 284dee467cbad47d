import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from slimvision.data import get_dataset, make_loader
from slimvision.errors import DataError


def test_digits_split_is_fixed_stratified_and_disjoint():
    splits = {s: get_dataset("digits", s) for s in ("train", "val", "test")}
    assert sum(len(d) for d in splits.values()) == 1797
    for d in splits.values():
        counts = torch.bincount(d.labels, minlength=10)
        assert counts.min() > 0.08 * len(d)  # every class present in its share
    again = get_dataset("digits", "test")
    assert torch.equal(again.images, splits["test"].images)


def test_digits_upsampling_changes_size_only():
    small, big = get_dataset("digits", "val", 8), get_dataset("digits", "val", 32)
    assert small.images.shape[1:] == (1, 8, 8) and big.images.shape[1:] == (1, 32, 32)
    assert big.spec.image_size == 32 and big.spec.input_size == (1, 32, 32)
    assert torch.equal(small.labels, big.labels)


def test_synthetic_has_requested_shape():
    d = get_dataset("synthetic", "train", 16, num_samples=10, num_classes=3, in_chans=2)
    assert d.images.shape == (10, 2, 16, 16) and int(d.labels.max()) < 3


def test_loader_order_depends_only_on_seed_and_epoch():
    d = get_dataset("synthetic", "train", 8, num_samples=40)
    first = [y for _, y in make_loader(d, 8, shuffle=True, seed=1, epoch=3)]
    second = [y for _, y in make_loader(d, 8, shuffle=True, seed=1, epoch=3)]
    other = [y for _, y in make_loader(d, 8, shuffle=True, seed=1, epoch=4)]
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))


def _write_batch(path, n=6):
    data = np.random.randint(0, 255, (n, 3072), dtype=np.uint8)
    with open(path, "wb") as f:
        pickle.dump({b"data": data, b"labels": [i % 10 for i in range(n)]}, f)


def test_cifar10_reads_python_batches(tmp_path):
    for i in range(1, 6):
        _write_batch(tmp_path / f"data_batch_{i}", 1001)
    _write_batch(tmp_path / "test_batch")
    test = get_dataset("cifar10", "test", root=str(tmp_path))
    assert test.images.shape == (6, 3, 32, 32)
    train = get_dataset("cifar10", "train", root=str(tmp_path))
    assert len(train) == 5005 - 5000


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar10_refuses_pickled_code(tmp_path):
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": _Evil(), b"labels": []}, f)
    with pytest.raises(DataError, match="refusing to load global builtins.print"):
        get_dataset("cifar10", "test", root=str(tmp_path))


def test_missing_paths_name_the_path(tmp_path):
    with pytest.raises(DataError, match="nowhere"):
        get_dataset("cifar10", "test", root=str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="nowhere"):
        get_dataset("imagefolder", "train", root=str(tmp_path / "nowhere"))


def test_imagefolder_reads_classes(tmp_path):
    for cls in ("cat", "dog"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(np.full((10, 10, 3), i * 40, dtype=np.uint8)).save(tmp_path / cls / f"{i}.png")
    d = get_dataset("imagefolder", "train", 16, root=str(tmp_path))
    assert d.images.shape == (6, 3, 16, 16) and d.spec.num_classes == 2
    assert d.spec.options["classes"] == ["cat", "dog"]

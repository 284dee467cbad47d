"""Streamed datasets, recorded preprocessing, worker-independent loading, bad data and --download."""

import hashlib
import io
import json
import pickle
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from slimvision.data import DataSpec, EvalTransform, Loader, TrainAugment, dataset_from_spec, get_dataset
from slimvision.data.download import ARCHIVES, download_cifar
from slimvision.data.transforms import BatchMixer
from slimvision.errors import DataError


def _image_folder(root, classes=("cat", "dog", "eel"), per_class=12, size=(20, 28)):
    rng = np.random.default_rng(0)
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = (rng.random((*size, 3)) * 40 + 70 * label).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i:03d}.jpg")
    return root


def test_imagenet_layout_streams_with_recorded_centre_crop(tmp_path):
    _image_folder(tmp_path / "train")
    _image_folder(tmp_path / "val", per_class=2)
    train = get_dataset("imagefolder", "train", 16, root=str(tmp_path))
    val = get_dataset("imagefolder", "val", 16, root=str(tmp_path))
    test = get_dataset("imagefolder", "test", 16, root=str(tmp_path))
    assert (len(train), len(val), len(test)) == (36, 6, 6)
    assert train.spec.options["classes"] == ["cat", "dog", "eel"] and val.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert train.spec.preprocess == {"resize": 18, "resize_mode": "shorter", "crop": 16, "interpolation": "bilinear", "antialias": True}
    assert not hasattr(train, "_images")  # nothing decoded up front
    image, label = val[2]
    assert image.shape == (3, 16, 16) and int(label) == 1
    assert val.images[:3].shape == (3, 3, 16, 16) and val.images.shape == (6, 3, 16, 16)


def test_flat_folder_holds_out_fixed_val_and_test_files(tmp_path):
    _image_folder(tmp_path, per_class=20)
    splits = {s: get_dataset("imagefolder", s, 16, root=str(tmp_path)) for s in ("train", "val", "test")}
    assert [len(d) for d in splits.values()] == [48, 6, 6]
    names = {s: {d.source_name(i) for i in range(len(d))} for s, d in splits.items()}
    assert not names["train"] & names["val"] and not names["val"] & names["test"]


def test_rebuilt_dataset_uses_the_recorded_preprocessing_not_the_default(tmp_path):
    _image_folder(tmp_path / "train")
    _image_folder(tmp_path / "val", per_class=2)
    spec = get_dataset("imagefolder", "val", 16, root=str(tmp_path)).spec.to_dict()
    spec["preprocess"] = {"resize": 16, "resize_mode": "shorter", "crop": 16}  # as if recorded by another version
    rebuilt = dataset_from_spec(json.loads(json.dumps(spec)), "val")
    raw = rebuilt.read(0)
    expected = EvalTransform(DataSpec.from_dict(spec))(raw)
    default = EvalTransform(DataSpec.from_dict({**spec, "preprocess": {"resize": 18, "resize_mode": "shorter", "crop": 16}}))(raw)
    assert torch.equal(rebuilt[0][0], expected) and not torch.allclose(expected, default)


def test_specs_written_before_preprocessing_was_recorded_still_load(tmp_path):
    _image_folder(tmp_path, per_class=10)
    old = {"name": "imagefolder", "num_classes": 3, "in_chans": 3, "image_size": 12, "mean": [0.5] * 3, "std": [0.25] * 3,
           "options": {"root": str(tmp_path), "classes": ["cat", "dog", "eel"]}}
    dataset = dataset_from_spec(old, "train")
    assert dataset.spec.preprocess["resize_mode"] == "square" and dataset[0][0].shape == (3, 12, 12)
    digits_old = {"name": "digits", "num_classes": 10, "in_chans": 1, "image_size": 8, "mean": [0.3062], "std": [0.3826]}
    assert dataset_from_spec(digits_old, "test")[0][0].shape == (1, 8, 8)


def _batches(loader, epoch):
    return [(x.clone(), y.clone()) for x, y in loader.epoch(epoch)]


def test_batches_do_not_depend_on_worker_count_and_change_with_epoch(tmp_path):
    _image_folder(tmp_path, per_class=10)
    data = get_dataset("imagefolder", "train", 16, root=str(tmp_path))
    augment = TrainAugment(data.spec, "resized", flip=True, auto_augment="trivialaugment")
    serial = Loader(data, 5, shuffle=True, seed=4, workers=0, augment=augment)
    parallel = Loader(data, 5, shuffle=True, seed=4, workers=2, augment=augment)
    for epoch in (0, 1):  # the second epoch reuses the persistent workers
        a, b = _batches(serial, epoch), _batches(parallel, epoch)
        assert len(a) == len(b) == 5
        assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    first, second = _batches(serial, 0), _batches(serial, 1)
    assert not torch.equal(first[0][0], second[0][0])


def test_data_parallel_shards_cover_each_global_batch_once():
    data = get_dataset("synthetic", "train", 8, num_samples=50)
    one = [y for _, y in Loader(data, 10, shuffle=True, seed=1).epoch(2)]
    ranks = [[y for _, y in Loader(data, 10, shuffle=True, seed=1, rank=r, world_size=2).epoch(2)] for r in (0, 1)]
    for step, labels in enumerate(one):
        assert torch.equal(torch.cat([ranks[0][step], ranks[1][step]]), labels)


def test_augmentation_depends_only_on_seed_epoch_index():
    data = get_dataset("synthetic", "train", 16, num_samples=8)
    augment = TrainAugment(data.spec, "pad", flip=True, auto_augment=None)
    torch.manual_seed(0)
    a = augment(data.read(3), 1234)
    torch.manual_seed(99)
    b = augment(data.read(3), 1234)
    assert torch.equal(a, b) and not torch.equal(a, augment(data.read(3), 1235))
    state = torch.get_rng_state()
    augment(data.read(3), 7)
    assert torch.equal(state, torch.get_rng_state())  # the global generator is left as it was


def test_mixup_and_cutmix_give_soft_targets_matching_the_pixels():
    images = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 4, 4).contiguous()
    labels = torch.arange(4)
    mixed, soft = BatchMixer(4, mixup=1.0)(images, labels, seed=3)
    assert torch.allclose(soft.sum(1), torch.ones(4))
    assert torch.allclose(mixed[:, 0, 0, 0], (soft * torch.arange(4.0)).sum(1), atol=1e-5)  # pixel value = expected label
    mixed, soft = BatchMixer(4, cutmix=1.0)(images, labels, seed=3)
    assert torch.allclose(mixed.mean((1, 2, 3)), (soft * torch.arange(4.0)).sum(1), atol=1e-5)  # area share = label weight


def test_unreadable_image_names_the_file_or_is_skipped_and_counted(tmp_path):
    _image_folder(tmp_path, per_class=10)
    (tmp_path / "dog" / "005.jpg").write_bytes(b"not a jpeg at all")
    data = get_dataset("imagefolder", "train", 16, root=str(tmp_path))
    with pytest.raises(DataError, match=r"dog/005\.jpg: cannot read image.*--skip-bad-images"):
        list(Loader(data, 8, workers=2))
    skipping = Loader(get_dataset("imagefolder", "train", 16, root=str(tmp_path), skip_bad_images=True), 8, workers=2)
    seen = sum(len(y) for _, y in skipping)
    assert seen == len(data) - 1 and len(skipping.skipped) == 1 and "005.jpg" in skipping.skipped[0]


def test_empty_class_folder_is_named(tmp_path):
    _image_folder(tmp_path, per_class=10)
    (tmp_path / "fox").mkdir()
    with pytest.raises(DataError, match=r"fox: empty class folder"):
        get_dataset("imagefolder", "train", 16, root=str(tmp_path))


def _cifar100_batch(path, n):
    data = np.random.default_rng(0).integers(0, 255, (n, 3072), dtype=np.uint8)
    with open(path, "wb") as f:
        pickle.dump({b"data": data, b"fine_labels": [i % 100 for i in range(n)], b"coarse_labels": [0] * n}, f)


def test_cifar100_reads_python_batches_and_refuses_a_cifar10_file(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    _cifar100_batch(folder / "train", 5010)
    _cifar100_batch(folder / "test", 7)
    train, val, test = (get_dataset("cifar100", s, root=str(tmp_path)) for s in ("train", "val", "test"))
    assert (len(train), len(val), len(test)) == (10, 5000, 7) and train.spec.num_classes == 100
    assert test.images[:7].shape == (7, 3, 32, 32)
    raw = torch.from_numpy(test.pixels[1]).float() / 255
    expected = (raw - torch.tensor(test.spec.mean).view(3, 1, 1)) / torch.tensor(test.spec.std).view(3, 1, 1)
    assert torch.allclose(test[1][0], expected, atol=1e-6)  # at 32 px the eval transform is normalisation only
    with open(folder / "test", "wb") as f:  # a CIFAR-10 batch where CIFAR-100 is expected
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(DataError, match=r"cifar-100-python/test: missing 'data' array or 'fine_labels'"):
        get_dataset("cifar100", "test", root=str(tmp_path))


def _mirror(tmp_path, name="cifar10"):
    """A local mirror holding an archive laid out like the official one."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    buffer = io.BytesIO()
    batch = pickle.dumps({b"data": np.zeros((3, 3072), np.uint8), b"labels": [0, 1, 2]})
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]:
            info = tarfile.TarInfo(f"cifar-10-batches-py/{member}")
            info.size = len(batch)
            tar.addfile(info, io.BytesIO(batch))
    archive = mirror / ARCHIVES[name].filename
    archive.write_bytes(buffer.getvalue())
    return mirror, hashlib.md5(buffer.getvalue()).hexdigest()


def test_download_verifies_md5_and_unpacks_atomically(tmp_path):
    mirror, md5 = _mirror(tmp_path)
    root = tmp_path / "data"
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz: md5 .* does not match the published c58f3010"):
        download_cifar("cifar10", root, base_url=mirror.as_uri())
    assert list(root.iterdir()) == []  # no partial archive, no half-unpacked folder
    folder = download_cifar("cifar10", root, base_url=mirror.as_uri(), md5=md5)
    assert folder == root / "cifar-10-batches-py" and len(get_dataset("cifar10", "test", root=str(root))) == 3
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py"]


def test_cli_download_reports_a_checksum_mismatch_in_one_line(cli, tmp_path, monkeypatch):
    mirror, _ = _mirror(tmp_path)
    monkeypatch.setenv("SLIMVISION_CIFAR_MIRROR", mirror.as_uri())
    code, _, err = cli("train", "--model", "small_cnn", "--data", "cifar10", "--data-root", tmp_path / "data", "--download",
                       "--epochs", "1", "--out", tmp_path / "run")
    assert code == 1 and "does not match the published" in err and len(err.strip().splitlines()) == 1


def test_cli_train_skips_bad_images_and_reports_the_count(cli, tmp_path):
    root = _image_folder(tmp_path / "images", per_class=10)
    (root / "cat" / "003.jpg").write_bytes(b"\xff\xd8 truncated")
    args = ["train", "--model", "small_cnn", "--data", "imagefolder", "--data-root", root, "--image-size", "12", "--epochs", "1",
            "--batch-size", "8", "--workers", "2"]
    code, _, err = cli(*args, "--out", tmp_path / "strict")
    assert code == 1 and "cat/003.jpg: cannot read image" in err and len(err.strip().splitlines()) == 1
    code, out, err = cli(*args, "--skip-bad-images", "--json", "--out", tmp_path / "lenient")
    assert code == 0, err
    assert json.loads(out)["skipped_images"] == 1 and "003.jpg" in err
    meta = json.loads((tmp_path / "lenient" / "meta.json").read_text())
    assert meta["train_transform"]["library"] == "kornia" and meta["data"]["preprocess"]["crop"] == 12


def test_a_dataset_is_registered_with_one_line_and_names_are_not_overwritten():
    from slimvision.data import DATASETS, TensorImageDataset, register_dataset
    from slimvision.errors import ConfigError

    def load_tiny(split, image_size, root, **options):
        spec = DataSpec("tiny-test", 2, 1, image_size, [0.0], [1.0])
        return TensorImageDataset(torch.zeros(4, 1, image_size, image_size), torch.tensor([0, 1, 0, 1]), spec, split)

    if "tiny-test" not in DATASETS:
        register_dataset("tiny-test", load_tiny, default_image_size=6)
    assert get_dataset("tiny-test", "val").images.shape == (4, 1, 6, 6)
    with pytest.raises(ConfigError, match="already registered"):
        register_dataset("digits", load_tiny, default_image_size=8)

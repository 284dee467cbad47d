"""`supernet train --resume` after a kill ends with the weights, history and sampler of an uninterrupted run."""

from __future__ import annotations

import json
import shutil

from safetensors.numpy import load_file

from slimvision.nas.supernet import train as supernet_train

ARGS = ["supernet", "train", "--space", "resnet", "--data", "imagefolder", "--image-size", "8", "--sampler", "performance", "--epochs", "2", "--lr", "0.1"]


def _image_folder(root):
    """Three classes of 40 tiny images: a few training steps per epoch, seconds per run."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, name in enumerate(("dark", "mid", "light")):
        (root / name).mkdir(parents=True)
        for i in range(40):
            pixels = np.clip(80 * label + rng.normal(40, 30, (8, 8, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def _count_sampled_steps(monkeypatch) -> list[int]:
    """Count the sampler's draws (one per training step) without changing what it draws."""
    calls = [0]
    create = supernet_train.create_sampler

    def counting_sampler(*args, **kwargs):
        sampler = create(*args, **kwargs)
        sample = sampler.sample

        def counted():
            calls[0] += 1
            return sample()

        sampler.sample = counted
        return sampler

    monkeypatch.setattr(supernet_train, "create_sampler", counting_sampler)
    return calls


def test_resumed_supernet_training_equals_an_uninterrupted_run(cli, tmp_path, monkeypatch):
    steps = _count_sampled_steps(monkeypatch)
    root = _image_folder(tmp_path / "images")
    full = tmp_path / "full"
    code, _, err = cli(*ARGS, "--data-root", root, "--out", full)
    assert code == 0, err
    full_steps = steps[0]
    # a run killed after epoch 1's checkpoint: epoch 2's checkpoint and the final artifact were never written
    cut = tmp_path / "cut"
    shutil.copytree(full, cut)
    shutil.rmtree(cut / "checkpoints" / "epoch_0002")
    for name in ("model.safetensors", "arch.json", "meta.json"):
        (cut / name).unlink()
    steps[0] = 0
    code, _, err = cli(*ARGS, "--data-root", root, "--out", cut, "--resume")
    assert code == 0, err
    assert full_steps >= 2 and 2 * steps[0] == full_steps  # only epoch 2 was trained again
    a, b = load_file(str(full / "model.safetensors")), load_file(str(cut / "model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)  # bit-exact on CPU
    history = [json.loads((run / "meta.json").read_text())["history"] for run in (full, cut)]
    assert [h["train_loss"] for h in history[0]] == [h["train_loss"] for h in history[1]] and len(history[0]) == 2

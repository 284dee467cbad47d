import json

import pytest


def test_supernet_trains_and_feeds_oneshot_search_and_derive(cli, tmp_path, monkeypatch):
    from slimvision.nas.supernet import train as supernet_train

    layouts = []
    original = supernet_train.Trainer

    def recording_trainer(*args, **kwargs):
        layouts.append(args[3].channels_last)  # the TrainConfig
        return original(*args, **kwargs)

    monkeypatch.setattr(supernet_train, "Trainer", recording_trainer)
    out = tmp_path / "sn"
    # trained in NHWC: everything downstream (search, derive, eval) gets an ordinary model back
    code, _, err = cli("supernet", "train", "--space", "mbv2", "--image-size", "8", "--sampler", "performance", "--epochs", "1", "--channels-last", "--out", out)
    assert code == 0, err
    assert (out / "arch.json").is_file() and (out / "checkpoints" / "epoch_0001").is_dir()
    assert layouts == [True] and json.loads((out / "meta.json").read_text())["supernet"]["channels_last"] is True
    code, out_json, err = cli(
        "search", "--supernet", out, "--evaluator", "oneshot", "--strategy", "random", "--trials", "3", "--image-size", "8",
        "--out", tmp_path / "search", "--json",
    )
    assert code == 0, err
    front = json.loads(out_json)
    # one-shot scores are accuracies on the validation images (at most 360): whole counts of images, not arbitrary floats
    from slimvision.data import get_dataset

    n_val = min(360, len(get_dataset("digits", "val")))
    assert front and all(abs(p["score"] * n_val - round(p["score"] * n_val)) < 1e-6 for p in front)
    code, _, err = cli("derive", tmp_path / "search" / "pareto.json", "--index", "0", "--supernet", out, "--out", tmp_path / "derived")
    assert code == 0, err
    # the derived model is the searched subnet with its inherited (BN re-calibrated) weights: on the same
    # validation images it scores what the search recorded for it
    code, eval_out, _ = cli("eval", tmp_path / "derived", "--image-size", "8", "--split", "val", "--json")
    assert code == 0
    assert json.loads(eval_out)["accuracy"] == pytest.approx(front[0]["score"], abs=2 / n_val)


def test_supernet_and_search_read_a_local_dataset(cli, tmp_path):
    import numpy as np
    from PIL import Image

    root = tmp_path / "images"
    for label, name in enumerate(("circle", "square", "stripe")):
        (root / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((8, 8, 3), 60 * label + 10 * i, dtype=np.uint8)).save(root / name / f"{i}.png")
    out = tmp_path / "sn"
    code, _, err = cli("supernet", "train", "--space", "resnet", "--data", "imagefolder", "--data-root", root, "--image-size", "8",
                       "--epochs", "1", "--out", out)
    assert code == 0, err
    assert json.loads((out / "meta.json").read_text())["data"]["options"]["root"] == str(root)
    for evaluator in ("oneshot", "train"):  # one-shot reads the recorded root, the train evaluator --data-root
        code, out_json, err = cli("search", "--space", "resnet", "--supernet", out, "--evaluator", evaluator, "--data", "imagefolder",
                                  "--data-root", root, "--strategy", "random", "--trials", "1", "--image-size", "8", "--in-chans", "3",
                                  "--out", tmp_path / evaluator, "--json")
        assert code == 0, err
        assert 0.0 <= json.loads(out_json)[0]["score"] <= 1.0
    code, _, err = cli("supernet", "train", "--data", "imagefolder", "--data-root", tmp_path / "nowhere", "--out", tmp_path / "bad")
    assert code != 0 and "nowhere" in err

import json


def test_supernet_trains_and_feeds_oneshot_search_and_derive(cli, tmp_path):
    out = tmp_path / "sn"
    code, _, err = cli("supernet", "train", "--space", "mbv2", "--image-size", "8", "--sampler", "performance", "--epochs", "1", "--out", out)
    assert code == 0, err
    assert (out / "arch.json").is_file() and (out / "checkpoints" / "epoch_0001").is_dir()
    code, out_json, err = cli(
        "search", "--supernet", out, "--evaluator", "oneshot", "--strategy", "random", "--trials", "3", "--image-size", "8",
        "--out", tmp_path / "search", "--json",
    )
    assert code == 0, err
    assert all(0.0 <= p["score"] <= 1.0 for p in json.loads(out_json))
    code, _, err = cli("derive", tmp_path / "search" / "pareto.json", "--index", "0", "--supernet", out, "--out", tmp_path / "derived")
    assert code == 0, err
    code, eval_out, _ = cli("eval", tmp_path / "derived", "--image-size", "8", "--json")
    assert code == 0 and 0.0 <= json.loads(eval_out)["accuracy"] <= 1.0

import json
import os
import subprocess
import sys

from slimvision.io import load_artifact, read_json


def test_resnet_supernet_trains_data_parallel_under_torchrun_and_feeds_search_and_derive(cli, tmp_path):
    out = tmp_path / "sn"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "slimvision",
               "supernet", "train", "--space", "resnet", "--image-size", "8", "--sampler", "sandwich", "--epochs", "1", "--out", str(out)]
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    meta = read_json(out / "meta.json")
    assert meta["supernet"]["world_size"] == 2 and meta["history"][0]["epoch"] == 1
    assert len(list((out / "checkpoints").iterdir())) == 1  # only rank 0 writes

    code, front_json, err = cli("search", "--space", "resnet", "--supernet", out, "--evaluator", "oneshot-loss", "--strategy", "random",
                                "--trials", "4", "--max-macs", "1M", "--image-size", "8", "--out", tmp_path / "search", "--json")
    assert code == 0, err
    front = json.loads(front_json)
    assert front and all(p["macs"] <= 1e6 and p["score"] <= 0.0 for p in front)
    code, _, err = cli("derive", tmp_path / "search" / "pareto.json", "--index", "0", "--supernet", out, "--out", tmp_path / "derived")
    assert code == 0, err
    assert load_artifact(tmp_path / "derived").arch.kwargs["arch"] == front[0]["arch"]


def test_oneshot_evaluator_refuses_a_supernet_of_another_space(cli, tmp_path):
    code, _, err = cli("supernet", "train", "--space", "resnet", "--image-size", "8", "--sampler", "uniform", "--epochs", "1", "--out", tmp_path / "sn")
    assert code == 0, err
    code, _, err = cli("search", "--space", "mbv2", "--supernet", tmp_path / "sn", "--evaluator", "oneshot", "--trials", "2", "--out", tmp_path / "s")
    assert code == 1 and "'resnet' space, not 'mbv2'" in err

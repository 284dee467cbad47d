import json

import pytest


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from slimvision.cli import run

    out = tmp_path_factory.mktemp("q") / "sc"
    assert run(["train", "--model", "small_cnn", "--data", "digits", "--epochs", "6", "--out", str(out)]) == 0
    return out


def test_torchao_ptq_end_to_end(cli, trained, tmp_path):
    code, out, err = cli("quantize", "--model", trained, "--backend", "torchao", "--calib-samples", "64", "--threads", "1", "--out", tmp_path / "ao", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["backend"] == "torchao" and (tmp_path / "ao" / "model.pt2").is_file()
    assert summary["accuracy_fp32"] - summary["accuracy_int8"] < 0.05
    assert summary["speedup_bs32"] > 0

"""CLI commands that had no test: `models`, `export`, `nas bench build` (tiny, fast)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import torch



def test_models_lists_the_zoo_as_json_and_as_text(cli):
    code, out, err = cli("models", "--json")
    assert code == 0, err
    names = json.loads(out)
    assert {"small_cnn", "resnet20", "resnet56", "mobilenetv2"} <= set(names) and names == sorted(names)
    code, text, _ = cli("models")
    assert code == 0 and all(name in text for name in names)


def test_export_writes_an_onnx_file_that_reproduces_the_model(cli, tmp_path):
    out = tmp_path / "sc.onnx"
    code, _, err = cli("export", "--model", "small_cnn", "--model-kwargs", '{"num_classes": 4, "in_chans": 1}', "--input-size", "1", "16", "16", "--out", out)
    assert code == 0, err
    graph = onnx.load(str(out)).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert [d.dim_value for d in graph.output[0].type.tensor_type.shape.dim[1:]] == [4]
    import onnxruntime as ort

    torch.manual_seed(0)
    x = torch.randn(3, 1, 16, 16)
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    assert got.shape == (3, 4) and np.isfinite(got).all()


def test_export_refuses_a_wrong_input_size_in_one_line(cli, tmp_path):
    code, _, err = cli("export", "--model", "small_cnn", "--input-size", "3", "0", "0", "--out", tmp_path / "x.onnx")
    assert code == 1 and "Traceback" not in err and not (tmp_path / "x.onnx").exists()


def test_nas_bench_build_writes_distinct_archs_and_resumes(cli, tmp_path):
    table = tmp_path / "bench.jsonl"
    args = ["nas", "bench", "build", "--epochs", "1", "--seeds", "0", "--channels", "4", "--out", table]
    code, _, err = cli(*args, "--n", "2")
    assert code == 0, err
    lines = table.read_text().splitlines()
    rows = [json.loads(line) for line in lines if '"arch"' in line]
    assert len(rows) == 2 and len({r["arch"] for r in rows}) == 2
    # one run per seed (only seed 0 was asked for), each with a measured test accuracy
    assert all(len(r["runs"]) == 1 and r["runs"][0]["seed"] == 0 and 0.0 < r["runs"][0]["test_accuracy"] < 1.0 for r in rows)
    assert all(r["macs"] > 0 and r["params"] > 0 for r in rows)
    # resuming with a larger --n trains only the missing arch; the first two rows are kept as written
    code, _, err = cli(*args, "--n", "3")
    assert code == 0, err
    again = table.read_text().splitlines()
    assert again[: len(lines)] == lines
    rows = [json.loads(line) for line in again if '"arch"' in line]
    assert len(rows) == 3 and len({r["arch"] for r in rows}) == 3

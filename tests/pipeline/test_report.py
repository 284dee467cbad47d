"""summary.json, report.md and a self-contained report.html (checked in headless Chromium when it is installed)."""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from slimvision.pipeline.runner import run_recipe
from tests.pipeline.conftest import write_recipe

QUANTIZE = "  - {stage: quantize, backend: onnxruntime, calib_samples: 64, label: int8}\n"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("report")
    recipe = write_recipe(directory, extra_stages=QUANTIZE)
    run = directory / "run"
    run_recipe(recipe, run)
    return run


def test_summary_has_one_measured_row_per_artifact(finished_run):
    rows = json.loads((finished_run / "summary.json").read_text())
    assert [r["stage"] for r in rows] == ["train", "prune", "distill", "quantize"]
    for row in rows:
        assert set(row) >= {"stage", "params", "macs", "size_bytes", "latency_ms", "accuracy"}
        assert set(row["latency_ms"]) == {"1", "32"} and all(v > 0 for v in row["latency_ms"].values())
        assert 0.0 <= row["accuracy"] <= 1.0
        assert row["size_bytes"] == row["size_bytes"] // 1 > 0
    train, prune, _, int8 = rows
    assert prune["macs"] < 0.6 * train["macs"] and prune["params"] < train["params"]
    assert int8["runtime"] == "onnxruntime int8" and int8["macs"] == rows[2]["macs"]
    assert int8["size_bytes"] < rows[2]["size_bytes"]  # 8-bit weights on disk
    # the pruned model's per-layer widths, before and after
    assert all(after <= before for before, after in prune["layer_widths"].values())
    assert any(after < before for before, after in prune["layer_widths"].values())
    conditions = json.loads((finished_run / "conditions.json").read_text())
    assert conditions["threads"] == 1 and "torch" in conditions["versions"]


def test_html_report_is_self_contained_with_every_plot_inline(finished_run):
    page = (finished_run / "report.html").read_text()
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', page)
    assert images == ["accuracy vs latency (batch 32)", "accuracy vs MACs", "per-layer width: pruned"]
    assert not re.search(r'(src|href)="(?!data:)', page)  # no external file, no network
    assert "thread(s) pinned" in page and "onnxruntime" in page
    markdown = (finished_run / "report.md").read_text()
    assert "| distilled | torch eager fp32 |" in markdown and "(plots/pareto_macs.png)" in markdown


def test_report_command_regenerates_from_the_run_directory_alone(finished_run, cli):
    (finished_run / "report.html").unlink()
    (finished_run / "report.md").unlink()
    code, out, err = cli("report", finished_run, "--no-measure")
    assert code == 0, err
    assert (finished_run / "report.html").stat().st_size > 10_000 and "distilled" in out
    code, _, err = cli("report", finished_run.parent)
    assert code == 1 and "not a run directory" in err


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(finished_run, tmp_path):
    import matplotlib.image

    shot = tmp_path / "report.png"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--screenshot={shot}",
         "--window-size=1000,2200", (finished_run / "report.html").as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    pixels = matplotlib.image.imread(shot)[..., :3]
    # the plots' markers (matplotlib's tab:blue) only appear if the inline images were decoded and drawn; the
    # Pareto line is not used because a front of one point (one artifact dominating) draws no line
    blue = np.all(np.abs(pixels - np.array([0.122, 0.467, 0.706])) < 0.06, axis=-1)
    assert blue.sum() > 200
    assert (pixels.mean(axis=-1) < 0.5).mean() > 0.005  # table text drawn
    shutil.copy(shot, finished_run / "report_screenshot.png")


def _auto_record():
    """A quantize summary as `auto` with the block search records it (two candidates, one block, one float node)."""
    import dataclasses

    from slimvision.quant.select import Verdict

    chosen = Verdict("openvino int8", "openvino", "int8", 2, "chosen", "0.50 ms, fastest within the accuracy limit", 0.97, 0.99, 0.5)
    slower = Verdict("onnxruntime fp32", "onnxruntime", "fp32", 2, "slower", "0.90 ms, 1.80x the chosen openvino int8 (0.50 ms)", 0.98, 1.0, 0.9)
    return {
        "deployment": "openvino int8", "batch_size": 32, "speedup_vs_fastest_fp32": 1.8, "speedup_basis": "onnxruntime fp32",
        "selection_seconds": 4.2, "candidates": [dataclasses.asdict(chosen), dataclasses.asdict(slower)],
        "block_search": {"openvino": {"blocks": 1, "float_blocks": [], "seconds": 3.0, "result": "every block stays INT8",
                                      "decisions": [{"block": "layer1 <stage>", "kept": "int8", "reason": "float is 2% slower"}]}},
        "qdq_placement": {"quantized": 9, "float": [{"node": "/head/Softmax", "op_type": "Softmax", "quantized": False, "reason": "a <float> op"}],
                          "float_activations": "Softmax is never quantized"},
    }


def test_report_shows_how_each_int8_artifact_was_deployed(finished_run, tmp_path):
    from slimvision.report.run_report import write_html, write_markdown

    rows = json.loads((finished_run / "summary.json").read_text())
    conditions = json.loads((finished_run / "conditions.json").read_text())
    rows[-1]["quantize"] = _auto_record()
    markdown = write_markdown(tmp_path, rows, conditions, [], "report").read_text()
    section = markdown.split("## How int8 was deployed")[1].split("## Conditions")[0]
    assert "**auto chose openvino int8 (batch 32)**" in section
    assert "| onnxruntime fp32 | slower | 0.9800 | 0.90 | 0.90 ms, 1.80x the chosen openvino int8 (0.50 ms) |" in section
    assert "1.80x the fastest fp32 runtime (onnxruntime fp32); chosen in 4.2 s" in section
    assert "| layer1 <stage> | int8 | float is 2% slower |" in section and "| /head/Softmax | Softmax | a <float> op |" in section
    assert markdown.count("was deployed") == 1  # only the row that recorded decisions
    page = write_html(tmp_path, rows, conditions, [], "report").read_text()
    assert "<h2>How int8 was deployed</h2>" in page and "<td>layer1 &lt;stage&gt;</td>" in page and "<stage>" not in page
    assert page.index("auto chose openvino int8") < page.index("block search on openvino") < page.index("QDQ placement: 9 nodes INT8")


def test_an_int8_artifact_that_deploys_the_float_model_is_labelled_by_its_precision(finished_run, tmp_path):
    from slimvision.report.summary import ArtifactEntry, measure_entries

    float_deployment = tmp_path / "auto_fp32"
    shutil.copytree(finished_run / "quantize" / "model", float_deployment)
    meta = json.loads((float_deployment / "meta.json").read_text())
    meta["precision"] = "fp32"  # what auto writes when the fp32 model on that runtime was the fastest accurate deployment
    (float_deployment / "meta.json").write_text(json.dumps(meta))
    rows, _ = measure_entries([ArtifactEntry("quantize", "int8", "quantize", float_deployment)], threads=1, rounds=1, repeats=1, warmup=0)
    assert rows[0]["runtime"] == "onnxruntime fp32" and rows[0]["quantize"] == meta["quantize"]

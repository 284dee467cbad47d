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

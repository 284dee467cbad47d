import json


def test_demo_runs_every_stage_and_reports_measured_rows(tmp_path, cli):
    code, out, err = cli("demo", "--out", tmp_path / "demo", "--epochs", "3", "--threads", "1")
    assert code == 0, err
    report = (tmp_path / "demo" / "report.md").read_text()
    for stage in ("trained fp32", "pruned (no fine-tune)", "pruned + NKD", "pruned + NKD + INT8"):
        assert stage in report
    for plot in ("pareto_latency.png", "pareto_macs.png", "widths_pruned.png"):
        assert (tmp_path / "demo" / "plots" / plot).stat().st_size > 1000
    assert "data:image/png;base64," in (tmp_path / "demo" / "report.html").read_text()
    rows = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert [r["label"] for r in rows] == ["trained fp32", "pruned (no fine-tune)", "pruned + NKD", "pruned + NKD + INT8"]
    pruned = json.loads((tmp_path / "demo" / "pruned" / "model" / "meta.json").read_text())
    assert abs(pruned["prune"]["macs_kept"] - 0.5) < 0.05
    distilled = json.loads((tmp_path / "demo" / "distilled" / "model" / "meta.json").read_text())
    assert distilled["metrics"]["accuracy"] > 0.5  # chance is 0.1
    assert rows[2]["accuracy"] == distilled["metrics"]["accuracy"]  # the report measures the artifact the stage wrote
    # progress per stage, the measured table in 80 columns, the final speed-up stated
    assert "[1/4] train" in out and "[4/4] quantize -> int8" in out
    assert all(len(line) <= 80 for line in out.splitlines())
    assert "faster at batch 32" in out
    # a second run reuses every stage's artifact
    int8 = tmp_path / "demo" / "int8" / "model"
    model_file = int8 / json.loads((int8 / "meta.json").read_text())["file"]
    before = model_file.stat().st_mtime_ns
    code, out, _ = cli("demo", "--out", tmp_path / "demo", "--epochs", "3", "--threads", "1")
    assert code == 0 and out.count("(reused)") == 4
    assert model_file.stat().st_mtime_ns == before

import json


def test_demo_runs_every_stage_and_reports_measured_rows(tmp_path, cli):
    code, out, err = cli("demo", "--out", tmp_path / "demo", "--epochs", "3", "--threads", "1")
    assert code == 0, err
    report = (tmp_path / "demo" / "report.md").read_text()
    for stage in ("trained fp32", "pruned (no fine-tune)", "pruned + NKD", "pruned + NKD + INT8"):
        assert stage in report
    assert (tmp_path / "demo" / "tradeoff.png").stat().st_size > 1000
    pruned = json.loads((tmp_path / "demo" / "pruned" / "meta.json").read_text())
    assert abs(pruned["prune"]["macs_kept"] - 0.5) < 0.05
    distilled = json.loads((tmp_path / "demo" / "distilled" / "meta.json").read_text())
    assert distilled["metrics"]["accuracy"] > 0.5  # chance is 0.1
    # a second run reuses every stage's artifact
    before = (tmp_path / "demo" / "int8" / "model.onnx").stat().st_mtime_ns
    code, out, _ = cli("demo", "--out", tmp_path / "demo", "--epochs", "3", "--threads", "1")
    assert code == 0 and "(reused)" in out
    assert (tmp_path / "demo" / "int8" / "model.onnx").stat().st_mtime_ns == before

"""Resume: finished stages are never redone; changed or forced stages are redone with everything after them."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from slimvision.pipeline.runner import run_recipe
from tests.pipeline.conftest import write_recipe

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _records(run):
    return {name: (run / name / "stage.json").read_bytes() for name in ("train", "prune", "distill") if (run / name / "stage.json").exists()}


def _wait_for(predicate, process, timeout_s=180.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.02)
    return False


def test_kill_9_during_distill_then_rerun_redoes_neither_train_nor_prune(tmp_path, cli):
    recipe = write_recipe(tmp_path, distill_epochs=12)  # long enough to be caught mid-stage
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": SRC, "SLIMVISION_DEBUG": "1"}
    process = subprocess.Popen([sys.executable, "-m", "slimvision", "optimize", str(recipe), "--out", str(run)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    distill_record = run / "distill" / "stage.json"
    try:
        started = _wait_for(lambda: distill_record.exists() and b'"running"' in distill_record.read_bytes(), process)
        assert started, f"distill never started: {process.stderr.read().decode()[-2000:] if process.poll() is not None else 'timeout'}"
        time.sleep(0.3)
        assert process.poll() is None, "the run finished before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
        process.stderr.close()
    before = _records(run)
    weights = {name: (run / name / "model" / "model.safetensors").stat().st_mtime_ns for name in ("train", "prune")}
    assert json.loads(before["distill"])["status"] == "running"

    code, out, err = cli("optimize", recipe, "--out", run)
    assert code == 0, err
    assert "[1/3] train  (reused)" in out and "[2/3] prune  (reused)" in out and "[3/3] distill" in out
    after = _records(run)
    assert after["train"] == before["train"] and after["prune"] == before["prune"]  # records untouched: not redone
    assert weights == {name: (run / name / "model" / "model.safetensors").stat().st_mtime_ns for name in ("train", "prune")}
    assert json.loads(after["distill"])["status"] == "done"
    summary = json.loads((run / "summary.json").read_text())
    assert [row["stage"] for row in summary] == ["train", "prune", "distill"]


def test_changed_options_redo_that_stage_and_the_ones_after_it(tmp_path):
    recipe = write_recipe(tmp_path)
    run = tmp_path / "run"
    first = run_recipe(recipe, run, report=False)
    assert [s["status"] for s in first["stages"]] == ["ran", "ran", "ran"]
    assert [s["status"] for s in run_recipe(recipe, run, report=False)["stages"]] == ["reused"] * 3

    recipe.write_text(recipe.read_text().replace("macs_ratio: 0.5", "macs_ratio: 0.6"))
    assert [s["status"] for s in run_recipe(recipe, run, report=False)["stages"]] == ["reused", "ran", "ran"]
    pruned = json.loads((run / "prune" / "model" / "meta.json").read_text())
    assert abs(pruned["prune"]["macs_kept"] - 0.6) < 0.05

    # an input file that changed (the model's source) redoes everything that read it
    (tmp_path / "models.py").write_text((tmp_path / "models.py").read_text() + "\n# edited\n")
    assert [s["status"] for s in run_recipe(recipe, run, report=False)["stages"]] == ["ran", "ran", "ran"]


def test_force_redoes_the_named_stage_and_everything_after(tmp_path, cli):
    recipe = write_recipe(tmp_path)
    run = tmp_path / "run"
    run_recipe(recipe, run, report=False)
    train_record = (run / "train" / "stage.json").read_bytes()
    distill_before = json.loads((run / "distill" / "stage.json").read_text())["finished"]
    code, out, err = cli("optimize", recipe, "--out", run, "--force", "prune")
    assert code == 0, err
    assert "train  (reused)" in out and "prune  (reused)" not in out and "distill  (reused)" not in out
    assert (run / "train" / "stage.json").read_bytes() == train_record
    assert json.loads((run / "distill" / "stage.json").read_text())["finished"] > distill_before
    assert "start prune" in (run / "prune" / "log.txt").read_text()


def test_an_interrupted_train_stage_continues_from_its_checkpoint(tmp_path):
    recipe = write_recipe(tmp_path)
    run = tmp_path / "run"
    run_recipe(recipe, run, report=False)
    record = json.loads((run / "train" / "stage.json").read_text())
    # what a kill after the first epoch's checkpoint leaves: a running record with the same hash, a checkpoint, no final model
    (run / "train" / "stage.json").write_text(json.dumps({**record, "status": "running"}))
    checkpoints = sorted((run / "train" / "model" / "checkpoints").iterdir())
    for late in checkpoints[1:]:
        import shutil

        shutil.rmtree(late)
    stages = run_recipe(recipe, run, report=False)["stages"]
    assert [s["status"] for s in stages] == ["ran", "ran", "ran"]
    log = (run / "train" / "log.txt").read_text()
    assert "resuming from its checkpoint" in log


def test_a_finished_stage_whose_output_was_deleted_is_redone(tmp_path):
    import shutil

    recipe = write_recipe(tmp_path)
    run = tmp_path / "run"
    run_recipe(recipe, run, report=False)
    shutil.rmtree(run / "prune" / "model")
    assert [s["status"] for s in run_recipe(recipe, run, report=False)["stages"]] == ["reused", "ran", "ran"]

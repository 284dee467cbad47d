"""Resume: finished stages are never redone; changed or forced stages are redone with everything after them."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from slimvision.pipeline.runner import run_recipe
from tests.pipeline.conftest import write_recipe

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _records(run):
    return {name: (run / name / "stage.json").read_bytes() for name in ("train", "prune", "distill") if (run / name / "stage.json").exists()}


# Runs a recipe and kills itself with SIGKILL right after the training loop of stage argv[3] wrote its
# checkpoint for epoch argv[4]: a kill -9 at a known point inside that stage, not at a timing-dependent one.
KILL_AFTER_CHECKPOINT = """
import os, signal, sys
from pathlib import Path
from slimvision.train.trainer import Trainer
import pytest

from slimvision.pipeline.runner import run_recipe

save = Trainer._save

def save_then_die(self):
    path = save(self)
    if self.out_dir is not None and self.out_dir.name == sys.argv[3] and self.epoch == int(sys.argv[4]):
        os.kill(os.getpid(), signal.SIGKILL)
    return path

Trainer._save = save_then_die
run_recipe(sys.argv[1], sys.argv[2], report=False)
"""


def _run_killed_inside(stage, epoch, recipe, run):
    env = {**os.environ, "PYTHONPATH": SRC}
    process = subprocess.run([sys.executable, "-c", KILL_AFTER_CHECKPOINT, str(recipe), str(run), stage, str(epoch)],
                             env=env, capture_output=True, text=True, timeout=300)
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]


@pytest.mark.parametrize("stage, finished_before", [("distill", ("train", "prune")), ("prune", ("train",))])
def test_kill_9_inside_a_stage_then_rerun_continues_that_stage_from_its_checkpoint(tmp_path, cli, stage, finished_before):
    recipe = write_recipe(tmp_path, distill_epochs=3, finetune_epochs=3)
    run = tmp_path / "run"
    _run_killed_inside(stage, 2, recipe, run)
    before = _records(run)
    assert json.loads(before[stage])["status"] == "running"
    assert (run / stage / "checkpoints" / "epoch_0002").is_dir()
    weights = {name: (run / name / "model" / "model.safetensors").stat().st_mtime_ns for name in finished_before}

    code, out, err = cli("optimize", recipe, "--out", run)
    assert code == 0, err
    for name in finished_before:
        assert f"{name}  (reused)" in out
    after = _records(run)
    assert all(after[name] == before[name] for name in finished_before)  # records untouched: not redone
    assert weights == {name: (run / name / "model" / "model.safetensors").stat().st_mtime_ns for name in finished_before}
    record = json.loads(after[stage])
    assert record["status"] == "done" and record["result"]["resumed_from_epoch"] == 2
    assert "resuming from checkpoint epoch_0002" in (run / stage / "log.txt").read_text()
    assert not (run / stage / "checkpoints").exists()  # removed once the artifact was written
    history = json.loads((run / stage / "model" / "meta.json").read_text())
    if stage == "distill":
        assert len(history["history"]) == 3  # the two epochs before the kill come from the checkpoint
        # continuing from the checkpoint ends where an uninterrupted run ends
        run_recipe(recipe, tmp_path / "uninterrupted", report=False)
        resumed = load_file(run / stage / "model" / "model.safetensors")
        uninterrupted = load_file(tmp_path / "uninterrupted" / stage / "model" / "model.safetensors")
        assert resumed.keys() == uninterrupted.keys()
        assert all(torch.allclose(resumed[key], uninterrupted[key], atol=1e-6) for key in resumed)
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
    assert "resuming from checkpoint epoch_0001" in log


def test_a_finished_stage_whose_output_was_deleted_is_redone(tmp_path):
    import shutil

    recipe = write_recipe(tmp_path)
    run = tmp_path / "run"
    run_recipe(recipe, run, report=False)
    shutil.rmtree(run / "prune" / "model")
    assert [s["status"] for s in run_recipe(recipe, run, report=False)["stages"]] == ["reused", "ran", "ran"]

"""export, ckpt-compress and a teacher given as a model source, each through the verb's library function."""

import json

import onnx

from slimvision.ckpt.excp import inspect
from slimvision.pipeline.runner import run_recipe
from tests.pipeline.conftest import write_recipe

STAGES = """\
  - {stage: distill, name: from_file, input: prune, teacher: 'models.py:build', teacher_kwargs: {width: 8}, loss: kd, epochs: 1}
  - {stage: export, input: distill}
  - {stage: ckpt-compress}
"""


def test_export_ckpt_compress_and_a_file_teacher(tmp_path):
    recipe = write_recipe(tmp_path, distill_epochs=1, extra_stages=STAGES)
    run = tmp_path / "run"
    result = run_recipe(recipe, run)
    assert [s["status"] for s in result["stages"]] == ["ran"] * 6
    onnx.checker.check_model(str(run / "export" / "model.onnx"))
    archive = inspect(run / "ckpt-compress" / "checkpoints.svckpt")
    checkpoints = sorted(p.name for p in (run / "train" / "model" / "checkpoints").iterdir())
    assert [c["name"] for c in archive["checkpoints"]] == checkpoints and checkpoints
    teacher = json.loads((run / "from_file" / "model" / "meta.json").read_text())["distill"]["teacher"]
    assert teacher.endswith("models.py:build")
    assert [row["stage"] for row in result["summary"]] == ["train", "prune", "distill", "from_file"]

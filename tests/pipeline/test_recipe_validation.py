"""A broken recipe fails before its first stage starts, with the key path of what is wrong."""

import pytest

from tests.pipeline.conftest import write_recipe

BROKEN = {
    "unknown stage": ("  - {stage: shrink}\n", "stages[3]: unknown stage 'shrink'"),
    "unknown option": ("  - {stage: quantize, backnd: onnxruntime}\n", "stages[3].quantize.backnd: Extra inputs are not permitted"),
    "bad value": ("  - {stage: quantize, backend: tpu}\n", "stages[3].quantize: unknown backend 'tpu'"),
    "bad ratio": ("  - {stage: prune, name: p2, macs_ratio: 1.5}\n", "stages[3].prune: --macs-ratio must be in (0, 1]"),
    "missing teacher file": ("  - {stage: distill, name: d2, teacher: 'nowhere.py:build'}\n", "stages[3].distill.teacher: model file not found"),
    "teacher runs later": ("  - {stage: distill, name: d2, teacher: q}\n  - {stage: quantize, name: q}\n", "stages[3].distill.teacher: stage 'q' runs later"),
    "duplicate name": ("  - {stage: prune, macs_ratio: 0.5}\n", "stages[3].prune: a stage named 'prune' already exists"),
    "input not a model": ("  - {stage: quantize, name: q}\n  - {stage: export, input: q}\n", "stages[4].export.input: 'q' is not an earlier"),
    "search without supernet": ("  - {stage: search, evaluator: oneshot}\n", "stages[3].search.supernet: the 'oneshot' evaluator needs a supernet"),
    "unknown evaluator": ("  - {stage: supernet}\n  - {stage: search, evaluator: oracle}\n", "stages[4].search: unknown evaluator 'oracle'"),
    "unknown strategy": ("  - {stage: supernet}\n  - {stage: search, strategy: guess}\n", "stages[4].search: unknown strategy 'guess'"),
    "supernet not a supernet": ("  - {stage: search, supernet: prune}\n", "stages[3].search.supernet: stage 'prune' is not a supernet stage"),
    "derive without search": ("  - {stage: derive}\n", "stages[3].derive: needs an earlier search stage"),
    "derive from a model": ("  - {stage: supernet}\n  - {stage: search}\n  - {stage: derive, input: prune}\n", "stages[5].derive.input: 'prune' is not an earlier search stage"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_recipe_broken_in_a_late_stage_fails_before_the_first_stage_runs(tmp_path, cli, case):
    stage, message = BROKEN[case]
    recipe = write_recipe(tmp_path, extra_stages=stage)
    code, _, err = cli("optimize", recipe, "--out", tmp_path / "run")
    assert code == 1
    assert message in " ".join(err.split()), err
    assert str(recipe) in " ".join(err.split())  # the file is named
    assert not (tmp_path / "run").exists()  # nothing ran, nothing written


def test_missing_model_file_and_data_root_are_named(tmp_path, cli):
    recipe = write_recipe(tmp_path)
    (tmp_path / "models.py").unlink()
    code, _, err = cli("optimize", recipe, "--out", tmp_path / "run")
    assert code == 1 and "model: model file not found" in err and "models.py" in err
    recipe.write_text(recipe.read_text().replace("model: models.py:build", "model: resnet20").replace("name: synthetic", "name: cifar10, root: no_such_dir"))
    code, _, err = cli("optimize", recipe, "--out", tmp_path / "run")
    assert code == 1 and "data.root: directory not found" in " ".join(err.split())


def test_force_must_name_a_stage_of_the_recipe(tmp_path, cli):
    recipe = write_recipe(tmp_path)
    code, _, err = cli("optimize", recipe, "--out", tmp_path / "run", "--force", "pruen")
    assert code == 1 and "--force 'pruen'" in err and "train, prune, distill" in err
    assert not (tmp_path / "run").exists()


def test_invalid_yaml_names_the_line(tmp_path, cli):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("data: {name: digits\nstages: [\n")
    code, _, err = cli("optimize", recipe, "--out", tmp_path / "run")
    assert code == 1 and "is not valid YAML" in err and "line" in err


def test_a_run_directory_around_the_recipe_file_is_refused(tmp_path, cli):
    folder = tmp_path / "project"
    folder.mkdir()
    recipe = folder / "recipe.yaml"
    text = "model: resnet20\ndata: {name: synthetic, image_size: 8}\nstages:\n  - {stage: train, epochs: 1}\n"
    recipe.write_text(text)
    for out in (folder, tmp_path):  # the recipe's own folder, or any folder above it
        code, _, err = cli("optimize", recipe, "--out", out)
        assert code == 1
        assert f"--out {out} overlaps the input {recipe}" in " ".join(err.split()), err
    assert recipe.read_text() == text  # not replaced by the run's validated copy
    assert not (folder / "train").exists()

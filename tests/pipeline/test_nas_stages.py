"""supernet -> search -> derive as recipe stages: the derived Pareto point is the model the next stage takes."""

import json
from pathlib import Path

import yaml

from slimvision.pipeline.recipe import load_recipe, recipe_from_dict
from slimvision.pipeline.runner import plan_run, report_run, run_recipe

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nas_derive_quantize.yaml"


def test_the_nas_example_validates_with_its_stages_in_order():
    recipe = load_recipe(EXAMPLE)
    assert [stage.stage for stage in recipe.stages] == ["supernet", "search", "derive", "distill", "quantize"]
    assert recipe.model is None  # the model comes out of the search


def _tiny_example() -> dict:
    """The example recipe, shrunk to seconds: synthetic 8x8 data, one supernet epoch, three random trials."""
    data = yaml.safe_load(EXAMPLE.read_text())
    data["data"] = {"name": "synthetic", "image_size": 8}
    data["threads"] = 1
    supernet, search, derive, _, quantize = data["stages"]
    supernet.update(epochs=1, sampler="uniform")
    search.update(strategy="random", trials=3, max_macs="50M")
    quantize.update(backend="onnxruntime", calib_samples=32)
    data["stages"] = [supernet, search, derive, quantize]  # no fine-tuning: the quantize stage reads the derived model itself
    return data


def test_search_then_derive_gives_the_best_pareto_point_to_the_next_stage(tmp_path):
    recipe = recipe_from_dict(_tiny_example(), "tiny nas recipe")
    run = tmp_path / "run"
    result = run_recipe(recipe, run, report=False)
    assert [s["status"] for s in result["stages"]] == ["ran"] * 4

    front = json.loads((run / "search" / "results" / "pareto.json").read_text())["front"]
    best = max(range(len(front)), key=lambda i: front[i]["score"])
    derived = json.loads((run / "derive" / "model" / "meta.json").read_text())
    assert derived["nas"]["index"] == best and derived["nas"]["point"]["arch"] == front[best]["arch"]
    assert derived["parent"] == str(run / "supernet" / "model")  # weights inherited from the stage's supernet
    record = json.loads((run / "derive" / "stage.json").read_text())["result"]
    assert record["index"] == best and record["inherited"]

    plans = plan_run(recipe, run)
    assert all(plan.done for plan in plans)  # a rerun would redo nothing
    assert plans[3].model == str(run / "derive" / "model")  # quantize takes the derived model
    rows = report_run(run, rounds=1, repeats=2)
    assert [row["stage"] for row in rows] == ["derive", "quantize"]
    assert rows[0]["macs"] == front[best]["macs"]  # the derived model is the searched point, measured again

    # another Pareto point redoes derive and what follows, not the supernet or the search
    data = _tiny_example()
    data["stages"][2]["index"] = (best + 1) % len(front)
    if len(front) > 1:
        statuses = [s["status"] for s in run_recipe(recipe_from_dict(data, "tiny"), run, report=False)["stages"]]
        assert statuses == ["reused", "reused", "ran", "ran"]

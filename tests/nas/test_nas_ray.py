import json

import pytest

from slimvision.nas import SPACES, create_evaluator
from slimvision.nas.strategies import Constraints, SearchConfig, run_search

ray = pytest.importorskip("ray")  # the [test] extra installs ray[tune]; this only guards bare installs

CONTEXT = {"data": "digits", "image_size": 8, "seed": 0}


@pytest.fixture(scope="module")
def ray_session():
    # One local Ray for the module (starting it takes seconds); the first evaluator starts it with 2 CPUs.
    yield
    ray.shutdown()


def _records(out):
    return [json.loads(line) for line in (out / "evaluations.jsonl").read_text().splitlines()]


def _sequential_scores(evaluator, records):
    sequential = create_evaluator(evaluator, SPACES.get("cell")(), **CONTEXT)
    return [sequential.score(r["arch"]) for r in records]


def test_ray_evaluator_runs_one_tune_run_per_batch_and_returns_scores_in_arch_order(tmp_path, ray_session):
    from slimvision.nas.ray_backend import RayTuneEvaluator

    space = SPACES.get("cell")()
    judge = RayTuneEvaluator(space, "params", CONTEXT, tmp_path / "s" / "ray", address="local", workers=2)
    front = run_search(space, judge, Constraints(), SearchConfig("random", trials=6, population=3, image_size=8, in_chans=1), tmp_path / "s")
    records = _records(tmp_path / "s")
    assert len(records) == 6 and len({space.encode(r["arch"]) for r in records}) == 6 and front
    assert judge.batches == 2 and sorted(p.name for p in (tmp_path / "s" / "ray").iterdir()) == ["batch_00001", "batch_00002"]
    assert len({r["score"] for r in records}) == 6  # all different, so a score handed to the wrong arch would show
    assert [r["score"] for r in records] == pytest.approx(_sequential_scores("params", records), rel=1e-6)


def test_cli_evolution_on_two_local_ray_workers_scores_like_the_sequential_evaluator(cli, tmp_path, ray_session):
    code, out, err = cli("search", "--space", "cell", "--evaluator", "synflow", "--strategy", "evolution", "--trials", "6", "--population", "3",
                         "--image-size", "8", "--ray-address", "local", "--ray-workers", "2", "--out", tmp_path / "s", "--json")
    assert code == 0, err
    records = _records(tmp_path / "s")
    assert len(records) == 6 and len({json.dumps(r["arch"], sort_keys=True) for r in records}) == 6
    assert (tmp_path / "s" / "ray" / "batch_00002").is_dir()  # initial population, then one generation of 3 children
    assert [r["score"] for r in records] == pytest.approx(_sequential_scores("synflow", records), rel=1e-6)
    assert json.loads(out)  # a measured Pareto front, and nothing else on stdout

import json

import pytest

ray = pytest.importorskip("ray")  # the [test] extra installs ray[tune]; this only guards bare installs


@pytest.fixture()
def ray_session():
    yield
    ray.shutdown()


def test_ray_tune_scores_a_batch_on_two_local_workers_like_the_sequential_evaluator(cli, tmp_path, ray_session):
    from slimvision.nas import SPACES, create_evaluator

    code, out, err = cli("search", "--space", "cell", "--evaluator", "synflow", "--strategy", "random", "--trials", "4", "--population", "4",
                         "--image-size", "8", "--ray-address", "local", "--ray-workers", "2", "--out", tmp_path / "s", "--json")
    assert code == 0, err
    records = [json.loads(line) for line in (tmp_path / "s" / "evaluations.jsonl").read_text().splitlines()]
    assert len(records) == 4 and (tmp_path / "s" / "ray" / "batch_00001").is_dir()
    space = SPACES.get("cell")()
    sequential = create_evaluator("synflow", space, data="digits", image_size=8, seed=0)
    assert [r["score"] for r in records] == pytest.approx([sequential.score(r["arch"]) for r in records], rel=1e-6)
    assert json.loads(out)  # a measured Pareto front

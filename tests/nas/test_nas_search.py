import json
from pathlib import Path

import pytest

from slimvision.config import parse_count
from slimvision.errors import ConfigError
from slimvision.nas.evaluator import EVALUATORS, Evaluator
from slimvision.nas.spaces.mbv2 import Mbv2Space
from slimvision.nas.strategies import Constraints, SearchConfig, run_search

SPACE = Mbv2Space()


class MacsHungry(Evaluator):
    """A cheap deterministic evaluator: bigger nets score higher (so constraints bind)."""

    name = "macs-hungry"

    def __init__(self, space, **_):
        super().__init__(space)
        self.calls = 0

    def score(self, arch):
        self.calls += 1
        return self.space.macs(arch) / 1e8


@pytest.mark.parametrize("strategy", ["random", "evolution", "tpe", "nsga2"])
def test_every_front_point_meets_the_measured_constraints(strategy, tmp_path):
    config = SearchConfig(strategy=strategy, trials=12, population=6, seed=0, in_chans=1)
    front = run_search(SPACE, MacsHungry(SPACE), Constraints(max_macs=parse_count("30M"), max_params=parse_count("400k")), config, tmp_path)
    assert front
    for point in front:
        assert point["macs"] <= 30e6 and point["params"] <= 400e3 and point["latency_ms"] > 0
    saved = json.loads((tmp_path / "pareto.json").read_text())
    assert saved["n_evaluated"] >= 12 and (tmp_path / "pareto.png").is_file()


def test_search_resumes_without_re_evaluating(tmp_path):
    evaluator = MacsHungry(SPACE)
    run_search(SPACE, evaluator, Constraints(max_macs=40e6), SearchConfig("evolution", trials=8, population=4, in_chans=1), tmp_path)
    first_calls = evaluator.calls
    again = MacsHungry(SPACE)
    run_search(SPACE, again, Constraints(max_macs=40e6), SearchConfig("evolution", trials=12, population=4, in_chans=1), tmp_path)
    assert first_calls == 8 and again.calls == 4  # only the 4 new trials are evaluated


def test_a_search_refuses_to_resume_a_log_scored_another_way(tmp_path, monkeypatch):
    from slimvision.nas.evaluator import scoring_settings

    def evaluator(**context):
        judge = MacsHungry(SPACE)
        judge.settings = scoring_settings("macs-hungry", context)
        return judge

    def search(judge, trials):
        return run_search(SPACE, judge, Constraints(max_macs=40e6), SearchConfig("evolution", trials=trials, population=4, in_chans=1), tmp_path / "s")

    search(evaluator(seed=0, supernet=tmp_path / "sn"), 4)
    log = (tmp_path / "s" / "evaluations.jsonl").read_text()
    other = evaluator(seed=1, supernet=tmp_path / "sn")
    with pytest.raises(ConfigError, match="seed 0 -> 1"):
        search(other, 8)
    assert other.calls == 0 and (tmp_path / "s" / "evaluations.jsonl").read_text() == log
    monkeypatch.chdir(tmp_path)  # the same supernet named by a relative path is the same setting
    same = evaluator(seed=0, supernet=Path("sn"))
    search(same, 8)
    assert same.calls == 4


def test_create_evaluator_records_its_name_and_context_as_its_scoring_settings():
    from slimvision.nas import create_evaluator

    assert create_evaluator("naswot", SPACE, data="digits", image_size=8, seed=3).settings == {"evaluator": "naswot", "data": "digits", "image_size": 8, "seed": 3}


class BatchRecorder(MacsHungry):
    """A parallel-looking evaluator that remembers every batch it was handed."""

    workers = 3

    def __init__(self, space, **_):
        super().__init__(space)
        self.batches = []

    def score_many(self, archs):
        self.batches.append([self.space.encode(a) for a in archs])
        return super().score_many(archs)


def test_evaluate_many_scores_each_new_arch_once_in_one_call(tmp_path):
    from slimvision.nas.strategies import Search

    search = Search(SPACE, BatchRecorder(SPACE), Constraints(), SearchConfig("random", in_chans=1), tmp_path)
    first, second = SPACE.smallest(), SPACE.largest()
    records = search.evaluate_many([first, second, first])
    assert [r["arch"] for r in records] == [first, second, first] and len(search.evaluator.batches) == 1
    search.evaluate_many([second])  # known: no call
    assert search.evaluator.batches == [[SPACE.encode(first), SPACE.encode(second)]]
    assert len((tmp_path / "evaluations.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("strategy", ["random", "evolution", "tpe", "nsga2"])
def test_batched_strategies_evaluate_exactly_trials_distinct_archs_in_batches_of_population(strategy, tmp_path):
    evaluator = BatchRecorder(SPACE)
    config = SearchConfig(strategy, trials=10, population=4, seed=1, in_chans=1)
    run_search(SPACE, evaluator, Constraints(max_macs=30e6), config, tmp_path)
    scored = [key for batch in evaluator.batches for key in batch]
    assert len(scored) == len(set(scored)) <= 10 and all(len(batch) <= (3 if strategy == "tpe" else 4) for batch in evaluator.batches)
    if strategy in ("random", "evolution"):  # optuna may propose an arch it already has: counted, not re-scored
        assert len(scored) == 10 and len(evaluator.batches) == 3  # 4 + 4 + 2
    lines = (tmp_path / "evaluations.jsonl").read_text().splitlines()
    assert len(lines) == len(scored) and all(json.loads(line)["macs"] <= 30e6 for line in lines)


@pytest.mark.parametrize("strategy", ["random", "evolution"])
def test_search_stops_when_every_feasible_arch_is_evaluated(strategy, tmp_path):
    from slimvision.nas.spaces.cell import CellSpace

    class ThreeArchs(CellSpace):
        def choices(self):
            return {name: values[:3] if name == "e1_0" else values[:1] for name, values in super().choices().items()}

    space = ThreeArchs()
    run_search(space, MacsHungry(space), Constraints(), SearchConfig(strategy, trials=10, population=2, image_size=8), tmp_path)
    assert len((tmp_path / "evaluations.jsonl").read_text().splitlines()) == 3


def test_optuna_study_resumes_from_storage(tmp_path):
    evaluator = MacsHungry(SPACE)
    run_search(SPACE, evaluator, Constraints(max_macs=40e6), SearchConfig("tpe", trials=5, in_chans=1), tmp_path)
    again = MacsHungry(SPACE)
    run_search(SPACE, again, Constraints(max_macs=40e6), SearchConfig("tpe", trials=8, in_chans=1), tmp_path)
    import optuna

    study = optuna.load_study(study_name="slimvision-tpe", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]) == 8


def test_latency_constraint_uses_a_measured_lookup_table(tmp_path):
    from slimvision.nas.latency_lut import LatencyTable

    config = SearchConfig("random", trials=6, in_chans=1, image_size=16)
    # the limit sits between the smallest and the largest subnet's predicted latency, so it excludes part of the space
    lut = LatencyTable(tmp_path / "latency_lut.json", config.image_size, config.in_chans, config.threads, space=SPACE)
    smallest, largest = lut.predict_ms(SPACE.smallest()), lut.predict_ms(SPACE.largest())
    assert largest > 1.5 * smallest
    limit = (smallest + largest) / 2
    front = run_search(SPACE, MacsHungry(SPACE), Constraints(max_latency_ms=limit), config, tmp_path)
    table = json.loads((tmp_path / "latency_lut.json").read_text())
    assert any(key.startswith("block/") for key in table) and all(v > 0 for v in table.values())
    evaluated = [json.loads(line) for line in (tmp_path / "evaluations.jsonl").read_text().splitlines()]
    assert evaluated and all(r["latency_ms_lut"] <= limit for r in evaluated)
    assert all(p["latency_ms"] <= limit for p in front)


def test_impossible_budget_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no architecture in the space meets the constraints"):
        run_search(SPACE, MacsHungry(SPACE), Constraints(max_macs=1e6), SearchConfig("random", trials=2, in_chans=1), tmp_path)


def test_cli_search_with_train_evaluator_and_derive(cli, tmp_path, monkeypatch):
    from slimvision.nas import evaluators

    trained_epochs = []

    class RecordingTrainer(evaluators.Trainer):
        def __init__(self, model, train, val, config):
            trained_epochs.append(config.epochs)
            super().__init__(model, train, val, config)

    monkeypatch.setattr(evaluators, "Trainer", RecordingTrainer)
    code, out, err = cli(
        "search", "--space", "mbv2", "--strategy", "random", "--evaluator", "train", "--epochs", "1", "--image-size", "8",
        "--trials", "2", "--max-macs", "8M", "--out", tmp_path / "s", "--json",
    )
    assert code == 0, err
    assert trained_epochs == [1, 1]  # --epochs reaches each candidate's stand-alone training
    front = json.loads(out)
    assert front and all(p["macs"] <= 8e6 for p in front)
    code, _, err = cli("derive", tmp_path / "s" / "pareto.json", "--index", "0", "--out", tmp_path / "m")
    assert code == 0, err
    # derived without a supernet, the artifact still records the search's data, so profile needs no --input-size
    data = json.loads((tmp_path / "m" / "meta.json").read_text())["data"]
    assert (data["name"], data["in_chans"], data["image_size"]) == ("digits", 1, 8)
    code, out, err = cli("profile", tmp_path / "m", "--repeats", "2", "--json")
    assert code == 0, err
    assert json.loads(out)["macs"] <= 8e6 and json.loads(out)["input_size"] == [1, 8, 8]
    code, _, err = cli("search", "--evaluator", "oneshot", "--trials", "1", "--out", tmp_path / "x")
    assert code == 1 and "--supernet" in err
    code, _, err = cli("search", "--evaluator", "naswot", "--epochs", "2", "--trials", "1", "--out", tmp_path / "y")
    assert code == 1 and "--evaluator naswot trains nothing" in err and not (tmp_path / "y").exists()


def test_unknown_evaluator_lists_known_ones():
    with pytest.raises(ConfigError, match="known:"):
        EVALUATORS.get("psychic")

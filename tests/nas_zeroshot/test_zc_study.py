import json
import random

import numpy as np
import pytest

from slimvision.nas.correlation import ranking_metrics
from slimvision.nas.spaces.cell import CellSpace, arch_to_string


def test_ranking_metrics_hand_values():
    truth = np.arange(10, dtype=float)
    perfect = ranking_metrics(truth * 3, truth)
    assert perfect["kendall_tau"] == pytest.approx(1) and perfect["p_at_top10"] == 1 and perfect["best_ranking_at10"] == 0
    reverse = ranking_metrics(-truth, truth)
    assert reverse["spearman"] == pytest.approx(-1) and reverse["p_at_top10"] == 0 and reverse["worst_ranking_at10"] == 1


def _table(tmp_path, n=40):
    space = CellSpace()
    rng = random.Random(0)
    archs = {arch_to_string(a): a for a in (space.sample(rng) for _ in range(n * 2))}
    rows = []
    for text, arch in list(archs.items())[:n]:
        conv = sum(op.startswith("conv") for op in arch.values())  # a synthetic, learnable ground truth
        rows.append({"arch": text, "accuracy": 0.5 + 0.05 * conv + 0.001 * rng.random()})
    path = tmp_path / "table.json"
    path.write_text(json.dumps(rows))
    return path


def test_correlate_cli_json_contract_and_predictor_holds_out_training_archs(cli, tmp_path):
    path = _table(tmp_path)
    code, out, err = cli("nas", "correlate", "--bench", str(path), "--evaluators", "params,predictor-mlp", "--n-train", "20",
                         "--bootstrap", "20", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["n_archs"] == 40
    params, predictor = data["evaluators"]["params"], data["evaluators"]["predictor-mlp"]
    for key in ("kendall_tau", "spearman", "pearson", "p_at_top10", "ci95"):
        assert key in params
    assert params["kendall_tau"] > 0.5  # params grows with the number of convs, which drives this synthetic accuracy
    assert predictor["n_eval"] == 20 and predictor["kendall_tau"] > 0.5


def test_correlate_rejects_unknown_evaluator(cli, tmp_path):
    code, out, err = cli("nas", "correlate", "--bench", str(_table(tmp_path)), "--evaluators", "params,oneshot_typo")
    assert code == 1 and "oneshot_typo" in err


def test_zero_shot_search_respects_the_macs_limit(tmp_path):
    from slimvision.measure import count_macs
    from slimvision.nas import create_evaluator
    from slimvision.nas.strategies import Constraints, SearchConfig, run_search

    space = CellSpace()
    evaluator = create_evaluator("params", space)
    limit = 200_000
    front = run_search(space, evaluator, Constraints(max_macs=limit), SearchConfig("evolution", 120, 20, 0, 8, 1), tmp_path)
    records = [json.loads(line) for line in (tmp_path / "evaluations.jsonl").read_text().splitlines()]
    assert len(records) == 120 and len({space.encode(r["arch"]) for r in records}) == 120
    assert all(count_macs(space.build(r["arch"], 10, 1), (1, 8, 8)) == r["macs"] <= limit for r in records[:30])
    # with params as the score, the best feasible arch found must head the front's top end
    assert front[-1]["score"] == max(r["score"] for r in records)

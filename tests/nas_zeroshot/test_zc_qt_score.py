import json

import pytest

from slimvision.errors import ConfigError
from slimvision.nas import SPACES
from slimvision.nas.evaluator import Evaluator
from slimvision.nas.qt_score import QTConfig, qt_score


class CountingEvaluator(Evaluator):
    """Scores the i-th scored arch with i (1, 2, 3, ...)."""

    def __init__(self, space):
        super().__init__(space)
        self.calls = 0

    def score(self, arch):
        self.calls += 1
        return float(self.calls)


def test_qt_score_averages_the_top_k_within_each_limit_by_hand(monkeypatch):
    latencies = iter([(3.0, 1.0), (1.0, 1.0), (2.0, 1.0), (0.5, 1.0)])  # int8, fp32 ms of archs scored 1, 2, 3, 4
    monkeypatch.setattr("slimvision.nas.qt_score.int8_latency_ms", lambda *args: next(latencies))
    space = SPACES.get("cell")()
    result = qt_score(space, CountingEvaluator(space), QTConfig((0.4, 1.0, 2.5), samples=4, top_k=2, image_size=8), progress=False)
    # limit 0.4: nothing fits -> worst score 1; limit 1.0: archs 2 and 4 -> 3; limit 2.5: archs 4 and 3 -> 3.5
    assert result.per_limit == {"0.4": 1.0, "1": 3.0, "2.5": 3.5}
    assert result.score == pytest.approx((1.0 + 3.0 + 3.5) / 3)


def test_qt_score_cli_measures_real_int8_latency(cli):
    code, out, err = cli("nas", "qt-score", "--space", "cell", "--evaluator", "params", "--latency-ms", "1000", "--samples", "2", "--image-size", "8", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert len(data["archs"]) == 2 and all(row["int8_ms"] > 0 and row["fp32_ms"] > 0 for row in data["archs"])
    assert data["qt_score"] == pytest.approx(sum(row["score"] for row in data["archs"]) / 2)  # a 1 s limit admits both


def test_qt_score_rejects_an_empty_limit_list():
    space = SPACES.get("cell")()
    with pytest.raises(ConfigError, match="latency limit"):
        qt_score(space, CountingEvaluator(space), QTConfig((), samples=2), progress=False)

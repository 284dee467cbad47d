"""The fixed-backend rows of `quantize` are timed in interleaved rounds, not one runtime after the other."""

import numpy as np

from slimvision.quant.runtimes import interleaved_latency_ms


class RecordingRuntime:
    def __init__(self, name: str, calls: list):
        self.name, self.calls = name, calls

    def run(self, batch):
        self.calls.append(self.name)
        return np.zeros((len(batch), 2), np.float32)


def test_every_runtime_is_timed_in_every_round_in_rotated_order():
    calls: list = []
    runtimes = [RecordingRuntime(name, calls) for name in "abc"]
    latencies = interleaved_latency_ms(runtimes, (1, 2, 2), batch_sizes=(1,), warmup=1, repeats=6, rounds=3)
    assert [sorted(latency) for latency in latencies] == [["1"]] * 3
    timed = calls[3:]  # after one warm-up call each
    rounds = [timed[i : i + 6] for i in range(0, len(timed), 6)]  # 3 runtimes x 2 calls per round
    assert len(rounds) == 3
    assert [r[::2] for r in rounds] == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]

import torch
import torch.nn as nn

from slimvision.data import get_dataset
from slimvision.measure import accuracy, count_macs, count_params, measure_latency, peak_forward_memory_bytes, profile


def test_macs_of_a_hand_counted_net():
    # conv: 3->4, 3x3, 8x8 output: 4*3*9*64 = 6912 MACs; linear 4->2: 8 MACs
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    assert count_macs(net, (3, 8, 8)) == 6912 + 8
    assert count_params(net) == 4 * 3 * 9 + 4 * 2 + 2


def test_latency_stats_are_ordered():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    stats = measure_latency(net, (3, 16, 16), batch_size=4, warmup=1, repeats=5)
    assert 0 < stats.median_ms <= stats.p90_ms


def test_peak_memory_grows_with_batch():
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1))
    one = peak_forward_memory_bytes(net, (3, 16, 16), 1)
    eight = peak_forward_memory_bytes(net, (3, 16, 16), 8)
    activation = 16 * 16 * 16 * 4  # one 16x16x16 float map per image must be live at the peak
    assert one >= activation
    assert eight - one >= 7 * activation


def test_profile_records_conditions_and_json_keys():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten())
    p = profile(net, (1, 8, 8), name="tiny", threads=1, repeats=3, warmup=1).to_dict()
    for key in ("params", "macs", "latency_ms", "threads", "input_size", "peak_memory_bytes"):
        assert key in p
    assert set(p["latency_ms"]) == {"1", "32"} and p["threads"] == 1


def test_accuracy_of_a_perfect_and_a_constant_model():
    data = get_dataset("synthetic", "val", 8, num_samples=50, num_classes=5, in_chans=1)

    class Oracle(nn.Module):
        def __init__(self):
            super().__init__()
            self.dummy = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            # look the label up by exact image match
            idx = [(data.images == img).flatten(1).all(1).nonzero()[0, 0] for img in x]
            return torch.nn.functional.one_hot(data.labels[idx], 5).float()

    assert accuracy(Oracle(), data) == 1.0
    constant = nn.Sequential(nn.Flatten(), nn.Linear(64, 5))
    nn.init.zeros_(constant[1].weight)
    with torch.no_grad():
        constant[1].bias.copy_(torch.tensor([0, 0, 1.0, 0, 0]))
    assert accuracy(constant, data) == (data.labels == 2).sum().item() / len(data)

"""Measurement: params, MACs, latency, peak memory, accuracy; `profile()` bundles them."""

from slimvision.measure.accuracy import accuracy, evaluate_accuracy
from slimvision.measure.complexity import count_macs, count_params
from slimvision.measure.latency import LatencyStats, measure_latency, pinned_threads, time_callable
from slimvision.measure.memory import peak_forward_memory_bytes
from slimvision.measure.profile import Profile, profile

__all__ = [
    "accuracy", "evaluate_accuracy", "count_macs", "count_params", "LatencyStats", "measure_latency",
    "pinned_threads", "time_callable", "peak_forward_memory_bytes", "Profile", "profile",
]

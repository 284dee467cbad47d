"""CPU latency of resnet56 (option-A) before and after L1 pruning to 40% of its MACs, same process.

Median of 5 rounds x (median of 30 runs after 5 warm-up) per batch size and thread count.
Run it on an otherwise idle machine. Writes benchmarks/results/prune_latency.md (+ .json).

    python benchmarks/prune_latency.py
"""

from __future__ import annotations

import statistics
import time

import torch

from _common import conditions, conditions_markdown, markdown_table, write_results
from slimvision.measure import count_macs, measure_latency, pinned_threads
from slimvision.models import create_model
from slimvision.prune import PruneConfig, prune


def main() -> None:
    start = time.perf_counter()
    torch.manual_seed(0)
    model = create_model("resnet56").eval()
    pruned = prune(model, torch.zeros(1, 3, 32, 32), PruneConfig(method="l1", macs_ratio=0.4)).model.eval()
    kept = count_macs(pruned, (3, 32, 32)) / count_macs(model, (3, 32, 32))
    rows, data = [], {"macs_kept": kept, "latency_ms": {}}
    for threads in (1, 2):
        with pinned_threads(threads):
            for batch in (1, 32):
                base, small = [], []
                for _ in range(5):  # interleave rounds so drifts in machine load hit both models alike
                    base.append(measure_latency(model, (3, 32, 32), batch, 5, 30).median_ms)
                    small.append(measure_latency(pruned, (3, 32, 32), batch, 5, 30).median_ms)
                b, s = statistics.median(base), statistics.median(small)
                rows.append([threads, batch, f"{b:.2f}", f"{s:.2f}", f"{b / s:.2f}x"])
                data["latency_ms"][f"{threads}t/bs{batch}"] = {"unpruned": b, "pruned": s}
                print(rows[-1], flush=True)
    md = [
        "# Pruned resnet56: measured CPU speed-up",
        "",
        f"resnet56 (option-A shortcuts, 853,018 params) pruned with L1, uniform, `--macs-ratio 0.4`: MACs kept **{kept:.4f}** "
        f"(target 0.4, error {100 * abs(kept / 0.4 - 1):.2f}%). fp32 eager, 3x32x32 inputs.",
        "",
        markdown_table(["threads", "batch", "unpruned ms", "pruned ms", "speed-up"], rows),
        "",
        *conditions_markdown(conditions(torch.get_num_threads()), time.perf_counter() - start),
    ]
    write_results("prune_latency", "\n".join(md), data)
    print("\n".join(md))


if __name__ == "__main__":
    main()

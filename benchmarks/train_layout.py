"""Training step time with NCHW vs channels-last (NHWC) memory layout on this CPU (`TrainConfig.channels_last`).

For each model, interleaved rounds (NCHW, NHWC, then NHWC, NCHW, ...) each time `--steps` SGD steps per layout
on a fixed batch of 64; the speed-up is the median over rounds of the per-round ratio of median step times.
Threads are pinned (`--threads`, default 1). Writes benchmarks/results/train_layout.md (+ .json).

    python benchmarks/train_layout.py [--rounds 7] [--steps 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _common import conditions, conditions_markdown, markdown_table, write_results
from nas_oneshot import spread_archs

from slimvision.measure import pinned_threads
from slimvision.models import create_model
from slimvision.nas.spaces.cell import CellSpace, arch_from_string
from slimvision.nas.spaces.mbv2 import Mbv2Space

CELL_ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|"


def cases() -> dict[str, tuple]:
    """name -> (model builder, input side)"""
    mbv2, mid = Mbv2Space(), spread_archs(Mbv2Space(), 20)[10]
    return {
        "resnet20": (lambda: create_model("resnet20", num_classes=10, in_chans=3), 32),
        "mobilenetv2_cifar": (lambda: create_model("mobilenetv2_cifar", num_classes=10, in_chans=3), 32),
        "mbv2 subnet (one-shot study #10)": (lambda: mbv2.build(mid, 10, 3), 32),
        "mbv2 subnet (one-shot study #10), 16 px": (lambda: mbv2.build(mid, 10, 3), 16),
        "cell (C=8), 16 px": (lambda: CellSpace().build(arch_from_string(CELL_ARCH), 10, 3), 16),
    }


def step_ms(model: torch.nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor, steps: int) -> float:
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    start = time.perf_counter()
    rows, records = [], {}
    with pinned_threads(args.threads):
        for name, (build, side) in cases().items():
            torch.manual_seed(0)
            images, labels = torch.randn(64, 3, side, side), torch.randint(0, 10, (64,))
            runs = {}
            for layout in ("nchw", "nhwc"):
                torch.manual_seed(0)
                model = build().train()
                batch = images
                if layout == "nhwc":
                    model.to(memory_format=torch.channels_last)
                    batch = images.contiguous(memory_format=torch.channels_last)
                optimizer = torch.optim.SGD(model.parameters(), 0.05, momentum=0.9)
                step_ms(model, optimizer, batch, labels, 2)  # warm-up: oneDNN primitives are created on first use
                runs[layout] = (model, optimizer, batch)
            times = {"nchw": [], "nhwc": []}
            for round_index in range(args.rounds):
                for layout in (("nchw", "nhwc") if round_index % 2 == 0 else ("nhwc", "nchw")):
                    times[layout].append(step_ms(*runs[layout], labels, args.steps))
            speedup = statistics.median(a / b for a, b in zip(times["nchw"], times["nhwc"]))
            records[name] = {"side": side, "nchw_ms": times["nchw"], "nhwc_ms": times["nhwc"], "speedup": speedup}
            rows.append([name, f"{statistics.median(times['nchw']):.1f}", f"{statistics.median(times['nhwc']):.1f}", f"{speedup:.2f}x"])
            print(rows[-1], flush=True)
    cond = conditions(args.threads)
    md = [
        "# Training step time: NCHW vs channels-last (NHWC)",
        "",
        f"SGD steps on a batch of 64 random images; {args.rounds} interleaved rounds of {args.steps} steps per layout; "
        "speed-up = median over rounds of (NCHW median step / NHWC median step).",
        "",
        markdown_table(["model", "NCHW ms/step", "NHWC ms/step", "NHWC speed-up"], rows),
        "",
        *conditions_markdown(cond, time.perf_counter() - start),
    ]
    write_results("train_layout", "\n".join(md), {"rounds": args.rounds, "steps": args.steps, "models": records, "conditions": cond})
    print("\n".join(md))


if __name__ == "__main__":
    main()

"""Model sweep: real torchvision/timm architectures through prune -> save -> reload, at 224x224.

Per model: params and MACs; pruned (l1) to 50% of the MACs: kept ratio, whether it runs, whether
the saved artifact reloads with the same outputs, and the latency ratio unpruned/pruned at batch 1
and 32 (2 threads, interleaved rounds, median of medians). The same rounds also time the
reloaded artifact against the in-memory pruned model, the check for "the speed-up printed at
pruning time is not what the saved model delivers".

Weights are random (num_classes=10): the pruning columns do not depend on training.

`--speedup-order` instead answers why the speed-up `slimvision prune` printed disagreed with the
saved model: resnet56 (random init, 32x32) pruned to 40% MACs, timed several times in one process
back to back (what `prune` printed before) and in alternating rounds (what it prints now), plus
the in-memory pruned model against its reloaded artifact; writes results/models_speedup_order.md.
This mode needs only slimvision.

Needs timm and torchvision (a separate environment, see docs/prune.md):
    PYTHONPATH=src nice -n 10 /work/venv-tv/bin/python benchmarks/models.py
    PYTHONPATH=src nice -n 10 /work/venv-tv/bin/python benchmarks/models.py --only resnet18 --rounds 2
    PYTHONPATH=src nice -n 10 python benchmarks/models.py --speedup-order --repetitions 4
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from slimvision.io import ArchSpec, load_artifact, save_artifact
from slimvision.measure import count_macs, count_params, measure_latency, pinned_threads
from slimvision.models import MODELS
from slimvision.models import create_model
from slimvision.prune import PruneConfig, prune
from slimvision.prune.run import LATENCY_BATCHES, paired_latency_ms

RESULTS = Path(__file__).parent / "results"

# name -> (library, builder name, family, re-parameterise before pruning)
MODELS_TO_SWEEP = {
    "resnet18": ("torchvision", "resnet18", "plain CNN", False),
    "mobilenet_v2": ("torchvision", "mobilenet_v2", "mobile / depthwise", False),
    "mobilenet_v3_small": ("torchvision", "mobilenet_v3_small", "mobile / depthwise, SE + hardswish", False),
    "efficientnet_b0": ("torchvision", "efficientnet_b0", "mobile / depthwise, SE", False),
    "shufflenet_v2_x1_0": ("torchvision", "shufflenet_v2_x1_0", "channel shuffle", False),
    "ghostnet_100": ("timm", "ghostnet_100", "ghost modules, BatchNormAct2d", False),
    "regnetx_002": ("timm", "regnetx_002", "grouped convs", False),
    "repvit_m0_9": ("timm", "repvit_m0_9", "re-parameterisable (fused)", True),
    "fastvit_t8": ("timm", "fastvit_t8", "re-parameterisable (fused), LayerScale2d", True),
    "convnext_atto": ("timm", "convnext_atto", "ConvNeXt, layer scale", False),
    "deit_tiny_patch16_224": ("timm", "deit_tiny_patch16_224", "ViT: fused qkv, cls_token, pos_embed", False),
    "mobilevitv2_050": ("timm", "mobilevitv2_050", "hybrid: split [1, d, d]", False),
    "efficientformerv2_s0": ("timm", "efficientformerv2_s0", "hybrid: conv attention, LayerScale2d", False),
}


def builder_for(library: str, name: str, reparam: bool):
    """A zoo-style builder (num_classes, in_chans) -> eval module, re-parameterised if asked."""

    def build(num_classes: int = 10, in_chans: int = 3) -> torch.nn.Module:
        if library == "torchvision":
            import torchvision

            model = getattr(torchvision.models, name)(num_classes=num_classes)
        else:
            import timm

            model = timm.create_model(name, num_classes=num_classes, in_chans=in_chans)
            if reparam:
                from timm.utils.model import reparameterize_model

                model = reparameterize_model(model.eval())
        return model.eval()

    return build


def interleaved_latency(models: dict[str, torch.nn.Module], input_size, batch: int, rounds: int, repeats: int, threads: int) -> dict[str, float]:
    """Median over rounds of each model's median latency (ms); models take turns within each round."""
    samples: dict[str, list[float]] = {k: [] for k in models}
    with pinned_threads(threads):
        for _ in range(rounds):
            for key, model in models.items():
                samples[key].append(measure_latency(model, input_size, batch, warmup=1, repeats=repeats).median_ms)
    return {k: float(np.median(v)) for k, v in samples.items()}


def sweep_one(key: str, rounds: int, repeats: int, threads: int, batches: tuple[int, ...], workdir: Path) -> dict:
    """Prune one architecture to 50% MACs and measure everything the table reports."""
    library, name, family, reparam = MODELS_TO_SWEEP[key]
    zoo_name = f"sweep_{key}"
    if zoo_name not in MODELS:
        MODELS.add(zoo_name, builder_for(library, name, reparam))
    row: dict = {"model": key, "library": library, "family": family, "reparam": reparam}
    torch.manual_seed(0)
    model = MODELS.get(zoo_name)()
    input_size = (3, 224, 224)
    example = torch.randn(1, *input_size)
    row["params"], row["macs"] = count_params(model), count_macs(model, input_size)
    start = time.perf_counter()
    try:
        result = prune(model, example, PruneConfig(method="l1", macs_ratio=0.5))
    except Exception as exc:  # recorded in the table; the sweep goes on
        row["error"] = f"prune: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return row
    row["prune_s"] = time.perf_counter() - start
    pruned = result.model.eval()
    row["macs_kept"] = result.macs_kept
    row["params_kept"] = result.params_kept
    row["kept_layers"] = result.kept_layers
    with torch.no_grad():
        out = pruned(example)
    row["forward_ok"] = tuple(out.shape) == (1, 10)
    try:
        save_artifact(pruned, ArchSpec(zoo_name).with_shapes_of(pruned), workdir / key)
        reloaded = load_artifact(workdir / key).model
        with torch.no_grad():
            row["reload_max_abs_diff"] = float((reloaded(example) - out).abs().max())
        row["reload_ok"] = row["reload_max_abs_diff"] <= 1e-4 * max(1.0, float(out.abs().max()))
    except Exception as exc:
        row["reload_ok"] = False
        row["error"] = f"artifact: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        reloaded = None
    for batch in batches:
        contenders = {"unpruned": model, "pruned": pruned}
        if reloaded is not None:
            contenders["reloaded"] = reloaded
        medians = interleaved_latency(contenders, input_size, batch, rounds, repeats, threads)
        row[f"latency_ms_b{batch}"] = medians
        row[f"speedup_b{batch}"] = medians["unpruned"] / medians["pruned"]
        if reloaded is not None:
            row[f"reloaded_vs_inmemory_b{batch}"] = medians["pruned"] / medians["reloaded"]
    return row


SPEEDUP_INPUT = (3, 32, 32)


def back_to_back(before, after, threads: int) -> dict[str, float]:
    """Speed-up per batch the way prune_artifact measured it before: each model once, one after the other."""
    with pinned_threads(threads):
        first = {b: measure_latency(before, SPEEDUP_INPUT, b, warmup=5, repeats=20).median_ms for b in LATENCY_BATCHES}
        second = {b: measure_latency(after, SPEEDUP_INPUT, b, warmup=5, repeats=20).median_ms for b in LATENCY_BATCHES}
    return {str(b): first[b] / second[b] for b in LATENCY_BATCHES}


def write_speedup_order(rows: list, started: str, args: argparse.Namespace) -> Path:
    """results/models_speedup_order.md from the repetitions done so far."""

    def spread(key: int, batch: str) -> str:
        values = [row[key][batch] for row in rows]
        return f"{min(values):.2f}-{max(values):.2f}x (median {statistics.median(values):.2f}x)"

    lines = [
        "# Printed speed-up vs the saved model: timing order",
        "",
        f"Command: `PYTHONPATH=src nice -n 10 python benchmarks/models.py {' '.join(sys.argv[1:])}`".rstrip(),
        "",
        f"Conditions: {started}; torch {torch.__version__}; CPU, {args.threads} threads pinned; resnet56 random init, "
        "pruned to 40% MACs (l1), 32x32 input; one process. The machine was shared with other jobs "
        f"(1-minute load average per repetition: {', '.join(r[4] for r in rows)} on 2 cores).",
        "",
        "| repetition | back to back b1 | back to back b32 | alternating b1 | alternating b32 | in-memory / reloaded b1 | in-memory / reloaded b32 |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for number, old, new, copy_ratio, _ in rows:
        lines.append(
            f"| {number} | {old['1']:.2f}x | {old['32']:.2f}x | {new['1']:.2f}x | {new['32']:.2f}x | {copy_ratio['1']:.2f} | {copy_ratio['32']:.2f} |"
        )
    lines += [
        "",
        f"Spread over repetitions — back to back: b1 {spread(1, '1')}, b32 {spread(1, '32')}; "
        f"alternating: b1 {spread(2, '1')}, b32 {spread(2, '32')}; in-memory/reloaded (1.00 = same speed): "
        f"b1 {spread(3, '1')}, b32 {spread(3, '32')}.",
    ]
    out = RESULTS / "models_speedup_order.md"
    out.write_text("\n".join(lines) + "\n")
    return out


def speedup_order(args: argparse.Namespace) -> Path:
    """Back-to-back vs alternating timing of unpruned/pruned resnet56, and in-memory vs reloaded; returns the results file."""
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    torch.manual_seed(0)
    model = create_model("resnet56").eval()
    pruned = prune(model, torch.zeros(1, *SPEEDUP_INPUT), PruneConfig(method="l1", macs_ratio=0.4)).model.eval()
    with tempfile.TemporaryDirectory() as tmp:
        save_artifact(pruned, ArchSpec("resnet56", {}).with_shapes_of(pruned), Path(tmp) / "p")
        reloaded = load_artifact(Path(tmp) / "p").model
    rows = []
    for repetition in range(args.repetitions):
        old = back_to_back(model, pruned, args.threads)
        before, after = paired_latency_ms(model, pruned, SPEEDUP_INPUT, args.threads)
        new = {b: before[b] / after[b] for b in before}
        in_memory, from_disk = paired_latency_ms(pruned, reloaded, SPEEDUP_INPUT, args.threads)
        copy_ratio = {b: in_memory[b] / from_disk[b] for b in in_memory}
        load = Path("/proc/loadavg").read_text().split()[0]
        rows.append((repetition + 1, old, new, copy_ratio, load))
        print(rows[-1], flush=True)
        out = write_speedup_order(rows, started, args)  # after each repetition, so a cut-short run still leaves a table
    return out


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def latest_rows(raw: Path) -> list[dict]:
    """The last recorded row of each model in `raw` (runs append; a model swept again replaces its row)."""
    rows: dict[str, dict] = {}
    for line in raw.read_text().splitlines():
        row = json.loads(line)
        rows[row["model"]] = row
    order = list(MODELS_TO_SWEEP)
    return sorted(rows.values(), key=lambda r: order.index(r["model"]) if r["model"] in order else len(order))


def _speedup(row: dict, batch: int) -> str:
    value = row.get(f"speedup_b{batch}")
    return "-" if value is None else f"{value:.2f}x"


def write_table(rows: list[dict]) -> Path:
    """benchmarks/results/models.md from the latest row of every model swept."""
    lines = [
        "# Model sweep: prune to 50% MACs, save, reload (224x224)",
        "",
        "Command: `PYTHONPATH=src nice -n 10 python benchmarks/models.py [--only NAME ...] [--batches 1 32] [--rounds R --repeats N]` "
        "(torch 2.14.1 + torchvision 0.29.1 + timm in a separate environment; rows are appended to models.jsonl, the table shows each model's latest row).",
        "",
        "Conditions: CPU, 2 threads pinned; random-init weights, 10 classes (the pruning columns do not depend on training); "
        "pruning criterion l1, uniform, `--macs-ratio 0.5`; latency = median over R interleaved rounds (unpruned, pruned in memory, "
        "reloaded artifact take turns), each round the median of N runs after 1 warm-up. **The machine was shared with other jobs** "
        "(2 cores; the 1-minute load average when each model started is in the last column), so absolute times are very noisy and "
        "latency ratios are indicative only; `-` = not measured in the time available.",
        "",
        "| model | family | params | MACs | MACs kept | params kept | runs | reloads | speed-up b1 | speed-up b32 | reloaded/in-memory b1 | rounds x runs | prune time | load |",
        "|---|---|---:|---:|---:|---:|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for row in rows:
        if "macs_kept" not in row:
            lines.append(f"| {row['model']} | {row['family']} | {row['params'] / 1e6:.2f} M | {row['macs'] / 1e6:.0f} M | - | - | NO | - | - | - | - | - | - | {row.get('load', '')} |")
            continue
        reload_speed = row.get("reloaded_vs_inmemory_b1")
        lines.append(
            f"| {row['model']} | {row['family']} | {row['params'] / 1e6:.2f} M | {row['macs'] / 1e6:.0f} M | "
            f"{row['macs_kept']:.3f} | {row['params_kept']:.3f} | {'yes' if row['forward_ok'] else 'NO'} | "
            f"{'yes' if row.get('reload_ok') else 'NO'} | {_speedup(row, 1)} | {_speedup(row, 32)} | "
            f"{'-' if reload_speed is None else f'{reload_speed:.2f}'} | {row.get('rounds', 2)} x {row.get('repeats', 2)} | "
            f"{row['prune_s']:.0f} s | {row.get('load', '')} |"
        )
    lines += ["", "Channels kept so that the pruned model still runs (`PruneResult.kept_layers`), and errors:", ""]
    for row in rows:
        kept = row.get("kept_layers") or []
        summary = "; ".join(kept[:6]) + (f"; ... ({len(kept)} in all)" if len(kept) > 6 else "")
        lines.append(f"- {row['model']}: {summary or 'none'}" + (f" — error: {row['error']}" if row.get("error") else ""))
    out = RESULTS / "models.md"
    out.write_text("\n".join(lines) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="sweep only these models")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="*", default=[1, 32])
    parser.add_argument("--speedup-order", action="store_true", help="run the resnet56 timing-order check instead of the sweep")
    parser.add_argument("--repetitions", type=int, default=4, help="--speedup-order: how many times to repeat the timings")
    parser.add_argument("--table-only", action="store_true", help="rewrite models.md from models.jsonl without sweeping")
    args = parser.parse_args()
    if args.table_only:
        print(write_table(latest_rows(RESULTS / "models.jsonl")))
        return
    if args.speedup_order:
        print(speedup_order(args))
        return
    keys = args.only or list(MODELS_TO_SWEEP)
    raw = RESULTS / "models.jsonl"
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for key in keys:
            load = load_average().split()[0]
            started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            print(f"== {key}", flush=True)
            try:
                row = sweep_one(key, args.rounds, args.repeats, args.threads, tuple(args.batches), Path(tmp))
            except Exception as exc:
                traceback.print_exc()
                row = {"model": key, "family": MODELS_TO_SWEEP[key][2], "params": 0, "macs": 0, "error": f"{type(exc).__name__}: {exc}"}
            row.update(rounds=args.rounds, repeats=args.repeats, load=load, started=started, torch=torch.__version__, python=platform.python_version())
            print(json.dumps(row), flush=True)
            with raw.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
    print(write_table(latest_rows(raw)))


if __name__ == "__main__":
    main()

"""Model sweep: real torchvision/timm architectures through prune -> save -> reload, at 224x224.

Per model: params and MACs; pruned (l1) to 50% of the MACs: kept ratio, whether it runs, whether
the saved artifact reloads with the same outputs, and the latency ratio unpruned/pruned at batch 1
and 32 (2 threads, interleaved rounds, median of medians). The same rounds also time the
reloaded artifact against the in-memory pruned model, the check for "the speed-up printed at
pruning time is not what the saved model delivers".

Weights are random (num_classes=10): the pruning columns do not depend on training.

Needs timm and torchvision (a separate environment, see docs/prune.md):
    PYTHONPATH=src nice -n 10 /work/venv-tv/bin/python benchmarks/models.py
    PYTHONPATH=src nice -n 10 /work/venv-tv/bin/python benchmarks/models.py --only resnet18 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import platform
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
from slimvision.prune import PruneConfig, prune

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


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def write_table(rows: list[dict], args: argparse.Namespace, started: str, loads: list[str]) -> Path:
    """benchmarks/results/models.md from the rows of this run."""
    lines = [
        "# Model sweep: prune to 50% MACs, save, reload (224x224)",
        "",
        f"Command: `PYTHONPATH=src nice -n 10 python benchmarks/models.py {' '.join(sys.argv[1:])}`".rstrip(),
        "",
        f"Conditions: {started}; torch {torch.__version__}, Python {platform.python_version()}, CPU, "
        f"{args.threads} threads pinned; random-init weights, 10 classes; pruning criterion l1, uniform, "
        f"budget --macs-ratio 0.5 (bisection); latency = median of {args.rounds} interleaved rounds "
        f"(unpruned, pruned in memory, reloaded artifact take turns), each the median of {args.repeats} runs after 1 warm-up. "
        f"The machine was shared with other jobs (2 cores, load average at the start of each model: {', '.join(loads)}), "
        "so absolute times are noisy; the ratios come from the same rounds.",
        "",
        "| model | family | params | MACs | MACs kept | params kept | runs | reloads | speed-up b1 | speed-up b32 | reloaded/in-memory b1, b32 | prune time |",
        "|---|---|---:|---:|---:|---:|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        if "macs_kept" not in row:
            lines.append(f"| {row['model']} | {row['family']} | {row['params'] / 1e6:.2f} M | {row['macs'] / 1e6:.0f} M | - | - | - | - | - | - | - | {row.get('error', '')} |")
            continue
        speed = [f"{row.get(f'speedup_b{b}', float('nan')):.2f}x" for b in (1, 32)]
        reload_speed = ", ".join(f"{row.get(f'reloaded_vs_inmemory_b{b}', float('nan')):.2f}" for b in (1, 32))
        lines.append(
            f"| {row['model']} | {row['family']} | {row['params'] / 1e6:.2f} M | {row['macs'] / 1e6:.0f} M | "
            f"{row['macs_kept']:.3f} | {row['params_kept']:.3f} | {'yes' if row['forward_ok'] else 'NO'} | "
            f"{'yes' if row.get('reload_ok') else 'NO'} | {speed[0]} | {speed[1]} | {reload_speed} | {row['prune_s']:.0f} s |"
        )
    lines += ["", "Channels kept whole so that the pruned model still runs (from `PruneResult.kept_layers`):", ""]
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
    args = parser.parse_args()
    keys = args.only or list(MODELS_TO_SWEEP)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows, loads = [], []
    raw = RESULTS / "models.jsonl"
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for key in keys:
            loads.append(load_average().split()[0])
            print(f"== {key}", flush=True)
            try:
                row = sweep_one(key, args.rounds, args.repeats, args.threads, tuple(args.batches), Path(tmp))
            except Exception as exc:
                traceback.print_exc()
                library, _, family, _ = MODELS_TO_SWEEP[key]
                row = {"model": key, "family": family, "params": 0, "macs": 0, "error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(row), flush=True)
            rows.append(row)
            with raw.open("a") as handle:
                handle.write(json.dumps({**row, "started": started}) + "\n")
    print(write_table(rows, args, started, loads))


if __name__ == "__main__":
    main()

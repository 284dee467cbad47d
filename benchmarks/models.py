"""Model sweep: real torchvision/timm architectures through prune -> save -> reload, at 224x224.

Every model is named the way a user names it for `--model`: `torchvision:NAME`, `timm:NAME`, or,
for the re-parameterisable ones, the file builder `reparam_builders.py:timm_fused` with model kwargs;
`resolve_model` builds it and the artifact's arch.json records that source.

Per model: params and MACs; pruned (l1) to 50% of the MACs: kept ratio, whether it runs, whether
the saved artifact reloads with the same outputs, and the latency ratio unpruned/pruned at batch 1
and 32 (2 threads, interleaved rounds, median of medians). The same rounds also time the
reloaded artifact against the in-memory pruned model, the check for "the speed-up printed at
pruning time is not what the saved model delivers". Weights are random (num_classes=10): the
pruning columns do not depend on training.

`--int8` instead trains each model briefly on digits-hard at reduced resolution (224 px training of
13 models does not fit a shared 2-core CPU) and quantizes it with `slimvision.quant.quantize` for
onnxruntime and OpenVINO: speed-up against the same runtime's fp32, top-1 agreement with fp32.

`--speedup-order` instead answers why the speed-up `slimvision prune` printed disagreed with the
saved model: resnet56 (random init, 32x32) pruned to 40% MACs, timed several times in one process
back to back (what `prune` printed before) and in alternating rounds (what it prints now), plus
the in-memory pruned model against its reloaded artifact; writes results/models_speedup_order.md.
This mode needs only slimvision.

Needs timm and torchvision (a separate environment, see docs/prune.md):
    PYTHONPATH=src nice -n 10 .venv-tv/bin/python benchmarks/models.py
    PYTHONPATH=src nice -n 10 .venv-tv/bin/python benchmarks/models.py --int8 --only resnet18 regnetx_002
    PYTHONPATH=src nice -n 10 .venv-tv/bin/python benchmarks/models.py --only resnet18 --rounds 2
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

from slimvision.data import get_dataset, make_loader
from slimvision.data.base import DataSpec, TensorImageDataset
from slimvision.io import ArchSpec, load_artifact, resolve_model, save_artifact
from slimvision.measure import count_macs, count_params, measure_latency, pinned_threads
from slimvision.train import recalibrate_batchnorm
from slimvision.models import ModelSource, create_model
from slimvision.prune import PruneConfig, prune
from slimvision.quant import QuantConfig, quantize
from slimvision.train.config import TrainConfig
from slimvision.train.trainer import Trainer, seed_everything
from slimvision.prune.run import LATENCY_BATCHES, paired_latency_ms

RESULTS = Path(__file__).parent / "results"
FUSED = f"{Path(__file__).parent / 'reparam_builders.py'}:timm_fused"  # a file source, as a user names one

# name -> (model source as a user writes it for --model, --model-kwargs, family)
MODELS_TO_SWEEP = {
    "resnet18": ("torchvision:resnet18", {}, "plain CNN"),
    "mobilenet_v2": ("torchvision:mobilenet_v2", {}, "mobile / depthwise"),
    "mobilenet_v3_small": ("torchvision:mobilenet_v3_small", {}, "mobile / depthwise, SE + hardswish"),
    "efficientnet_b0": ("torchvision:efficientnet_b0", {}, "mobile / depthwise, SE"),
    "shufflenet_v2_x1_0": ("torchvision:shufflenet_v2_x1_0", {}, "channel shuffle"),
    "ghostnet_100": ("timm:ghostnet_100", {}, "ghost modules, BatchNormAct2d"),
    "regnetx_002": ("timm:regnetx_002", {}, "grouped convs"),
    "repvit_m0_9": (FUSED, {"name": "repvit_m0_9", "num_classes": 10}, "re-parameterisable (fused)"),
    "fastvit_t8": (FUSED, {"name": "fastvit_t8", "num_classes": 10}, "re-parameterisable (fused), LayerScale2d"),
    "convnext_atto": ("timm:convnext_atto", {}, "ConvNeXt, layer scale"),
    "deit_tiny_patch16_224": ("timm:deit_tiny_patch16_224", {}, "ViT: fused qkv, cls_token, pos_embed"),
    "mobilevitv2_050": ("timm:mobilevitv2_050", {}, "hybrid: split [1, d, d]"),
    "efficientformerv2_s0": ("timm:efficientformerv2_s0", {}, "hybrid: conv attention, LayerScale2d"),
}
# timm models whose position embeddings / attention biases are sized for one input: built for the INT8 resolution
SIZED_BY_INPUT = ("deit_tiny_patch16_224", "efficientformerv2_s0")


def model_source(key: str, extra: dict | None = None) -> ModelSource:
    """The sweep entry `key` as the ModelSource `--model SPEC --model-kwargs JSON` gives."""
    spec, kwargs, _ = MODELS_TO_SWEEP[key]
    return ModelSource(spec, {**kwargs, **(extra or {})})


def interleaved_latency(models: dict[str, torch.nn.Module], input_size, batch: int, rounds: int, repeats: int, threads: int) -> dict[str, float]:
    """Median over rounds of each model's median latency (ms); models take turns within each round."""
    samples: dict[str, list[float]] = {k: [] for k in models}
    with pinned_threads(threads):
        for _ in range(rounds):
            for key, model in models.items():
                samples[key].append(measure_latency(model, input_size, batch, warmup=1, repeats=repeats).median_ms)
    return {k: float(np.median(v)) for k, v in samples.items()}


def sweep_one(key: str, rounds: int, repeats: int, threads: int, batches: tuple[int, ...], workdir: Path, size: int = 224) -> dict:
    """Prune one architecture to 50% MACs at `size` x `size` input and measure everything the table reports."""
    source = model_source(key, {"img_size": size} if key in SIZED_BY_INPUT and size != 224 else None)
    shown = "benchmarks/reparam_builders.py:timm_fused" if source.spec == FUSED else source.spec
    row: dict = {"model": key, "source": shown, "model_kwargs": source.kwargs, "family": MODELS_TO_SWEEP[key][2], "image_size": size}
    torch.manual_seed(0)
    model, arch, _ = resolve_model(source, num_classes=10, in_chans=3)
    model.eval()
    input_size = (3, size, size)
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
        save_artifact(pruned, arch.with_shapes_of(pruned), workdir / key, input_size=input_size)
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


RGB_SUFFIX = "-rgb"  # --int8-data digits-rgb: digits with the gray channel copied into 3, for builders that take RGB


def rgb_view(dataset) -> TensorImageDataset:
    """`dataset` (1 channel) with its channel replicated 3 times: the same digits for builders fixed to RGB input."""
    spec = dataset.spec
    rgb_spec = DataSpec(spec.name, spec.num_classes, 3, spec.image_size, spec.mean * 3, spec.std * 3, {**spec.options, "replicated_channels": 3})
    return TensorImageDataset(dataset.images[:].repeat(1, 3, 1, 1), dataset.labels, rgb_spec, dataset.split)


def int8_data(name: str, size: int, test_size: int):
    """(train, test) for --int8-data `name`; a name ending in -rgb is that dataset's 3-channel view."""
    base = name.removesuffix(RGB_SUFFIX)
    sizes = {"test_size": test_size} if base == "digits-hard" else {}
    train, test = get_dataset(base, "train", size), get_dataset(base, "test", size, **sizes)
    if name.endswith(RGB_SUFFIX):
        if train.spec.in_chans != 1:
            raise SystemExit(f"--int8-data {name}: {base} already has {train.spec.in_chans} channels")
        train, test = rgb_view(train), rgb_view(test)
    return train, test


def int8_trained(key: str, args: argparse.Namespace):
    """(model in eval mode, train split, test split, row) after `key`'s short training on `args.int8_data` at `args.int8_size` px."""
    size = args.int8_size
    extra = {"img_size": size} if key in SIZED_BY_INPUT else {}
    train, test = int8_data(args.int8_data, size, args.int8_test)
    seed_everything(0)
    model, _, _ = resolve_model(model_source(key, extra), num_classes=10, in_chans=train.spec.in_chans)
    row: dict = {"model": key, "int8_data": args.int8_data, "int8_size": size, "int8_test": len(test)}
    config = TrainConfig(
        epochs=args.int8_epochs, batch_size=64, optimizer="adamw", lr=1e-3, warmup_epochs=0.2, augment=False,
        max_steps_per_epoch=args.int8_steps, save_every=0, progress=False, device="cpu",
    )
    start = time.perf_counter()
    with pinned_threads(args.threads):
        trainer = Trainer(model, train, None, config, writes_checkpoints=False)
        fit = trainer.fit()
    row["int8_train_steps"] = trainer.step
    row["train_s"] = time.perf_counter() - start
    row["train_loss"] = fit.final.get("train_loss")
    if args.int8_bn_refresh:  # running statistics with momentum 0.01 are still mostly their init after a short run
        recalibrate_batchnorm(model, (images for images, _ in make_loader(train, 128)))
        row["bn_recalibrated"] = True
    return model.eval(), train, test, row


def int8_one(key: str, args: argparse.Namespace) -> dict:
    """Train `key` briefly (`int8_trained`), then INT8 on onnxruntime and OpenVINO via `quantize`."""
    model, train, test, row = int8_trained(key, args)
    for backend in ("onnxruntime", "openvino"):
        try:
            quant = quantize(model, train, QuantConfig(backend=backend, threads=args.threads, repeats=args.int8_repeats, calib_samples=128), evaluation=test)
        except Exception as exc:
            row[f"{backend}_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            continue
        summary = quant.summary
        row["accuracy_fp32"] = summary["accuracy_fp32"]
        row[backend] = {
            "accuracy_int8": summary["accuracy_int8"], "agreement_top1": summary["agreement_top1"],
            "speedup_bs1": summary["speedup_bs1"], "speedup_bs32": summary["speedup_bs32"],
            "latency_ms_fp32": summary["latency_ms_fp32"], "latency_ms_int8": summary["latency_ms_int8"],
        }
        print(key, backend, json.dumps(row[backend]), flush=True)
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
    if not raw.is_file():
        return []
    for line in raw.read_text().splitlines():
        row = json.loads(line)
        rows[row["model"]] = row
    order = list(MODELS_TO_SWEEP)
    return sorted(rows.values(), key=lambda r: order.index(r["model"]) if r["model"] in order else len(order))


def _speedup(row: dict, batch: int) -> str:
    value = row.get(f"speedup_b{batch}")
    return "-" if value is None else f"{value:.2f}x"


def _int8_cells(row: dict | None, backend: str) -> str:
    if row is None:
        return "- | - | -"
    if f"{backend}_error" in row:
        return f"failed: {row[f'{backend}_error'][:60]} | - | -"
    cell = row.get(backend)
    if not cell:
        return "- | - | -"
    return f"{cell['speedup_bs1']:.2f}x | {cell['speedup_bs32']:.2f}x | {cell['agreement_top1']:.3f}"


def write_table(rows: list[dict], int8_rows: list[dict] = ()) -> Path:
    """benchmarks/results/models.md from the latest pruning row and INT8 row of every model swept."""
    lines = [
        "# Model sweep: prune to 50% MACs, save, reload (224x224); INT8 on onnxruntime and OpenVINO",
        "",
        "Commands (torch 2.14.1 + torchvision 0.29.1 + timm in a separate environment; rows are appended to models.jsonl / "
        "models_int8.jsonl, the tables show each model's latest row):",
        "",
        "    PYTHONPATH=src nice -n 10 python benchmarks/models.py [--only NAME ...] [--batches 1 32] [--rounds R --repeats N]",
        "    PYTHONPATH=src nice -n 10 python benchmarks/models.py --int8 --int8-data digits --int8-size 32 --int8-epochs 5 --int8-repeats 10 [--only NAME ...]",
        "",
        "(the resnet18 INT8 row: `--int8 --int8-data digits-hard --int8-size 32 --int8-epochs 2 --int8-steps 50 --int8-test 500 --int8-repeats 10`; "
        "the other torchvision rows: `--int8 --int8-data digits-rgb --int8-size 32 --int8-epochs 5 --int8-repeats 10 --only NAME ...`)",
        "",
        "Every model is taken through a public model source, as a user names it for `--model` (`torchvision:NAME`, `timm:NAME`, "
        "or, for the re-parameterisable models, the file builder `benchmarks/reparam_builders.py:timm_fused` with "
        "`--model-kwargs '{\"name\": NAME, \"num_classes\": 10}'`, which fuses the branches before pruning), built with 10 classes "
        "and recorded in the artifact's arch.json.",
        "",
        "## Pruning",
        "",
        "Conditions: CPU, 2 threads pinned; random-init weights (the pruning columns do not depend on training); "
        "pruning criterion l1, uniform, `--macs-ratio 0.5`; latency = median over R interleaved rounds (unpruned, pruned in memory, "
        "reloaded artifact take turns), each round the median of N runs after 1 warm-up. **The machine was shared with other jobs** "
        "(2 cores; the 1-minute load average when each model started is in the `load` column), so absolute times are very noisy and "
        "latency ratios are indicative only (in a run at load 15 a regnetx_002 batch-1 call took 2.5 s, in its row here, at "
        "load 4, 23-50 ms: such ratios measure the scheduler, not the model; the raw medians are in models.jsonl); `-` = not measured in the time available. "
        "The rows measured 2026-11-28 20:53-21:30 UTC (load 2-9) ran at nice 10 beside other jobs and beside this sweep's own INT8 "
        "training, batch 1 only (`--rounds 2 --repeats 3 --batches 1`): a resnet18 batch-1 call took 0.6-1.6 s there, so their "
        "latency ratios (including reloaded/in-memory) are scheduler noise too. The efficientformerv2_s0 row (22:35 UTC, load 9-10, "
        "nice 10 beside other training jobs, `--rounds 2 --repeats 3 --batches 1 32`) is no better: an unpruned batch-1 call took 0.9 s. "
        "`source` is `earlier run` for rows measured "
        "before the sweep used the public model sources: the same torchvision/timm builder calls, registered under private zoo names.",
        "",
        "| model | family | source | params | MACs | MACs kept | params kept | runs | reloads | speed-up b1 | speed-up b32 | reloaded/in-memory b1 | rounds x runs | prune time | load | measured |",
        "|---|---|---|---:|---:|---:|---:|---|---|---:|---:|---:|---|---:|---:|---|",
    ]
    for row in rows:
        source = f"`{row['source']}`" if row.get("source") else "earlier run"
        if row.get("image_size", 224) != 224:
            source += f" **at {row['image_size']}x{row['image_size']}**"
        when = row.get("started", "")
        if "macs_kept" not in row:
            lines.append(f"| {row['model']} | {row['family']} | {source} | {row['params'] / 1e6:.2f} M | {row['macs'] / 1e6:.0f} M | - | - | NO | - | - | - | - | - | - | {row.get('load', '')} | {when} |")
            continue
        reload_speed = row.get("reloaded_vs_inmemory_b1")
        lines.append(
            f"| {row['model']} | {row['family']} | {source} | {row['params'] / 1e6:.2f} M | {row['macs'] / 1e6:.0f} M | "
            f"{row['macs_kept']:.3f} | {row['params_kept']:.3f} | {'yes' if row['forward_ok'] else 'NO'} | "
            f"{'yes' if row.get('reload_ok') else 'NO'} | {_speedup(row, 1)} | {_speedup(row, 32)} | "
            f"{'-' if reload_speed is None else f'{reload_speed:.2f}'} | {row.get('rounds', 2)} x {row.get('repeats', 2)} | "
            f"{row['prune_s']:.0f} s | {row.get('load', '')} | {when} |"
        )
    lines += ["", "Channels kept so that the pruned model still runs (`PruneResult.kept_layers`), and errors:", ""]
    for row in rows:
        kept = row.get("kept_layers") or []
        summary = "; ".join(kept[:6]) + (f"; ... ({len(kept)} in all)" if len(kept) > 6 else "")
        lines.append(f"- {row['model']}: {summary or 'none'}" + (f" — error: {row['error']}" if row.get("error") else ""))
    by_model = {r["model"]: r for r in int8_rows}
    sizes = sorted({r.get("int8_size") for r in int8_rows if r.get("int8_size")})
    lines += [
        "",
        "## INT8 (unpruned models, briefly trained)",
        "",
        "Protocol: training 13 models at 224 px is not affordable on this shared 2-core CPU machine, so each model is trained "
        f"from random init at reduced resolution ({', '.join(f'{s}x{s}' for s in sizes) or '-'} px) on real handwritten digits: "
        "`digits` (sklearn's 8x8 digits upsampled, 1 channel, 1,078 training / 360 test images), `digits-rgb` (the same "
        "images with the gray channel copied into 3, for the torchvision builders, which take 3 channels; "
        "`--int8-data digits-rgb`) or `digits-hard` (the same digits rendered in colour with affine warps, clutter "
        "and blur, 20k training images), for the listed number of AdamW steps of batch 64 (lr 1e-3 with warm-up and cosine "
        "decay, no augmentation). Short training, so the fp32 top-1 is listed: agreement means something only where it is "
        "well above chance (0.10); the digits-hard run of resnet18 (100 steps) stayed at chance. Models whose position "
        "embeddings or attention biases are sized for the input (deit, efficientformerv2) are built with `img_size` set to "
        "that resolution. Then `slimvision.quant.quantize(model, train set, QuantConfig(backend=...), evaluation=test set)` "
        "is called once per runtime (static QDQ, MinMax calibration on 128 training images, uint8 activations, int8 "
        "per-channel weights; OpenVINO runs the same QDQ file). Speed-up = the same runtime's fp32 ONNX model / its INT8 "
        "model, batch 1 and 32, 2 threads, median of 10 runs after 5 warm-up, same process. Agreement = fraction of test "
        "images on which INT8 and PyTorch fp32 predict the same class. **The INT8 speed-ups are at the training resolution "
        "(32x32), not 224x224, where per-call overheads weigh more**, and the machine was heavily shared (load column).",
        "",
        "| model | data | size | train steps | train s | fp32 top-1 | ORT INT8 b1 | ORT INT8 b32 | ORT agreement | OV INT8 b1 | OV INT8 b32 | OV agreement | test images | load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for key in MODELS_TO_SWEEP:
        row = by_model.get(key)
        if row is None:
            lines.append(f"| {key} | - | - | - | - | - | - | - | - | - | - | - | - | - |")
            continue
        if "accuracy_fp32" not in row:
            lines.append(f"| {key} | {row.get('int8_data', '-')} | {row.get('int8_size', '-')} | - | - | failed: {row.get('error', row.get('onnxruntime_error', '?'))[:80]} | - | - | - | - | - | - | - | {row.get('load', '')} |")
            continue
        lines.append(
            f"| {key} | {row.get('int8_data', 'digits-hard')}{', BN re-estimated' if row.get('bn_recalibrated') else ''} | {row['int8_size']} | {row['int8_train_steps']} | {row['train_s']:.0f} | {row['accuracy_fp32']:.3f} | "
            f"{_int8_cells(row, 'onnxruntime')} | {_int8_cells(row, 'openvino')} | {row.get('int8_test', '-')} | {row.get('load', '')} |"
        )
    public = [r["model"] for r in rows if r.get("source")]
    earlier = [r["model"] for r in rows if not r.get("source")]
    measured = [k for k in MODELS_TO_SWEEP if "accuracy_fp32" in by_model.get(k, {})]
    lines += [
        "",
        "## Coverage",
        "",
        f"- Pruning rows measured through the public model sources: {len(public)} of {len(MODELS_TO_SWEEP)} ({', '.join(public) or 'none'}); "
        f"from the earlier run: {', '.join(earlier) or 'none'}; missing: {', '.join(k for k in MODELS_TO_SWEEP if k not in public + earlier) or 'none'}.",
        "- efficientformerv2_s0 before the fix (2026-11-28 19:33-21:12 UTC): three attempts (224x224 for 53 minutes, 64x64 "
        "for 24 minutes, 224x224 under `timeout 600`) never finished torch-pruning's first group search "
        "(`DependencyGraph.get_all_groups` -> `get_pruning_group`, in `_FlattenIndexMapping`). Cause: torch-pruning's shape "
        "check for reshapes reads `grad_fn._saved_self_sizes`, which PyTorch 2 no longer has, so every reshape between layers "
        "of different widths got a flatten index mapping, including the reshape of the q/k/v feature maps into "
        "[B, heads, key_dim, H*W]; these mappings chain along q -> matmul -> softmax -> matmul -> v, so each one multiplies "
        "the index list by its stride (up to 16,384 indices per entry here; in a small test block a 32-channel q conv gives "
        "16,384, a 48-channel one 82,944), and the search revisits a node whenever it arrives with a different list, "
        "comparing it with every entry collected so far. "
        "Measured at 224x224 on 2026-11-28 22:10 UTC (load 2-9): each q/k group search of the attention blocks ran past a "
        "20 s limit (11 of them), the v groups took 1.5-2 s each. Now slimvision records the reshape shapes while "
        "torch-pruning traces and stops the search at reshapes that move channels out of dim 1 and at fixed-size splits "
        "(their groups were kept whole anyway; see docs/prune.md): the attention blocks keep q, k, v and their inner "
        "channels, the rest is pruned.",
        "- Graph build after that change (one `MetaPruner` construction = trace + every group search, l1, 224x224, nice 10, "
        "load 9-10, 2026-11-28 22:33 UTC): efficientformerv2_s0 4.8 s (a second `get_all_groups` 0.3 s, 43 groups); "
        "mobilevitv2_050 33.9 s + 31.4 s with the code before the change (main at f53c4c9), 2.6 s + 0.1 s after (the same 37 groups). A whole "
        "`prune` of mobilevitv2_050 to 50% MACs took 504 s in the sweep before (load 6.8) and 148 s after (22:43 UTC, load 10, "
        "outside the sweep), keeping the same 0.496 of the MACs and 0.525 of the params (reload difference 0). Re-pruned "
        "outside the sweep after the change, deit_tiny_patch16_224 (0.502 MACs / 0.504 params) and shufflenet_v2_x1_0 "
        "(0.495 / 0.518) keep exactly their rows' ratios; their rows above are from before the change.",
        f"- INT8 rows: {len(measured)} of {len(MODELS_TO_SWEEP)} ({', '.join(measured) or 'none'}); resnet18's (digits-hard, "
        "100 steps) is at chance and says nothing about agreement; fastvit_t8 and repvit_m0_9 first failed (20:44 UTC) because "
        "the sweep did not pass the 1-channel `in_chans` to the file builder (a user builder then got only the kwargs written for "
        "it; it now also gets the data's `num_classes`/`in_chans` when its signature names them); with that fixed they were re-run from 20:53 UTC (digits, 32 px, 85 steps) and their rows above are from that run. "
        "The same 85 steps took 7-24 s when the machine was quiet (load < 2, 21:27-21:35 UTC) and 480-1456 s at nice 10 while the machine was loaded "
        "(1-minute load 6-18 during those runs; the load column is its value at each start), so their INT8 speed-ups are noisy too. "
        "The torchvision builders (mobilenet_v2, mobilenet_v3_small, efficientnet_b0, shufflenet_v2_x1_0) take 3 channels, so they "
        "needed digits-hard, where a short run stayed near chance (resnet18 above); they train on `digits-rgb` instead, the same "
        "85 steps at 32 px as the timm rows (2026-11-28 from 22:42 UTC, up to three runs side by side at nice 10 beside other jobs, load 9-12, "
        "so train s and speed-ups are noisy). mobilenet_v3_small first scored 0.097 fp32 top-1 after those 85 steps although "
        "its training loss had reached 0.05: torchvision's MobileNetV3 uses BatchNorm momentum 0.01, so after 85 steps the "
        "running statistics used in evaluation are still 0.99^85 = 43% their initial values (INT8 then agreed 1.000 with an "
        "fp32 model that predicts one class, which says nothing). "
        + ("Its row above is a second run of the same training followed by `--int8-bn-refresh` (BatchNorm statistics "
           "re-estimated as the plain average over the training set, `slimvision.merge.soups.recalibrate_batchnorm`), marked "
           "in the data column. " if by_model.get("mobilenet_v3_small", {}).get("bn_recalibrated") else
           "Its row above is that run; a second run with `--int8-bn-refresh` (BatchNorm statistics re-estimated over the "
           "training set) did not finish in the time available. ")
        + 
        f"Not measured: {', '.join(k for k in MODELS_TO_SWEEP if k not in measured) or 'none'}.",
    ]
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
    parser.add_argument("--image-size", type=int, default=224, help="pruning sweep input size (the table is about 224; smaller only to check a model that cannot be traced at 224 in time)")
    parser.add_argument("--int8", action="store_true", help="the INT8 columns instead of the pruning ones (trains each model briefly first)")
    parser.add_argument("--int8-size", type=int, default=64, help="--int8: image size for training, calibration and evaluation")
    parser.add_argument("--int8-epochs", type=int, default=3)
    parser.add_argument("--int8-steps", type=int, default=60, help="--int8: batches of 64 per epoch")
    parser.add_argument("--int8-data", default="digits", help="--int8: digits (1 channel), digits-rgb (digits with the gray channel copied into 3, for builders fixed to RGB) or digits-hard")
    parser.add_argument("--int8-bn-refresh", action="store_true", help="--int8: after training, re-estimate BatchNorm statistics as the plain average over the training set")
    parser.add_argument("--int8-test", type=int, default=1000, help="--int8: digits-hard test images scored")
    parser.add_argument("--int8-repeats", type=int, default=10, help="--int8: timed runs per latency")
    parser.add_argument("--speedup-order", action="store_true", help="run the resnet56 timing-order check instead of the sweep")
    parser.add_argument("--repetitions", type=int, default=4, help="--speedup-order: how many times to repeat the timings")
    parser.add_argument("--table-only", action="store_true", help="rewrite models.md from models.jsonl without sweeping")
    args = parser.parse_args()
    raw, raw_int8 = RESULTS / "models.jsonl", RESULTS / "models_int8.jsonl"
    if args.table_only:
        print(write_table(latest_rows(raw), latest_rows(raw_int8)))
        return
    if args.speedup_order:
        print(speedup_order(args))
        return
    keys = args.only or list(MODELS_TO_SWEEP)
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for key in keys:
            load = load_average().split()[0]
            started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
            print(f"== {key}", flush=True)
            try:
                row = int8_one(key, args) if args.int8 else sweep_one(key, args.rounds, args.repeats, args.threads, tuple(args.batches), Path(tmp), args.image_size)
            except Exception as exc:
                traceback.print_exc()
                row = {"model": key, "family": MODELS_TO_SWEEP[key][2], "params": 0, "macs": 0, "error": f"{type(exc).__name__}: {exc}"}
            if not args.int8:
                row.update(rounds=args.rounds, repeats=args.repeats)
            row.update(load=load, started=started, torch=torch.__version__, python=platform.python_version())
            print(json.dumps(row), flush=True)
            with (raw_int8 if args.int8 else raw).open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(write_table(latest_rows(raw), latest_rows(raw_int8)))  # after each model, so a cut-short run leaves a table


if __name__ == "__main__":
    main()

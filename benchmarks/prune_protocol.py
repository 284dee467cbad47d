"""Fair pruning protocol: every criterion, the same fine-tuning budget and schedule, >= 3 seeds.

Trains resnet20 on --data (digits or digits-hard, 32x32) once, then for each criterion and seed prunes it to 50% of the
MACs (--macs-ratio) and fine-tunes for the same number of epochs; PreCropping (a method for initialization) and
the scratch baseline of the L1-pruned architecture are trained from scratch for the base
training + fine-tuning epochs. Writes benchmarks/results/prune.md (+ .json). What pruning buys in CPU latency is
measured apart, in interleaved rounds, by benchmarks/prune_latency.py.

    python benchmarks/prune_protocol.py [--data digits-hard] [--seeds 3] [--finetune-epochs 5] [--work DIR]

With --work DIR a stopped run resumes with the same arguments: the base model and every finished
pruning, PreCropping and scratch run are kept there and not trained again. `--shard i/k` trains every
k-th run from the i-th (k processes on one --work; a run waits for the base model or the L1 run it builds
on) and exits; a last run without --shard writes the results.

With --data other than digits the files are named prune_<data>.md/.json; with --macs-ratio other than 0.5,
prune[_<data>]_macs<percent>.md/.json (one --work serves several ratios: they share the base model).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from _common import conditions, conditions_markdown, difference, markdown_table, mean_std, per_seed, resumable, run_shard, train_resumably, work_dir, write_results
from slimvision.data import get_dataset
from slimvision.io import load_artifact
from slimvision.measure import accuracy
from slimvision.prune import FinetuneConfig, PruneConfig, prune_artifact
from slimvision.train import Trainer, TrainConfig, seed_everything
from slimvision.train.run import RunSpec

CRITERIA = ["random", "l1", "l2", "bn", "taylor", "chex"]


def train_from_scratch(arch_model, epochs: int, seed: int, data, channels_last: bool) -> float:
    train, val, test = data
    seed_everything(seed)
    for module in arch_model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    Trainer(arch_model, train, val, TrainConfig(epochs=epochs, seed=seed, progress=False, channels_last=channels_last)).fit()
    return accuracy(arch_model, test)


def run_key(method: str, seed: int, macs_ratio: float) -> str:
    """A pruning run's key in finished.jsonl and its directory in --work; the default ratio keeps the plain
    "method-seed" so one --work serves several ratios on the same base model."""
    return f"{method}-{seed}" if macs_ratio == 0.5 else f"{method}-{seed}-macs{macs_ratio:g}"


def protocol_runs(args, work: Path, data) -> list[tuple[str, tuple[str, ...], object]]:
    """Every training run of the protocol as (key, keys it needs finished first, compute), in the order the full run takes them."""
    base_dir = work / "base"
    scratch_epochs = args.base_epochs + args.finetune_epochs
    runs: list = [("base", (), lambda: train_resumably(RunSpec("resnet20", args.data, 32, config=TrainConfig(epochs=args.base_epochs, seed=0, progress=False, channels_last=args.channels_last)), base_dir)["accuracy"])]
    for seed in range(args.seeds):  # PreCropping starts from scratch: it needs no base model
        key = run_key("precrop", seed, args.macs_ratio)
        runs.append((key, (), lambda seed=seed, key=key: prune_artifact(
            "resnet20", PruneConfig(method="precrop", macs_ratio=args.macs_ratio, seed=seed), work / key,
            data=args.data, image_size=32, finetune_config=FinetuneConfig(epochs=scratch_epochs, lr=0.1, seed=seed, channels_last=args.channels_last), threads=args.threads,
        )))
    for method in CRITERIA:
        for seed in range(args.seeds):
            config = PruneConfig(method=method, macs_ratio=args.macs_ratio, seed=seed, sparsity_epochs=2 if method == "bn" else 0)
            key = run_key(method, seed, args.macs_ratio)
            runs.append((key, ("base",), lambda config=config, key=key, seed=seed: prune_artifact(
                str(base_dir), config, work / key, finetune_config=FinetuneConfig(epochs=args.finetune_epochs, seed=seed, channels_last=args.channels_last), threads=args.threads
            )))
    for seed in range(args.seeds):
        l1 = run_key("l1", seed, args.macs_ratio)
        runs.append((run_key("scratch", seed, args.macs_ratio), (l1,), lambda seed=seed, l1=l1: train_from_scratch(load_artifact(work / l1).model, scratch_epochs, seed, data, args.channels_last)))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--base-epochs", type=int, default=15)
    parser.add_argument("--finetune-epochs", type=int, default=5)
    parser.add_argument("--macs-ratio", type=float, default=0.5, help="Fraction of the MACs every pruned network keeps (results file prune[_DATA]_macsPERCENT.md when not 0.5).")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", default="digits", help="digits or digits-hard (3 channels, 32x32 native).")
    parser.add_argument("--work", type=Path, default=None, help="Keep every finished run here, so a stopped run resumes (default: a temporary directory).")
    parser.add_argument("--shard", default=None, help="i/k: train only every k-th run from the i-th (waiting for the runs it builds on), then exit (needs --work).")
    parser.add_argument("--channels-last", action="store_true", help="Every training in NHWC (faster on CPU; another float32 run, so do not mix layouts in one --work).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = work_dir(args.work, "prune-protocol-")
    data = tuple(get_dataset(args.data, split, 32) for split in ("train", "val", "test"))
    start = time.perf_counter()
    runs = protocol_runs(args, work, data)
    if args.shard is not None:
        if args.work is None:
            parser.error("--shard needs --work: the shards share its finished.jsonl")
        run_shard(work, runs, args.shard, lambda result: f"{result if isinstance(result, float) else result['accuracy_after']:.4f}")
        return
    finished = {key: resumable(work, key, compute) for key, _, compute in runs}
    base_acc = finished["base"]
    scratch_epochs = args.base_epochs + args.finetune_epochs
    results: dict[str, list[dict]] = {method: [finished[run_key(method, seed, args.macs_ratio)] for seed in range(args.seeds)] for method in [*CRITERIA, "precrop"]}
    results["scratch (L1 arch)"] = [
        {"accuracy_after": finished[run_key("scratch", seed, args.macs_ratio)], "macs_kept": results["l1"][seed]["macs_kept"], "accuracy_pruned": None} for seed in range(args.seeds)
    ]
    for method in CRITERIA:
        for seed, summary in enumerate(results[method]):
            print(method, seed, f"{summary['accuracy_after']:.4f}", f"macs kept {summary['macs_kept']:.3f}", flush=True)

    rows = []
    for method, runs in results.items():
        accs = [r["accuracy_after"] for r in runs]
        right_after = [r["accuracy_pruned"] for r in runs if r.get("accuracy_pruned") is not None]
        rows.append([
            method, mean_std([r["macs_kept"] for r in runs]), mean_std(right_after) if right_after else "n/a",
            mean_std(accs), per_seed(accs), difference(accs, [base_acc]),
        ])
    cond = conditions(args.threads)
    md = [
        f"# Pruning: fair protocol on {args.data} (resnet20, 32x32, {args.macs_ratio:.0%} MACs)",
        "",
        f"Unpruned resnet20 ({args.base_epochs} epochs, SGD 0.1 cosine, seed 0): test accuracy **{base_acc:.4f}** ({len(data[2])} test images).",
        f"Each pruned model is fine-tuned for {args.finetune_epochs} epochs (SGD lr 0.01, cosine, same schedule for all); "
        f"{args.seeds} seeds; mean ± std; Δ ± the standard error of the mean over seeds (the unpruned network is one run). `bn` first trains 2 epochs with L1 on BN gammas (1e-4). CHEX explores channels "
        f"during its {args.finetune_epochs} fine-tuning epochs. PreCropping (SNIP densities at initialization) and the scratch "
        f"baseline (the L1-pruned architecture, re-initialized) train from scratch for {scratch_epochs} epochs (SGD 0.1)."
        + (" Every training ran in NHWC (`--channels-last`)." if args.channels_last else ""),
        "",
        markdown_table(["method", "MACs kept", "acc. right after pruning", "acc. after fine-tuning", "per seed", "Δ vs unpruned (points ± s.e.)"], rows),
        "",
        "What a pruned network gains in CPU latency: [prune_latency.md](prune_latency.md).",
        "",
        *conditions_markdown(cond, time.perf_counter() - start),
    ]
    name = "prune" if args.data == "digits" else f"prune_{args.data.replace('-', '_')}"
    write_results(name if args.macs_ratio == 0.5 else f"{name}_macs{args.macs_ratio * 100:g}", "\n".join(md), {"base_accuracy": base_acc, "results": results, "conditions": cond})
    print("\n".join(md))


if __name__ == "__main__":
    main()

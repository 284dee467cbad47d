"""One-shot NAS benchmark: supernet training time and how well one-shot scores rank architectures.

Trains the `mbv2` supernet on digits (or `--data cifar10 --data-root DIR`; 32x32 unless `--image-size`) with the sandwich sampler, then for 20 subnets
spread over the MACs range compares the one-shot score (inherited weights + BN re-calibration;
accuracy and, separately, minus loss) with the accuracy after short stand-alone training from
scratch: Kendall tau and Spearman. With several `--seeds` every subnet is trained once per seed,
the ground truth is the mean accuracy, and the Kendall tau between the seeds' rankings is reported:
it bounds what any evaluator can reach against that ground truth. Writes
benchmarks/results/<name>.md (+ .json).

    python benchmarks/nas_oneshot.py [--epochs 5] [--archs 20] [--standalone-epochs 2] [--seeds 0 1] [--work DIR]

With --work DIR a stopped run resumes: the supernet continues from its last checkpoint (or is reused once
finished), and stand-alone runs already in DIR/finished.jsonl are not trained again. Resume with the same
arguments: the subnets are identified by their position in the MACs-spread list.

The stand-alone runs dominate the cost and need no supernet, so `--shard i/k` trains only every k-th of them
(k processes on one --work) and exits; a last run without --shard trains the supernet and writes the results.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from _common import conditions, conditions_markdown, markdown_table, resumable, work_dir, write_results
from scipy.stats import kendalltau, spearmanr

from slimvision.data import get_dataset
from slimvision.measure import accuracy
from slimvision.nas.correlation import bootstrap_intervals
from slimvision.nas.evaluators import OneShotEvaluator
from slimvision.nas.spaces.mbv2 import Mbv2Space
from slimvision.nas.supernet.train import SupernetConfig, train_supernet
from slimvision.train import TrainConfig, Trainer, seed_everything


def spread_archs(space: Mbv2Space, count: int, seed: int = 0) -> list[dict]:
    """`count` archs with MACs spread evenly over the space (one per MACs quantile of 2,000 samples)."""
    rng = random.Random(seed)
    pool = sorted((space.sample(rng) for _ in range(2000)), key=space.macs)
    return [pool[int(i * (len(pool) - 1) / (count - 1))] for i in range(count)]


def standalone_accuracy(space: Mbv2Space, args, work: Path, index: int, arch: dict, seed: int, splits) -> float:
    """Held-out accuracy of `arch` trained from scratch with `seed`, recorded in `work` (resumed if already there)."""

    def train_and_score() -> float:
        train, val, held_out = splits
        seed_everything(seed)
        model = space.build(arch, train.spec.num_classes, train.spec.in_chans)
        Trainer(model, train, val, TrainConfig(epochs=args.standalone_epochs, seed=seed, channels_last=args.channels_last, progress=False)).fit()
        return accuracy(model, held_out)

    return resumable(work, f"standalone {index} seed {seed} {arch}", train_and_score)


def standalone_splits(args) -> tuple:
    """(train, val, held-out) datasets of the stand-alone runs."""
    return tuple(get_dataset(args.data, split, args.image_size, root=args.data_root) for split in ("train", "val", args.eval_split))


def train_standalone_shard(space: Mbv2Space, args, work: Path, shard: int, count: int) -> None:
    """Every `count`-th (subnet, seed) stand-alone run from the `shard`-th, in the order the full run uses."""
    splits = standalone_splits(args)
    runs = [(index, arch, seed) for index, arch in enumerate(spread_archs(space, args.archs)) for seed in args.seeds]
    for index, arch, seed in runs[shard::count]:
        print(f"subnet {index} seed {seed}: {standalone_accuracy(space, args, work, index, arch, seed, splits):.4f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--archs", type=int, default=20)
    parser.add_argument("--standalone-epochs", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="Stand-alone training seeds per subnet.")
    parser.add_argument("--eval-split", choices=("val", "test"), default="val", help="Split the stand-alone accuracy is measured on.")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--channels-last", action="store_true", help="Supernet and stand-alone training in NHWC (faster on CPU; another float32 run, so do not mix layouts in one --work).")
    parser.add_argument("--oneshot-samples", type=int, default=360, help="Validation images behind each one-shot score.")
    parser.add_argument("--data", default="digits")
    parser.add_argument("--data-root", default=None, help="Local path for cifar10 / imagefolder.")
    parser.add_argument("--supernet", type=Path, default=None, help="Reuse a supernet trained by an earlier run (skips training).")
    parser.add_argument("--name", default="nas_oneshot", help="Results file name in benchmarks/results/.")
    parser.add_argument("--work", type=Path, default=None,
                        help="Keep the supernet and every finished stand-alone run here, so a stopped run resumes (default: a temporary directory).")
    parser.add_argument("--shard", default=None, help="i/k: train only every k-th stand-alone run from the i-th, then exit (needs --work).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    space = Mbv2Space()
    if args.shard is not None:
        if args.work is None:
            parser.error("--shard needs --work: the shards share its finished.jsonl")
        index, count = (int(part) for part in args.shard.split("/"))
        train_standalone_shard(space, args, work_dir(args.work, "nas-bench-"), index, count)
        return
    work = work_dir(args.work, "nas-bench-")
    start = time.perf_counter()
    supernet_dir = args.supernet or work / "supernet"
    if args.supernet is None and not (supernet_dir / "meta.json").is_file():  # a finished supernet in --work is reused
        started = (supernet_dir / "checkpoints").is_dir()
        train_supernet(SupernetConfig("mbv2", "sandwich", args.epochs, seed=0, channels_last=args.channels_last), supernet_dir, args.data, args.image_size, resume=started, data_root=args.data_root)
    supernet_seconds = time.perf_counter() - start
    archs = spread_archs(space, args.archs)
    oneshot_acc = OneShotEvaluator(space, supernet=supernet_dir, metric="accuracy", eval_samples=args.oneshot_samples)
    oneshot_loss = OneShotEvaluator(space, supernet=supernet_dir, metric="loss", eval_samples=args.oneshot_samples)
    splits = standalone_splits(args)
    chans = splits[0].spec.in_chans
    rows, records = [], []
    for index, arch in enumerate(archs):
        by_acc, by_loss = oneshot_acc.score(arch), oneshot_loss.score(arch)
        per_seed = [standalone_accuracy(space, args, work, index, arch, seed, splits) for seed in args.seeds]
        standalone, macs = statistics.mean(per_seed), space.macs(arch, args.image_size, chans)
        records.append({"arch": arch, "macs": macs, "oneshot_accuracy": by_acc, "oneshot_minus_loss": by_loss, "standalone_accuracy": standalone, "standalone_per_seed": per_seed})
        rows.append([index, f"{macs / 1e6:.1f}M", f"{by_acc:.4f}", f"{-by_loss:.4f}", " / ".join(f"{a:.4f}" for a in per_seed)])
        print(rows[-1], flush=True)
    truth = [r["standalone_accuracy"] for r in records]
    correlations = {}
    for key in ("oneshot_accuracy", "oneshot_minus_loss", "macs"):
        scores = [r[key] for r in records]
        correlations[key] = {
            "kendall_tau": kendalltau(scores, truth).statistic, "spearman": spearmanr(scores, truth).statistic,
            # 20 subnets leave a wide interval: resampling them shows how far the tau could move
            "kendall_tau_95": bootstrap_intervals(np.asarray(scores, float), np.asarray(truth, float), 0.1, 2000, 0)["kendall_tau"],
        }
    # How well one seed's ranking predicts another's: the ceiling for any evaluator against this ground truth.
    seed_taus = [kendalltau([r["standalone_per_seed"][i] for r in records], [r["standalone_per_seed"][j] for r in records]).statistic for i, j in itertools.combinations(range(len(args.seeds)), 2)]
    seed_tau = statistics.mean(seed_taus) if seed_taus else None
    cond = conditions(args.threads)
    md = [
        f"# One-shot NAS on {args.data} (mbv2 space, {args.image_size}x{args.image_size})",
        "",
        f"Supernet: sandwich sampler (largest + smallest + 2 random, in-place distillation), {args.epochs} epochs, SGD 0.05 cosine: "
        + (f"**{supernet_seconds / 60:.1f} min** on {args.threads} threads." if args.supernet is None else f"reused from `{args.supernet}` (trained by an earlier run of this script)."),
        (f"{args.archs} subnets spread over the MACs range; one-shot score = validation accuracy (or minus loss) with inherited "
        f"weights after BN re-calibration on 8 batches, on {args.oneshot_samples} validation images; ground truth = {args.eval_split} accuracy after {args.standalone_epochs} epochs "
        f"of stand-alone training from scratch (SGD 0.1, cosine), mean over seeds {', '.join(map(str, args.seeds))}."),
        "",
        markdown_table(
            ["score", "Kendall tau", "95% bootstrap interval (subnets resampled)", "Spearman"],
            [[k if k != "macs" else "MACs (baseline)", f"{v['kendall_tau']:.3f}", "[{:.2f}, {:.2f}]".format(*v["kendall_tau_95"]), f"{v['spearman']:.3f}"]
             for k, v in correlations.items()]
            + ([["stand-alone seed vs seed (ceiling)", f"{seed_tau:.3f}", "", "—"]] if seed_tau is not None else []),
        ),
        "",
        markdown_table(["#", "MACs", "one-shot acc.", "one-shot loss", "stand-alone acc. per seed"], rows),
        "",
        *conditions_markdown(cond, time.perf_counter() - start),
    ]
    write_results(args.name, "\n".join(md), {"supernet_seconds": supernet_seconds, "seeds": args.seeds, "eval_split": args.eval_split, "records": records, "correlations": correlations, "seed_kendall_tau": seed_tau})
    print("\n".join(md))


if __name__ == "__main__":
    main()

"""digits-hard difficulty check: the real `slimvision train` CLI, resnet20 vs a smaller network, several seeds.

Runs (or reuses, when its meta.json exists) one `slimvision train --data digits-hard --image-size 32`
per (model, epochs, seed) under --work, then tabulates test top-1 (10,000 test images), mean and
seed-to-seed std, against the issue's targets. Writes benchmarks/results/digits_hard.md (+ .json).

    nice -n 10 python benchmarks/digits_hard.py --work runs/digits_hard [--seeds 0 1] [--epochs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import conditions, conditions_markdown, markdown_table, write_results
from slimvision.io import atomic_write_json

NARROW_WIDTHS = (8, 16, 32)  # resnet20 at half width: about 4x fewer MACs and params
SMALL_MODEL = f"resnet20 at widths {NARROW_WIDTHS}"


def run_or_reuse(work: Path, model: str, epochs: int, seed: int, threads: int) -> dict:
    """meta.json of one CLI training run, training it first when it is not there yet."""
    out = work / f"{model}_e{epochs}_s{seed}"
    meta = out / "meta.json"
    if not meta.exists():
        command = [sys.executable, "-m", "slimvision", "train", "--model", model, "--data", "digits-hard", "--image-size", "32",
                   "--epochs", str(epochs), "--seed", str(seed), "--out", str(out), "--json"]  # checkpoints every epoch: the curves below read them
        resume = ["--resume"] if (out / "run.json").exists() else []
        print(" ".join(command[2:] + resume), flush=True)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        subprocess.run(command + resume, check=True, stdout=subprocess.DEVNULL, env=env)
    return json.loads(meta.read_text())


def narrow_run_or_reuse(work: Path, epochs: int, seed: int, threads: int) -> dict:
    """The same training as the CLI (Trainer, TrainConfig defaults) for resnet20 at half width, via the Python API."""
    out = work / f"resnet20w8_e{epochs}_s{seed}"
    meta = out / "meta.json"
    if meta.exists():
        return json.loads(meta.read_text())
    import torch

    from slimvision.data import get_dataset
    from slimvision.measure import accuracy, count_macs, count_params
    from slimvision.models.cifar_resnet import CifarResNet
    from slimvision.train import Trainer, TrainConfig, seed_everything

    torch.set_num_threads(threads)
    train, val, test = (get_dataset("digits-hard", split, 32) for split in ("train", "val", "test"))
    seed_everything(seed)
    model = CifarResNet(20, 10, 3, widths=NARROW_WIDTHS)
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    Trainer(model, train, val, TrainConfig(epochs=epochs, seed=seed, progress=False), out).fit()
    metrics = {"accuracy": accuracy(model, test), "params": count_params(model), "macs": count_macs(model, (3, 32, 32)),
               "train_seconds_this_session": time.perf_counter() - start}
    atomic_write_json(meta, {"metrics": metrics})
    return {"metrics": metrics}


def unfinished(work: Path, name: str) -> dict:
    """Where an unfinished run got to: its last checkpointed epoch and validation accuracy."""
    states = sorted((work / name / "checkpoints").glob("epoch_*/state.json"))
    if not states:
        return {"status": "not started"}
    history = json.loads(states[-1].read_text())["history"]
    return {"status": f"unfinished at epoch {history[-1]['epoch']}", "val_accuracy": history[-1].get("val_accuracy")}


def val_history(work: Path, name: str) -> list[float]:
    """Validation top-1 after each epoch, from the run's newest checkpoint (runs saved with --save-every 1)."""
    states = sorted((work / name / "checkpoints").glob("epoch_*/state.json"))
    return [h.get("val_accuracy") for h in json.loads(states[-1].read_text())["history"]] if states else []


def summary(metas: list[dict]) -> dict:
    accuracies = [m["metrics"]["accuracy"] for m in metas]
    return {
        "accuracies": accuracies,
        "mean": statistics.mean(accuracies) if accuracies else None,
        "std": statistics.stdev(accuracies) if len(accuracies) > 1 else None,
        "params": metas[0]["metrics"]["params"] if metas else None,
        "macs": metas[0]["metrics"]["macs"] if metas else None,
        "train_seconds": [m["metrics"]["train_seconds_this_session"] for m in metas],
    }


def welch_p(lower: dict, higher: dict) -> float | None:
    """One-sided p-value that `lower`'s seeds score below `higher`'s (Welch's t-test; needs 2+ seeds each)."""
    if len(lower["accuracies"]) < 2 or len(higher["accuracies"]) < 2:
        return None
    from scipy.stats import ttest_ind

    return float(ttest_ind(lower["accuracies"], higher["accuracies"], equal_var=False, alternative="less").pvalue)


def check(label: str, measured: str, passed: bool | None) -> list[str]:
    return [label, measured, "not measured" if passed is None else ("met" if passed else "NOT met")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True, help="Directory holding (or receiving) the training runs.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--short-epochs", type=int, default=5)
    parser.add_argument("--small-epochs", type=int, default=None, help="Epochs of the smaller network (default: --epochs).")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each run (1 is fastest on a busy machine).")
    parser.add_argument("--only-narrow-seed", type=int, default=None, help="Train just this seed of the narrow network and exit.")
    parser.add_argument("--report-only", action="store_true", help="Tabulate the finished runs; train nothing.")
    parser.add_argument("--note", default="", help="Machine conditions to record (e.g. 'shared with other jobs').")
    args = parser.parse_args()
    start = time.perf_counter()
    if args.only_narrow_seed is not None:
        print(narrow_run_or_reuse(args.work, args.epochs, args.only_narrow_seed, args.threads))
        return
    small_epochs = args.small_epochs or args.epochs
    plan = {
        f"resnet20, {args.epochs} epochs": ("resnet20", args.epochs, args.seeds),
        f"resnet20, {args.short_epochs} epochs": ("resnet20", args.short_epochs, args.seeds),
        f"{SMALL_MODEL}, {small_epochs} epochs": (SMALL_MODEL, small_epochs, args.seeds),
    }
    results, missing, curves = {}, [], []
    for name, (model, epochs, seeds) in plan.items():
        directory = {s: (f"resnet20w8_e{epochs}_s{s}" if model == SMALL_MODEL else f"{model}_e{epochs}_s{s}") for s in seeds}
        metas, done = [], []
        for seed in seeds:
            if val_history(args.work, directory[seed]):
                curves.append([name, seed, " / ".join(f"{v:.3f}" for v in val_history(args.work, directory[seed]))])
            if args.report_only and not (args.work / directory[seed] / "meta.json").exists():
                missing.append([name, seed, *unfinished(args.work, directory[seed]).values()])
                continue
            metas.append(narrow_run_or_reuse(args.work, epochs, seed, args.threads) if model == SMALL_MODEL
                         else run_or_reuse(args.work, model, epochs, seed, args.threads))
            done.append(seed)
        results[name] = summary(metas) | {"seeds": done}
    full, short, small = (results[name] for name in plan)
    same_budget = short if small_epochs == args.short_epochs else full  # the resnet20 runs trained as long as the smaller network
    rows = [
        [name, ", ".join(map(str, r["seeds"])) or "-", ", ".join(f"{a:.4f}" for a in r["accuracies"]) or "-",
         "n/a" if r["mean"] is None else f"{r['mean']:.4f}", "n/a" if r["std"] is None else f"{100 * r['std']:.2f}",
         "n/a" if r["params"] is None else f"{r['params']:,}", "n/a" if r["macs"] is None else f"{r['macs'] / 1e6:.1f}M",
         f"{statistics.mean(r['train_seconds']):.0f}" if r["train_seconds"] else "n/a"]
        for name, r in results.items()
    ]
    both = same_budget["mean"] is not None and small["mean"] is not None
    p_small = welch_p(small, same_budget) if both else None
    checks = [
        check(f"resnet20 after {args.epochs} epochs in 0.80-0.93", "n/a" if full["mean"] is None else f"{full['mean']:.4f}",
              None if full["mean"] is None else 0.80 <= full["mean"] <= 0.93),
        check(f"resnet20 after {args.short_epochs} epochs clearly < 0.97 (at least 1 point and 3 seed std below)",
              "n/a" if short["mean"] is None else f"{short['mean']:.4f} ({100 * (short['mean'] - 0.97):+.2f} points)",
              None if short["mean"] is None else 0.97 - short["mean"] >= max(0.01, 3 * (short["std"] or 0))),
        check(f"resnet20 after {args.short_epochs} epochs < 0.95 (a stricter reading)", "n/a" if short["mean"] is None else f"{short['mean']:.4f}",
              None if short["mean"] is None else short["mean"] < 0.95),
        check(f"{SMALL_MODEL} (4x fewer MACs) lower than resnet20 at {small_epochs} epochs by more than 3 std (or 1.5 points)",
              f"{small['mean']:.4f} vs {same_budget['mean']:.4f} ({100 * (small['mean'] - same_budget['mean']):+.2f} points)" if both else "n/a",
              (same_budget["mean"] - small["mean"] > 3 * max(same_budget["std"] or 0, small["std"] or 0, 0.005)) if both else None),
        check(f"{SMALL_MODEL} lower than resnet20 at {small_epochs} epochs, one-sided Welch t-test over seeds, p < 0.01",
              f"p = {p_small:.2g} ({len(small['accuracies'])} vs {len(same_budget['accuracies'])} seeds)" if p_small is not None else "n/a",
              None if p_small is None else p_small < 0.01),
        check("seed-to-seed std of resnet20 test top-1 <= 0.5 points", "n/a" if full["std"] is None else f"{100 * full['std']:.2f} points",
              None if full["std"] is None else full["std"] <= 0.005),
    ]
    cond = conditions(args.threads) | {"machine": args.note or "not recorded"}
    md = [
        "# digits-hard: is it hard enough?",
        "",
        "Every resnet20 number is the test top-1 of one `slimvision train --model resnet20 --data digits-hard --image-size 32 --epochs E --seed S` "
        f"run with OMP_NUM_THREADS={args.threads} (SGD lr 0.1, 1 warm-up epoch, cosine, batch 64, random shifts: the CLI defaults); "
        f"the smaller network ({SMALL_MODEL}) is trained by the same Trainer and config through the Python API. Default generation "
        "(seed 0: 20,000 train / 5,000 val / 10,000 test images). std is the sample standard deviation over training seeds.",
        "",
        markdown_table(["run", "seeds", "test top-1 per seed", "mean", "std (points)", "params", "MACs", "train wall s (mean)"], rows),
        "",
        markdown_table(["target", "measured", "status"], checks),
        "",
    ]
    if curves:
        md += ["Validation top-1 (5,000 images) after each epoch, from the runs' checkpoints:", "",
               markdown_table(["run", "seed", "val top-1 after epoch 1 / 2 / ..."], curves), ""]
    if missing:
        md += ["Runs that did not finish in the time available (last checkpoint):", "",
               markdown_table(["run", "seed", "status", "val top-1 at that epoch"], [[*m, ""][:4] for m in missing]), ""]
    md += [
        f"Command: `nice -n 10 python benchmarks/digits_hard.py --work {args.work} --seeds {' '.join(map(str, args.seeds))} "
        f"--epochs {args.epochs} --short-epochs {args.short_epochs} --small-epochs {small_epochs} --threads {args.threads}"
        f"{' --report-only' if args.report_only else ''}`",
        "",
        *conditions_markdown(cond, time.perf_counter() - start),
    ]
    write_results("digits_hard", "\n".join(md), {"results": results, "checks": checks, "missing": missing, "val_curves": curves, "conditions": cond})
    print("\n".join(md))


if __name__ == "__main__":
    main()

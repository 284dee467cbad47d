"""Adversarial training vs standard training at equal epochs on digits (small CNN, 8x8).

Each method trains the same model from the same initialisation for the same epochs and schedule,
over several seeds; the test split is scored clean, under FGSM and under PGD (L-inf, eps in
pixel units, random start). Writes benchmarks/results/robust.md (+ .json).

    nice -n 10 python benchmarks/robust.py [--seeds 3] [--epochs 15]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from _common import conditions, conditions_markdown, markdown_table, mean_std, write_results
from slimvision.data import get_dataset
from slimvision.models import create_model
from slimvision.robust import AdversarialConfig, AdversarialTraining, AttackConfig, adversarial_accuracy, corruption_accuracy
from slimvision.train import Trainer, TrainConfig, seed_everything


def train_one(method: str, seed: int, epochs: int, train_attack: AttackConfig, splits) -> tuple[torch.nn.Module, float]:
    """(model trained with `method`, seconds) from the seed's initialisation."""
    seed_everything(seed)
    model = create_model("small_cnn", num_classes=10, in_chans=1)
    spec = splits["train"].spec
    callbacks = [] if method == "standard" else [AdversarialTraining(AdversarialConfig(method, train_attack), spec.mean, spec.std)]
    start = time.perf_counter()
    Trainer(model, splits["train"], None, TrainConfig(epochs=epochs, lr=0.05, seed=seed, progress=False), callbacks=callbacks).fit()
    return model.eval(), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--train-steps", type=int, default=5)
    parser.add_argument("--eval-steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    splits = {split: get_dataset("digits", split) for split in ("train", "test")}
    train_attack = AttackConfig(eps=args.eps, steps=args.train_steps)
    eval_attack = AttackConfig(eps=args.eps, steps=args.eval_steps)
    half_attack = AttackConfig(eps=args.eps / 2, steps=args.eval_steps)
    methods = ("standard", "pgd", "trades")
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    for seed in range(args.seeds):
        for method in methods:
            model, seconds = train_one(method, seed, args.epochs, train_attack, splits)
            scores = adversarial_accuracy(model, splits["test"], ("fgsm", "pgd"), eval_attack)
            half = adversarial_accuracy(model, splits["test"], ("pgd",), half_attack)
            noise = corruption_accuracy(model, splits["test"], ("gaussian_noise", "jpeg"), (3,))
            runs[method].append({"seed": seed, "clean": scores["clean"], "fgsm": scores["fgsm"], "pgd": scores["pgd"],
                                 "pgd_half_eps": half["pgd"], "noise_s3": noise["gaussian_noise"][3], "jpeg_s3": noise["jpeg"][3], "train_seconds": seconds})
            print(method, runs[method][-1], flush=True)
    rows = []
    for method in methods:
        col = lambda key: mean_std([r[key] for r in runs[method]])  # noqa: E731
        rows.append([method, col("clean"), col("fgsm"), col("pgd"), col("pgd_half_eps"), col("noise_s3"), col("jpeg_s3"), f"{sum(r['train_seconds'] for r in runs[method]) / len(runs[method]):.0f}"])
    seed_rows = [[m, r["seed"], f"{r['clean']:.4f}", f"{r['pgd']:.4f}"] for m in methods for r in runs[m]]
    cond = {**conditions(args.threads), "machine": "shared with other jobs (contended 2 cores); times are indicative only"}
    command = "nice -n 10 python benchmarks/robust.py " + " ".join(sys.argv[1:])
    lines = [
        "# Adversarial training vs standard training (digits 8x8, small_cnn)",
        "",
        f"Same initialisation, {args.epochs} epochs, SGD lr 0.05 cosine, batch 64, shift augmentation, for each method; "
        f"{args.seeds} seeds (mean ± std). Training attack: PGD-{args.train_steps} L-inf eps {args.eps} (pixel units of [0, 1]), "
        f"step 2.5·eps/steps, random start; TRADES beta 6. Evaluation on the 360-image test split: FGSM and PGD-{args.eval_steps} "
        f"at eps {args.eps} (random start, seeded), PGD-{args.eval_steps} at eps {args.eps / 2}, gaussian noise and JPEG at severity 3.",
        "",
        markdown_table(["training", "clean", f"FGSM eps {args.eps}", f"PGD-{args.eval_steps} eps {args.eps}", f"PGD-{args.eval_steps} eps {args.eps / 2}",
                        "noise s3", "JPEG s3", "train s / run"], rows),
        "",
        "Per seed:",
        "",
        markdown_table(["training", "seed", "clean", "PGD"], seed_rows),
        "",
        f"Command: `{command}`",
        "",
        *conditions_markdown(cond, time.perf_counter() - began),
    ]
    write_results("robust", "\n".join(lines), {"args": vars(args), "runs": runs, "conditions": cond})


if __name__ == "__main__":
    main()

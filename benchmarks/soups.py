"""Model soups vs their ingredients on digits (small CNN, 8x8).

A model is pretrained once per repeat; K ingredients are fine-tuned from it with different seeds and
learning rates; uniform, greedy and learned (per model and per layer) soups are built from them.
Held-out choices use the val split, accuracy is reported on the test split (and val).
Writes benchmarks/results/soups.md (+ .json).

    nice -n 10 python benchmarks/soups.py [--repeats 3] [--ingredients 5]
"""

from __future__ import annotations

import argparse
import copy
import sys
import time

import torch

from _common import conditions, conditions_markdown, markdown_table, mean_std, write_results
from slimvision.data import get_dataset
from slimvision.measure import accuracy
from slimvision.merge import MergeConfig, merge
from slimvision.models import create_model
from slimvision.train import Trainer, TrainConfig, seed_everything

LEARNING_RATES = (0.005, 0.01, 0.02, 0.04, 0.08, 0.003, 0.06)
SOUPS = {
    "uniform": MergeConfig("uniform"),
    "greedy": MergeConfig("greedy"),
    "learned (per model)": MergeConfig("learned"),
    "learned (per layer)": MergeConfig("learned", per_layer=True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ingredients", type=int, default=5)
    parser.add_argument("--pretrain-epochs", type=int, default=8)
    parser.add_argument("--finetune-epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    splits = {split: get_dataset("digits", split) for split in ("train", "val", "test")}
    records = []
    for repeat in range(args.repeats):
        seed_everything(100 + repeat)
        base = create_model("small_cnn", num_classes=10, in_chans=1)
        Trainer(base, splits["train"], None, TrainConfig(epochs=args.pretrain_epochs, lr=0.05, seed=100 + repeat, progress=False)).fit()
        ingredients = []
        for index in range(args.ingredients):
            model = copy.deepcopy(base)
            config = TrainConfig(epochs=args.finetune_epochs, lr=LEARNING_RATES[index], seed=1000 * repeat + index, warmup_epochs=0, progress=False)
            Trainer(model, splits["train"], None, config).fit()
            ingredients.append(model.eval())
        record = {
            "repeat": repeat,
            "ingredients_test": [accuracy(m, splits["test"]) for m in ingredients],
            "ingredients_val": [accuracy(m, splits["val"]) for m in ingredients],
            "soups": {},
        }
        for name, config in SOUPS.items():
            start = time.perf_counter()
            result = merge(ingredients, config, splits["train"], splits["val"])
            record["soups"][name] = {"test": accuracy(result.model, splits["test"]), "val": accuracy(result.model, splits["val"]),
                                     "kept": result.kept, "seconds": time.perf_counter() - start,
                                     "coefficients": result.coefficients if len(result.coefficients) == 1 else None}
        records.append(record)
        print(record, flush=True)

    def best_val_ingredient(r, split):
        best = max(range(len(r["ingredients_val"])), key=lambda i: r["ingredients_val"][i])
        return r[f"ingredients_{split}"][best]

    rows = [
        ["best ingredient (by val)", mean_std([best_val_ingredient(r, "test") for r in records]), mean_std([best_val_ingredient(r, "val") for r in records]), "1", ""],
        ["mean ingredient", mean_std([sum(r["ingredients_test"]) / len(r["ingredients_test"]) for r in records]),
         mean_std([sum(r["ingredients_val"]) / len(r["ingredients_val"]) for r in records]), "1", ""],
    ]
    for name in SOUPS:
        rows.append([name, mean_std([r["soups"][name]["test"] for r in records]), mean_std([r["soups"][name]["val"] for r in records]),
                     "/".join(str(len(r["soups"][name]["kept"])) for r in records), f"{sum(r['soups'][name]['seconds'] for r in records) / len(records):.1f}"])
    greedy_ok = all(r["soups"]["greedy"]["val"] >= max(r["ingredients_val"]) for r in records)
    cond = {**conditions(args.threads), "machine": "shared with other jobs (contended 2 cores); times are indicative only"}
    command = "nice -n 10 python benchmarks/soups.py " + " ".join(sys.argv[1:])
    lines = [
        "# Model soups vs ingredients (digits 8x8, small_cnn)",
        "",
        f"{args.repeats} repeats; each pretrains small_cnn {args.pretrain_epochs} epochs (SGD lr 0.05) and fine-tunes {args.ingredients} "
        f"ingredients from it for {args.finetune_epochs} epochs with learning rates {list(LEARNING_RATES[:args.ingredients])} and distinct seeds. "
        "Soups re-estimate BatchNorm statistics on 8 training batches of 128. Greedy and learned soups choose on the val split "
        "(359 images); the test split (360 images) is untouched by every choice. Mean ± std over repeats.",
        "",
        markdown_table(["model", "test accuracy", "val accuracy", "ingredients kept (per repeat)", "merge s"], rows),
        "",
        f"Greedy soup never below its best ingredient on val in every repeat: {'yes' if greedy_ok else 'NO'}. "
        "The learned soups' val accuracy is optimistic (their coefficients were fitted on val); compare them on test.",
        "",
        f"Command: `{command}`",
        "",
        *conditions_markdown(cond, time.perf_counter() - began),
    ]
    write_results("soups", "\n".join(lines), {"args": vars(args), "records": records, "conditions": cond})


if __name__ == "__main__":
    main()

"""Distillation benchmark: teacher resnet56; students resnet20 (from scratch) and a 50%-MACs pruned resnet56.

Each loss (none = plain cross-entropy fine-tuning / training, kd, nkd, uskd, feature, ema) with the
same epochs and schedule, >= 3 seeds, mean ± std of test accuracy. Digits at 16x16 to fit the
CPU budget (recorded below). Writes benchmarks/results/distill.md (+ .json); with --data other than
digits, distill_<data>.md/.json.

    python benchmarks/distill.py [--seeds 3] [--image-size 16] [--data digits-hard --image-size 32] [--work DIR]

With --work DIR a stopped run resumes with the same arguments: the teacher and every finished student
run are kept there and not trained again. `--shard i/k` trains every k-th run from the i-th (k processes
on one --work; a run that needs the teacher waits for it, resnet20's none and ema runs train beside it)
and exits; a last run without --shard writes the results.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import statistics
import time
from pathlib import Path

import torch

from _common import conditions, conditions_markdown, difference, markdown_table, mean_std, per_seed, recorded_cpus, resumable, run_shard, train_resumably, work_dir, write_results
from slimvision.data import get_dataset
from slimvision.distill import DistillConfig, distill
from slimvision.io import load_artifact
from slimvision.measure import accuracy, count_macs
from slimvision.models import create_model
from slimvision.prune import PruneConfig, prune
from slimvision.train import TrainConfig, seed_everything
from slimvision.train.run import RunSpec

LOSSES = {
    "none": DistillConfig("none"),
    "kd": DistillConfig("kd"),
    "nkd": DistillConfig("nkd"),
    "uskd": DistillConfig("uskd", student_layer="layer2"),
    "feature": DistillConfig("feature", student_layer="layer3", teacher_layer="layer3"),
    "ema": DistillConfig("ema"),  # the EMA teacher's KD term from 60% of the epochs, as FuSTAL's code
    "ema-step0": DistillConfig("ema", ema_start=0.0),  # ... from the first step
    "ema-decay0.99": DistillConfig("ema", ema_decay=0.99),  # a memory of ~100 steps, for runs shorter than ~1,000
    "ema-warmup": DistillConfig("ema", ema_warmup=True),  # the Mean Teacher warm-up of the decay
}


# losses that need no trained teacher (none: plain cross-entropy; ema: the student's own moving average)
TEACHERLESS = ("none", "ema")
RESNET20, PRUNED = "resnet20 (from scratch)", "resnet56 pruned to 50% MACs (fine-tune)"


def distill_runs(args, work: Path, splits) -> tuple[list, object]:
    """(every run as (key, keys it needs finished first, compute) in the order the full run takes them, a loader of the
    trained teacher and its pruned copy). resnet20's teacherless runs come first: they can train beside the teacher."""
    train, val, test = splits
    size = args.image_size

    @functools.cache
    def teacher_and_pruned():
        teacher = load_artifact(work / "teacher").model
        return teacher, prune(teacher, torch.zeros(1, train.spec.in_chans, size, size), PruneConfig(method="l1", macs_ratio=0.5)).model

    students = {
        RESNET20: (lambda: create_model("resnet20", in_chans=train.spec.in_chans), TrainConfig(epochs=args.student_epochs, lr=0.1, progress=False, channels_last=args.channels_last)),
        PRUNED: (lambda: copy.deepcopy(teacher_and_pruned()[1]), TrainConfig(epochs=args.finetune_epochs, lr=0.01, warmup_epochs=0, progress=False, channels_last=args.channels_last)),
    }
    runs = [("teacher", (), lambda: train_resumably(RunSpec("resnet56", args.data, size, model_kwargs=args.teacher_kwargs, config=TrainConfig(epochs=args.teacher_epochs, seed=0, progress=False, channels_last=args.channels_last)), work / "teacher"))]
    for student_name, (make_student, base_config) in students.items():
        for loss_name, loss_config in LOSSES.items():
            for seed in range(args.seeds):
                needs_teacher = student_name == PRUNED or loss_config.loss not in TEACHERLESS

                def run(make_student=make_student, base_config=base_config, loss_config=loss_config, seed=seed) -> float:
                    seed_everything(seed)
                    student = make_student()
                    teacher = teacher_and_pruned()[0] if loss_config.loss not in TEACHERLESS else None  # the loss ignores it otherwise
                    distill(student, teacher, train, val, loss_config, TrainConfig(**{**base_config.to_dict(), "seed": seed}))
                    return accuracy(student, test)

                runs.append((f"{student_name} {loss_name} {seed}", ("teacher",) if needs_teacher else (), run))
    runs.sort(key=lambda entry: entry[0] != "teacher" and bool(entry[1]))  # stable: the teacher, the teacherless runs, the rest
    return runs, teacher_and_pruned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--teacher-epochs", type=int, default=10)
    parser.add_argument("--teacher-kwargs", type=json.loads, default={}, help='JSON keyword arguments for the resnet56 teacher, e.g. \'{"zero_init_residual": true}\' (a stable start on small data).')
    parser.add_argument("--student-epochs", type=int, default=6)
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", default="digits", help="digits or digits-hard.")
    parser.add_argument("--work", type=Path, default=None, help="Keep the teacher and every finished run here, so a stopped run resumes (default: a temporary directory).")
    parser.add_argument("--shard", default=None, help="i/k: train only every k-th run from the i-th (waiting for the teacher where a run needs it), then exit (needs --work).")
    parser.add_argument("--channels-last", action="store_true", help="Every training in NHWC (faster on CPU; another float32 run, so do not mix layouts in one --work).")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    work = work_dir(args.work, "distill-bench-")
    size = args.image_size
    train, val, test = splits = tuple(get_dataset(args.data, s, size) for s in ("train", "val", "test"))
    runs, teacher_and_pruned = distill_runs(args, work, splits)
    if args.shard is not None:
        if args.work is None:
            parser.error("--shard needs --work: the shards share its finished.jsonl")
        run_shard(work, runs, args.shard, lambda result: f"{result:.4f}" if isinstance(result, float) else "")
        return
    finished = {key: resumable(work, key, compute) for key, _, compute in runs}
    teacher, pruned = teacher_and_pruned()
    teacher_acc = accuracy(teacher, test)
    pruned_acc = accuracy(pruned, test)
    macs_kept = count_macs(pruned, train.spec.input_size) / count_macs(teacher, train.spec.input_size)
    results = {student: {loss: [finished[f"{student} {loss} {seed}"] for seed in range(args.seeds)] for loss in LOSSES} for student in (RESNET20, PRUNED)}
    for student_name, by_loss in results.items():
        for loss_name, accs in by_loss.items():
            print(student_name, loss_name, accs, flush=True)

    rows = []
    for student_name, by_loss in results.items():
        for loss_name, accs in by_loss.items():
            delta = "(baseline)" if loss_name == "none" else difference(accs, by_loss["none"])
            rows.append([student_name, loss_name, mean_std(accs), per_seed(accs), delta])
    nkd, plain = results[PRUNED]["nkd"], results[PRUNED]["none"]
    cond = {**conditions(args.threads), "runs by cpu": recorded_cpus(work)}
    md = [
        f"# Knowledge distillation on {args.data}",
        "",
        f"{args.data} at {size}x{size} ({train.spec.in_chans} channel(s)). Teacher: resnet56"
        + (f" ({json.dumps(args.teacher_kwargs)})" if args.teacher_kwargs else "") + ", "
        f"{args.teacher_epochs} epochs, test accuracy **{teacher_acc:.4f}**. Pruned student: the teacher pruned with L1 to "
        f"{macs_kept:.3f} of its MACs (accuracy right after pruning {pruned_acc:.4f}), fine-tuned {args.finetune_epochs} epochs "
        f"(SGD lr 0.01, cosine). resnet20 student: {args.student_epochs} epochs from scratch (SGD 0.1, 1 warm-up epoch). "
        f"{args.seeds} seeds, mean ± std of test top-1 ({len(test)} images); Δ is against `none` (plain cross-entropy) for the same student, ± the standard error of the difference of the two means."
        + (" Every training ran in NHWC (`--channels-last`)." if args.channels_last else ""),
        "Losses use their published defaults: KD T=4, alpha 0.9; NKD T=1, gamma 1.5 (+CE); USKD alpha 1, beta 0.1, mu 0.005 "
        "(weak head on layer2); feature: 1x1-conv projection of student layer3 to teacher layer3, MSE, weight 1 (+CE); "
        "EMA teacher: decay 0.999, KD T=4, alpha 0.5, from epoch floor(0.6 x epochs) on (ema; ema-decay0.99 with decay 0.99; ema-warmup with the Mean Teacher warm-up of the decay) or from the first step (ema-step0).",
        "",
        markdown_table(["student", "loss", "test top-1", "per seed", "Δ vs none (points ± s.e.)"], rows),
        "",
        f"Acceptance check — pruned resnet56, NKD vs plain fine-tuning for the same epochs: {statistics.mean(nkd):.4f} vs {statistics.mean(plain):.4f} "
        f"({'NKD recovers at least as much' if statistics.mean(nkd) >= statistics.mean(plain) else 'NKD recovers LESS than plain fine-tuning'}).",
        "",
        *conditions_markdown(cond, time.perf_counter() - start),
    ]
    write_results("distill" if args.data == "digits" else f"distill_{args.data.replace('-', '_')}", "\n".join(md), {"teacher_accuracy": teacher_acc, "pruned_accuracy": pruned_acc, "results": results, "conditions": cond})
    print("\n".join(md))


if __name__ == "__main__":
    main()

"""`prune_artifact`: the prune verb end to end — load, measure, prune, fine-tune, measure, save."""

from __future__ import annotations

import copy
import dataclasses
import statistics
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn

from slimvision.data import load_splits, make_loader
from slimvision.errors import ConfigError
from slimvision.io import resolve_model, save_artifact
from slimvision.measure import accuracy, count_macs, count_params, measure_latency, pinned_threads
from slimvision.prune.chex import ChexConfig, ChexExplorer
from slimvision.prune.criteria import CRITERIA
from slimvision.prune.pruner import PruneConfig, PruneResult, classifier_layers, prune, resolve_ignored
from slimvision.prune.schedules import method_hooks
from slimvision.train import Callback, Trainer, TrainConfig, distributed, seed_everything
from slimvision.train.checkpoint import checkpoint_dirs, checkpoint_epoch

LATENCY_BATCHES = (1, 32)
LATENCY_ROUNDS = 5


@dataclasses.dataclass
class FinetuneConfig:
    epochs: int = 0
    lr: float = 0.01
    optimizer: str = "sgd"
    batch_size: int = 64
    seed: int = 0
    channels_last: bool = False  # fine-tune in NHWC (faster CPU convolutions; another float32 run's weights)


def paired_latency_ms(
    before: nn.Module, after: nn.Module, input_size: tuple[int, ...], threads: int | None, rounds: int = LATENCY_ROUNDS, repeats: int = 4
) -> tuple[dict[str, float], dict[str, float]]:
    """Latency (ms) of `before` and `after` per batch size, timed in alternating rounds (A, B, A, B, ...).

    Each round takes the median of `repeats` runs after one warm-up; the result is the median of
    the rounds. Timing the two models back to back, once each, lets whatever else the machine runs
    in between decide the speed-up; alternating rounds expose both to the same conditions.
    """
    samples: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
    with pinned_threads(threads):
        for batch in LATENCY_BATCHES:
            for _ in range(rounds):
                for key, model in (("before", before), ("after", after)):
                    stats = measure_latency(model, input_size, batch, warmup=1, repeats=repeats)
                    samples[key].setdefault(str(batch), []).append(stats.median_ms)
    medians = {key: {b: float(statistics.median(v)) for b, v in per_batch.items()} for key, per_batch in samples.items()}
    return medians["before"], medians["after"]


def finetune(
    model: nn.Module, train_set, val_set, config: FinetuneConfig, callbacks: Sequence[Callback] = (),
    checkpoint_dir: str | Path | None = None, resume: bool = False,
) -> int:
    """Fine-tune `model` in place with the foundation Trainer (cosine schedule, no warm-up); returns the epoch it resumed from.

    With `checkpoint_dir`, a checkpoint is written to `checkpoint_dir/checkpoints/` after each epoch and
    `resume` continues from the newest one there (0 is returned when training started from the beginning).
    """
    if config.epochs <= 0 and not callbacks:
        return 0
    train_config = TrainConfig(
        epochs=max(config.epochs, 1), batch_size=config.batch_size, optimizer=config.optimizer, lr=config.lr,
        warmup_epochs=0, seed=config.seed, progress=True, channels_last=config.channels_last,
    )
    found = checkpoint_dirs(checkpoint_dir) if checkpoint_dir is not None and resume else []
    Trainer(model, train_set, val_set, train_config, out_dir=checkpoint_dir, callbacks=callbacks).fit(resume=bool(found))
    return checkpoint_epoch(found[-1]) if found else 0


def chex_prune(model: nn.Module, example: torch.Tensor, config: PruneConfig, train_set, val_set, finetune_config: FinetuneConfig) -> PruneResult:
    """Train a copy of `model` under CHEX exploration for the fine-tune epochs, then remove its masked channels."""
    budget, fraction = config.budget
    if budget != "macs_ratio":
        raise ConfigError("chex takes a --macs-ratio budget")
    if finetune_config.epochs < 1:
        raise ConfigError("chex explores channels while training: pass --finetune-epochs >= 1")
    model = copy.deepcopy(model)
    ignored = resolve_ignored(model, config.ignore_layers) + classifier_layers(model, example)
    explorer = ChexExplorer(model, example, fraction, ignored, ChexConfig(seed=config.seed))
    params_before, macs_before = count_params(model), count_macs(model, tuple(example.shape[1:]))
    finetune(model, train_set, val_set, finetune_config, [explorer])
    pruned = explorer.finalize(model.eval())
    return PruneResult(pruned, params_before, count_params(pruned), macs_before, count_macs(pruned, tuple(example.shape[1:])))


def calibration_batches(train_set, count: int = 4, batch_size: int = 64) -> list[tuple[torch.Tensor, torch.Tensor]]:
    batches = []
    for index, batch in enumerate(make_loader(train_set, batch_size, shuffle=True, seed=0)):
        if index == count:
            break
        batches.append(batch)
    return batches


def prune_artifact(
    model: str,
    config: PruneConfig,
    out_dir: str | Path,
    data: str | None = None,
    image_size: int | None = None,
    data_root: str | None = None,
    finetune_config: FinetuneConfig | None = None,
    threads: int | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Prune a model directory (or zoo model) and save the result; returns the before/after summary.

    With `checkpoint_dir` the fine-tuning after the last pruning step writes checkpoints there and
    `resume` continues it from the newest one (pruning is deterministic, so the shapes match).

    Under `torchrun` every rank prunes the same way and fine-tunes data-parallel; rank 0 measures,
    saves and returns the summary, other ranks return {}.
    """
    with distributed.process_group():
        return _prune_artifact(model, config, out_dir, data, image_size, data_root, finetune_config, threads, checkpoint_dir, resume)


def _prune_artifact(
    model: str, config: PruneConfig, out_dir: str | Path, data: str | None, image_size: int | None, data_root: str | None,
    finetune_config: FinetuneConfig | None, threads: int | None, checkpoint_dir: str | Path | None = None, resume: bool = False,
) -> dict[str, Any]:
    lead = distributed.is_lead()
    finetune_config = finetune_config or FinetuneConfig(seed=config.seed)
    source, arch, meta = resolve_model(model)
    train_set, val_set, test_set = load_splits(meta.get("data"), data, image_size, data_root)
    if not meta:  # a fresh zoo model: build it for this data, initialised by the seed (not by what ran before in the process)
        seed_everything(config.seed)
        source, arch, _ = resolve_model(model, num_classes=train_set.spec.num_classes, in_chans=train_set.spec.in_chans)
    input_size = train_set.spec.input_size
    example = torch.zeros(1, *input_size)
    accuracy_before = accuracy(source, test_set)

    if CRITERIA.get(config.method).during_training:
        result = chex_prune(source, example, config, train_set, val_set, finetune_config)
        accuracy_pruned = None  # channels are chosen while training: there is no "right after pruning" model
        resumed_from_epoch = 0  # CHEX explores from its start: its masks are not in the checkpoints
    else:
        hooks = method_hooks(config, source, example, train_set, val_set, finetune_config)
        result = prune(
            source, example, config, calibration_batches(train_set),
            between_steps=lambda pruned, step: finetune(pruned, train_set, val_set, finetune_config),
            ratio_dict_fn=hooks.ratio_dict_fn,
        )
        accuracy_pruned = accuracy(result.model, test_set)
        resumed_from_epoch = finetune(result.model, train_set, val_set, finetune_config, checkpoint_dir=checkpoint_dir, resume=resume)
    pruned = result.model.eval()
    if not lead:
        return {}
    accuracy_after = accuracy(pruned, test_set)
    latency_before, latency_after = paired_latency_ms(source.eval(), pruned, input_size, threads)
    summary = {
        "method": config.method,
        "budget": dict([config.budget]),
        "params_before": result.params_before,
        "params_after": result.params_after,
        "macs_before": result.macs_before,
        "macs_after": result.macs_after,
        "macs_kept": result.macs_kept,
        "kept_layers": result.kept_layers,
        "accuracy_before": accuracy_before,
        "accuracy_pruned": accuracy_pruned,
        "accuracy_after": accuracy_after,
        "latency_ms_before": latency_before,
        "latency_ms_after": latency_after,
        "speedup": {b: latency_before[b] / latency_after[b] for b in latency_before},
        "finetune_epochs": finetune_config.epochs,
        "resumed_from_epoch": resumed_from_epoch,
    }
    conditions = {
        "latency": (
            f"CPU, {threads or torch.get_num_threads()} threads, before/after in {LATENCY_ROUNDS} alternating rounds "
            "(median of 4 runs after 1 warm-up each; median of the rounds), same process, eval fp32"
        ),
        "accuracy": f"top-1 on the {test_set.spec.name} test split ({len(test_set)} images)",
        "input_size": list(input_size),
    }
    out_meta = {
        "data": train_set.spec.to_dict(),
        "metrics": {"accuracy": accuracy_after, "params": result.params_after, "macs": result.macs_after},
        "metrics_conditions": conditions,
        "prune": {**summary, "config": dataclasses.asdict(config), "finetune": dataclasses.asdict(finetune_config)},
        "parent": str(model),
    }
    save_artifact(pruned, arch.with_shapes_of(pruned), out_dir, out_meta)
    return summary

"""`build_bench`: train N sampled cell architectures under fixed seeds and append one JSON line per arch."""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from slimvision.errors import ConfigError
from slimvision.progress import progress_bar


@dataclass
class BenchConfig:
    space: str = "cell"
    n: int = 200
    epochs: int = 2
    data: str = "digits"
    image_size: int | None = None
    seeds: tuple[int, ...] = (0, 1)
    sample_seed: int = 0
    batch_size: int = 64
    lr: float = 0.05
    weight_decay: float = 5e-4
    augment: bool = False
    channels: int = 8
    cells_per_stage: int = 1
    threads: int = 1
    shard: tuple[int, int] = (0, 1)  # (index, count): this process trains todo[index::count]; shards share the file
    progress: bool = True
    space_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class BenchResult:
    path: Path
    n_archs: int
    n_new: int
    seconds: float


def _conditions(config: BenchConfig) -> dict[str, Any]:
    from slimvision.io import environment_record

    cond = asdict(config)
    for volatile in ("progress", "n", "threads", "shard"):  # may change between a build and its resumption
        cond.pop(volatile)
    cond["seeds"] = list(config.seeds)
    return {"kind": "header", "format": "slimvision-nas-bench/1", "conditions": cond,
            "optimizer": _schedule(), "environment": environment_record()}


def _schedule() -> str:
    from slimvision.train import TrainConfig

    defaults = TrainConfig()
    return f"sgd momentum {defaults.momentum:g}, {defaults.warmup_epochs:g} epoch linear warm-up, then cosine lr"


def _read_existing(path: Path, header: dict[str, Any]) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not lines or lines[0].get("kind") != "header":
        raise ConfigError(f"{path}: not a slimvision NAS bench file (no header line); refusing to append")
    if lines[0]["conditions"] != header["conditions"]:
        raise ConfigError(f"{path}: was built with different conditions {lines[0]['conditions']}; use another --out")
    return lines[1:]


def train_one(space: Any, arch: dict[str, Any], config: BenchConfig, seed: int, train_set: Any, val_set: Any, test_set: Any) -> dict[str, Any]:
    """Train arch once from scratch with `seed`; returns val/test accuracy and train seconds."""
    from slimvision.measure import accuracy
    from slimvision.train import TrainConfig, Trainer

    torch.manual_seed(seed)
    model = space.build(arch, train_set.spec.num_classes, train_set.spec.in_chans)
    train_config = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, weight_decay=config.weight_decay,
                               seed=seed, augment=config.augment, progress=False, device="cpu")
    start = time.perf_counter()
    trainer = Trainer(model, train_set, val_set, train_config)
    result = trainer.fit()
    seconds = time.perf_counter() - start
    final = trainer.eval_model
    return {"seed": seed, "val_accuracy": float(result.final["val_accuracy"]), "test_accuracy": float(accuracy(final, test_set)),
            "train_loss": float(result.final["train_loss"]), "train_seconds": seconds}


def build_bench(config: BenchConfig, out: str | Path) -> BenchResult:
    """Train `config.n` distinct sampled archs (all seeds each); append-only, so an interrupted build resumes."""
    from slimvision.data import get_dataset
    from slimvision.measure import count_macs, count_params
    from slimvision.measure.latency import pinned_threads
    from slimvision.nas.space import SPACES

    if config.n < 1 or config.epochs < 1 or not config.seeds:
        raise ConfigError("bench build needs n >= 1, epochs >= 1 and at least one seed")
    space = SPACES.get(config.space)(channels=config.channels, cells_per_stage=config.cells_per_stage, **config.space_kwargs)
    path = Path(out)
    header = _conditions(config)
    done = _read_existing(path, header) if path.exists() else []
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(header) + "\n")
    done_keys = {row["arch"] for row in done}
    train_set = get_dataset(config.data, "train", image_size=config.image_size)
    val_set = get_dataset(config.data, "val", image_size=config.image_size)
    test_set = get_dataset(config.data, "test", image_size=config.image_size)
    rng = random.Random(config.sample_seed)
    todo: list[dict[str, Any]] = []
    seen: set[str] = set()
    attempts = 0
    while len(todo) + len(seen & done_keys) < config.n:  # the same deterministic stream of distinct archs every time
        arch = space.sample(rng)
        key = _arch_key(space, arch)
        attempts += 1
        if attempts > 100 * config.n:
            raise ConfigError(f"space {config.space!r} has fewer than {config.n} distinct architectures")
        if key in seen:
            continue
        seen.add(key)
        if key not in done_keys:
            todo.append(arch)
    todo = todo[config.shard[0]::config.shard[1]]
    start = time.perf_counter()
    input_size = (train_set.spec.in_chans, *train_set.images.shape[-2:])
    with pinned_threads(config.threads), progress_bar(config.progress) as progress:
        task = progress.add_task("bench", total=len(todo))
        for arch in todo:
            model = space.build(arch, train_set.spec.num_classes, train_set.spec.in_chans)
            runs = [train_one(space, arch, config, seed, train_set, val_set, test_set) for seed in config.seeds]
            row = {"arch": _arch_key(space, arch), "arch_dict": arch, "params": count_params(model),
                   "macs": int(count_macs(model, input_size)), "runs": runs}
            # One O_APPEND write per arch: a crash loses at most the arch in flight, and shards never interleave lines.
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, (json.dumps(row) + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            progress.advance(task)
    return BenchResult(path, len(done) + len(todo), len(todo), time.perf_counter() - start)


def _arch_key(space: Any, arch: dict[str, Any]) -> str:
    if space.name == "cell":
        from slimvision.nas.spaces.cell import arch_to_string

        return arch_to_string(arch)
    return space.encode(arch)

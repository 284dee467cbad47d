"""`train_run`: the train verb end to end (data + zoo model + Trainer + artifact), resumable."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from slimvision.data import SPLITS, get_dataset
from slimvision.errors import ConfigError
from slimvision.io import atomic_write_json, load_user_weights, read_json, source_arch, write_artifact_files
from slimvision.measure import accuracy, count_macs, count_params
from slimvision.models import MODELS, ModelSource, parse_model_source
from slimvision.train.checkpoint import checkpoint_dirs
from slimvision.train import distributed
from slimvision.train.config import TrainConfig
from slimvision.train.trainer import Trainer, seed_everything

RUN_FILE = "run.json"


@dataclass
class RunSpec:
    """What to train on what: recorded in `run.json` so `resume` needs only the directory."""

    model: str
    data: str
    image_size: int | None = None
    data_root: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    skip_bad_images: bool = False  # leave undecodable images out (counted and reported) instead of stopping
    config: TrainConfig = field(default_factory=TrainConfig)
    weights: str | None = None  # start from these weights (.pt / .safetensors) instead of the builder's initialization

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "config": self.config.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunSpec":
        # a run recorded before the EMA warm-up existed resumes with the rule it started with
        return cls(**{**data, "config": TrainConfig(**{"ema_warmup": False, **data["config"]})})


def load_run_spec(out_dir: str | Path) -> RunSpec:
    return RunSpec.from_dict(read_json(Path(out_dir) / RUN_FILE))


def train_run(spec: RunSpec, out_dir: str | Path, resume: bool = False, download: bool = False) -> dict[str, Any]:
    """Train `spec` into `out_dir` (checkpoints + final artifact); returns the metrics written to meta.json.

    Under `torchrun` the run is data-parallel (see slimvision.train.trainer); rank 0 writes.
    """
    with distributed.process_group():
        return _train_run(spec, Path(out_dir), resume, download)


def _train_run(spec: RunSpec, out_dir: Path, resume: bool, download: bool) -> dict[str, Any]:
    source = ModelSource(spec.model, spec.model_kwargs, spec.weights)
    if parse_model_source(spec.model)[0] == "zoo" and spec.model not in MODELS:
        raise ConfigError(f"unknown model {spec.model!r}; known: {', '.join(MODELS.names())}")
    if not resume and checkpoint_dirs(out_dir):
        raise ConfigError(f"{out_dir} already holds a training run; pass --resume to continue it or choose another --out")
    if spec.skip_bad_images and spec.data != "imagefolder":
        raise ConfigError(f"--skip-bad-images applies to imagefolder data (image files decoded one by one), not {spec.data!r}")
    lead = distributed.rank() == 0
    options = {"skip_bad_images": True} if spec.skip_bad_images else {}
    if download and lead:
        get_dataset(spec.data, "test", spec.image_size, root=spec.data_root, download=True)
    distributed.barrier()
    train_set, val_set, test_set = (get_dataset(spec.data, split, spec.image_size, root=spec.data_root, **options) for split in SPLITS)
    for dataset in (train_set, val_set, test_set):
        dataset.loader_workers = spec.config.workers
    data_spec = train_set.spec
    arch = source_arch(source, num_classes=data_spec.num_classes, in_chans=data_spec.in_chans)
    seed_everything(spec.config.seed)  # the initial weights depend on the seed too
    model = arch.build()
    if spec.weights:
        load_user_weights(model, spec.weights)
    count_macs(model, data_spec.input_size)  # fails early, with a clear message, on an input size the model cannot take
    if lead:
        out_dir.mkdir(parents=True, exist_ok=True)
        if not resume:
            atomic_write_json(out_dir / RUN_FILE, spec.to_dict())
    trainer = Trainer(model, train_set, val_set, spec.config, out_dir)
    start = time.perf_counter()
    result = trainer.fit(resume=resume)
    if not lead:
        return {}
    final_model = trainer.eval_model
    metrics = {
        "accuracy": accuracy(final_model, test_set, batch_size=spec.config.batch_size),
        "val_accuracy": result.final.get("val_accuracy"),
        "params": count_params(final_model),
        "macs": count_macs(final_model, data_spec.input_size),
        "train_seconds_this_session": time.perf_counter() - start,
        "epochs": result.epochs_run,
        "world_size": trainer.world_size,
    }
    skipped = sum(h.get("skipped_images", 0) for h in result.history)
    if spec.skip_bad_images:
        metrics["skipped_images"] = skipped
    meta = {
        "data": data_spec.to_dict(),
        "metrics": metrics,
        "metrics_conditions": {"accuracy": f"top-1 on the {spec.data} test split ({len(test_set)} images), recorded eval preprocessing"},
        "train": spec.to_dict(),
        "train_transform": trainer.augment_description,
        "history": result.history,
        "parent": None,
    }
    write_artifact_files(final_model, arch, out_dir, meta)
    return metrics

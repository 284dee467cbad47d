"""Recipes: a YAML file naming a model, a dataset and an ordered list of stages, validated whole before anything runs.

Each stage takes the options of its CLI verb and is turned into that verb's config object here, so a
bad value in the last stage is reported (with its key path) before the first stage starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from slimvision.errors import ConfigError, SlimvisionError

MODEL_STAGES = ("train", "prune", "distill", "derive")  # stages whose output is an fp32 model artifact later stages can take


def _library_config(build) -> Any:
    """Build a verb's config object; its own checks become validation errors that keep the key path."""
    try:
        return build()
    except SlimvisionError as exc:
        raise ValueError(str(exc)) from None


class _Stage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Optional[str] = Field(None, description="Directory name of the stage's output (default: the stage kind).")
    label: Optional[str] = Field(None, description="How the report names this stage's artifact.")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is not None and (not value or value.startswith(".") or "/" in value or "\\" in value or value in ("recipe.yaml", "plots")):
            raise ValueError(f"stage name {value!r} must be a plain directory name")
        return value

    @property
    def stage_name(self) -> str:
        return self.name or self.stage  # type: ignore[attr-defined]


class TrainStage(_Stage):
    stage: Literal["train"]
    model: Optional[str] = None  # default: the recipe's model
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    weights: Optional[str] = None
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: Optional[float] = None
    weight_decay: Optional[float] = None
    label_smoothing: float = 0.0
    ema_decay: Optional[float] = None
    ema_warmup: bool = True
    save_every: int = 1
    seed: Optional[int] = None  # default: the recipe's seed

    def train_config(self, seed: int):
        from slimvision.train import TrainConfig

        return TrainConfig(
            epochs=self.epochs, batch_size=self.batch_size, optimizer=self.optimizer, lr=self.lr, weight_decay=self.weight_decay,
            label_smoothing=self.label_smoothing, ema_decay=self.ema_decay, ema_warmup=self.ema_warmup, save_every=self.save_every, seed=self.seed if self.seed is not None else seed,
        )

    @model_validator(mode="after")
    def _check(self) -> "TrainStage":
        _library_config(lambda: self.train_config(0))
        return self


class PruneStage(_Stage):
    stage: Literal["prune"]
    input: Optional[str] = None  # an earlier model stage (default: the latest one)
    method: str = "l1"
    macs_ratio: Optional[float] = None
    params_ratio: Optional[float] = None
    channel_ratio: Optional[float] = None
    global_pruning: bool = False
    iterative: int = Field(1, ge=1)
    finetune_epochs: int = Field(0, ge=0)
    lr: float = Field(0.01, gt=0)
    ignore_layers: list[str] = Field(default_factory=list)
    saliency: str = "snip"
    sparsity_epochs: int = Field(0, ge=0)
    seed: Optional[int] = None

    def prune_config(self, seed: int):
        from slimvision.prune import PruneConfig

        return PruneConfig(
            method=self.method, macs_ratio=self.macs_ratio, params_ratio=self.params_ratio, channel_ratio=self.channel_ratio,
            global_pruning=self.global_pruning, iterative_steps=self.iterative, ignore_layers=tuple(self.ignore_layers),
            seed=self._seed(seed), saliency=self.saliency, sparsity_epochs=self.sparsity_epochs,
        )

    def finetune_config(self, seed: int):
        from slimvision.prune import FinetuneConfig

        return FinetuneConfig(epochs=self.finetune_epochs, lr=self.lr, seed=self._seed(seed))

    def _seed(self, seed: int) -> int:
        return self.seed if self.seed is not None else seed

    @model_validator(mode="after")
    def _check(self) -> "PruneStage":
        from slimvision.prune import CRITERIA

        if self.method not in CRITERIA.names():
            raise ValueError(f"unknown method {self.method!r}; use one of {', '.join(CRITERIA.names())}")
        _library_config(lambda: self.prune_config(0))
        return self


class DistillStage(_Stage):
    stage: Literal["distill"]
    input: Optional[str] = None  # the student: an earlier model stage (default: the latest one)
    teacher: Optional[str] = None  # an earlier stage's name or any model source
    teacher_kwargs: dict[str, Any] = Field(default_factory=dict)
    teacher_weights: Optional[str] = None
    loss: str = "kd"
    temperature: Optional[float] = Field(None, gt=0)
    alpha: Optional[float] = None
    beta: Optional[float] = Field(None, ge=0)
    mu: Optional[float] = Field(None, ge=0)
    uskd_ranking: str = "prob"
    ema_decay: float = Field(0.999, ge=0, lt=1)
    ema_start: float = Field(0.6, ge=0, lt=1)
    ema_warmup: bool = False
    preset: Optional[str] = None
    student_layer: Optional[str] = None
    teacher_layer: Optional[str] = None
    epochs: int = 10
    lr: float = Field(0.01, gt=0)
    seed: Optional[int] = None

    def distill_config(self):
        from slimvision.distill import DistillConfig

        return DistillConfig(self.loss, self.temperature, self.alpha, self.student_layer, self.teacher_layer,
                             beta=self.beta, mu=self.mu, uskd_ranking=self.uskd_ranking, ema_decay=self.ema_decay, ema_start=self.ema_start, ema_warmup=self.ema_warmup, preset=self.preset)

    def train_config(self, seed: int):
        from slimvision.train import TrainConfig

        return TrainConfig(epochs=self.epochs, lr=self.lr, seed=self.seed if self.seed is not None else seed, warmup_epochs=0)

    @model_validator(mode="after")
    def _check(self) -> "DistillStage":
        _library_config(self.distill_config)
        _library_config(lambda: self.train_config(0))
        if self.teacher is None and self.loss not in ("uskd", "ema", "none"):
            raise ValueError(f"loss {self.loss!r} needs a teacher: an earlier stage's name or a model source")
        return self


class QuantizeStage(_Stage):
    stage: Literal["quantize"]
    input: Optional[str] = None
    backend: str = "auto"
    mode: str = "static"
    calib_samples: int = 256
    calib_method: str = "minmax"
    keep_float: int = Field(0, ge=0)
    accuracy_limit: float = 0.01
    qat_epochs: int = 3
    seed: Optional[int] = None

    def quant_config(self, seed: int, threads: int | None):
        from slimvision.quant import QuantConfig

        return QuantConfig(
            backend=self.backend, mode=self.mode, calib_samples=self.calib_samples, calib_method=self.calib_method, keep_float=self.keep_float,
            accuracy_limit=self.accuracy_limit, qat_epochs=self.qat_epochs, threads=threads, seed=self.seed if self.seed is not None else seed,
        )

    @model_validator(mode="after")
    def _check(self) -> "QuantizeStage":
        _library_config(lambda: self.quant_config(0, None))
        return self


class ExportStage(_Stage):
    stage: Literal["export"]
    input: Optional[str] = None


class CkptCompressStage(_Stage):
    stage: Literal["ckpt-compress"]
    input: Optional[str] = None  # a train stage (default: the latest one)
    rule: str = "official"
    bits: int = 4
    lossless: bool = False
    alpha: Optional[float] = Field(None, ge=0)  # None: the official ExCP default
    beta: Optional[float] = Field(None, ge=0)
    base_bits: Optional[int] = None

    def compress_config(self):
        from slimvision.ckpt.excp import CompressConfig

        given = {k: v for k, v in {"alpha": self.alpha, "beta": self.beta}.items() if v is not None}
        return CompressConfig(rule=self.rule, bits=self.bits, lossless=self.lossless, base_bits=self.base_bits, **given)

    @model_validator(mode="after")
    def _check(self) -> "CkptCompressStage":
        _library_config(self.compress_config)
        return self


class SupernetStage(_Stage):
    stage: Literal["supernet"]
    space: str = "mbv2"
    sampler: str = "sandwich"
    epochs: int = Field(10, ge=1)
    lr: float = Field(0.05, gt=0)
    batch_size: int = Field(64, ge=1)
    seed: Optional[int] = None

    def supernet_config(self, seed: int):
        from slimvision.nas.supernet.train import SupernetConfig

        return SupernetConfig(self.space, self.sampler, self.epochs, self.lr, self.batch_size, self.seed if self.seed is not None else seed)

    @model_validator(mode="after")
    def _check(self) -> "SupernetStage":
        from slimvision.nas.sampling import SAMPLERS
        from slimvision.nas.supernet.train import SUPERNETS

        if self.space not in SUPERNETS:
            raise ValueError(f"no supernet for space {self.space!r}; supernets exist for: {', '.join(SUPERNETS)}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; use one of {', '.join(SAMPLERS)}")
        return self


class SearchStage(_Stage):
    stage: Literal["search"]
    space: str = "mbv2"
    strategy: str = "evolution"
    evaluator: str = "oneshot"
    supernet: Optional[str] = None  # an earlier supernet stage or a supernet directory (default: the latest supernet stage)
    max_macs: Optional[Union[str, float]] = None  # e.g. 30M
    max_params: Optional[Union[str, float]] = None
    max_latency_ms: Optional[float] = Field(None, gt=0)
    trials: int = Field(50, ge=1)
    population: int = Field(16, ge=1)
    threads: Optional[int] = Field(None, ge=1)  # default: the recipe's threads, else 1
    seed: Optional[int] = None

    def search_config(self, seed: int, image_size: int, in_chans: int, num_classes: int, threads: int | None):
        from slimvision.nas.strategies import SearchConfig

        return SearchConfig(
            strategy=self.strategy, trials=self.trials, population=self.population, seed=self.seed if self.seed is not None else seed,
            image_size=image_size, in_chans=in_chans, num_classes=num_classes, threads=self.threads or threads or 1,
        )

    def constraints(self):
        from slimvision.config import parse_count
        from slimvision.nas.strategies import Constraints

        count = lambda value: None if value is None else parse_count(value)  # noqa: E731
        return Constraints(count(self.max_macs), count(self.max_params), self.max_latency_ms)

    @model_validator(mode="after")
    def _check(self) -> "SearchStage":
        from slimvision.nas import EVALUATORS, SPACES

        if self.space not in SPACES.names():
            raise ValueError(f"unknown search space {self.space!r}; use one of {', '.join(SPACES.names())}")
        if self.evaluator not in EVALUATORS.names():
            raise ValueError(f"unknown evaluator {self.evaluator!r}; use one of {', '.join(EVALUATORS.names())}")
        _library_config(lambda: self.search_config(0, 32, 3, 10, None))
        _library_config(self.constraints)
        return self


class DeriveStage(_Stage):
    stage: Literal["derive"]
    input: Optional[str] = None  # an earlier search stage (default: the latest one)
    index: Optional[int] = Field(None, ge=0)  # Pareto point to derive (default: the one with the best score)
    inherit: bool = True  # take the weights from the search's supernet (BN re-calibrated); false: fresh init


Stage = Annotated[
    Union[TrainStage, PruneStage, DistillStage, QuantizeStage, ExportStage, CkptCompressStage, SupernetStage, SearchStage, DeriveStage],
    Field(discriminator="stage"),
]
STAGE_KINDS = ("train", "prune", "distill", "quantize", "export", "ckpt-compress", "supernet", "search", "derive")


class DataOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    root: Optional[str] = None
    image_size: Optional[int] = Field(None, ge=1)

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        from slimvision.data import DATASETS

        if value not in DATASETS:
            raise ValueError(f"unknown dataset {value!r}; known: {', '.join(DATASETS)}")
        return value


class Recipe(BaseModel):
    """A whole recipe: where the model and data come from, and the stages in order."""

    model_config = ConfigDict(extra="forbid")

    model: Optional[str] = None
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    weights: Optional[str] = None
    data: DataOptions
    seed: int = 0
    threads: Optional[int] = Field(None, ge=1)
    stages: list[Stage] = Field(min_length=1)

    def stage(self, name: str):
        """The stage called `name`."""
        for stage in self.stages:
            if stage.stage_name == name:
                return stage
        raise ConfigError(f"the recipe has no stage {name!r}; its stages: {', '.join(self.names())}")

    def names(self) -> list[str]:
        return [stage.stage_name for stage in self.stages]


def _location(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "recipe"


def _resolve_path(value: str | None, base: Path) -> str | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _resolve_source(spec: str | None, base: Path) -> str | None:
    """A model source with a relative file or directory made relative to the recipe's folder."""
    if spec is None:
        return None
    module, sep, function = spec.rpartition(":")
    if sep and module.endswith(".py"):
        return f"{_resolve_path(module, base)}:{function}"
    if not sep and ("/" in spec or spec.startswith(".")):
        return _resolve_path(spec, base)
    return spec


def _check_source(spec: str, where: str) -> None:
    """Fail now, with the key path, on a model source that cannot be found (a missing file, an unknown zoo name)."""
    from slimvision.io import is_artifact_dir
    from slimvision.models import MODELS
    from slimvision.models.sources import FILE, ZOO, parse_model_source

    try:
        kind, target = parse_model_source(spec)
    except SlimvisionError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if kind == FILE and not Path(target.rpartition(":")[0]).is_file():
        raise ConfigError(f"{where}: model file not found: {target.rpartition(':')[0]}")
    if kind == ZOO and spec not in MODELS and not is_artifact_dir(spec):
        what = "model directory not found or incomplete" if Path(spec).exists() or "/" in spec else "unknown zoo model"
        raise ConfigError(f"{where}: {what}: {spec!r} (zoo: {', '.join(MODELS.names())})")


def _check_file(value: str | None, where: str, directory: bool = False) -> None:
    if value is not None and not (Path(value).is_dir() if directory else Path(value).is_file()):
        raise ConfigError(f"{where}: {'directory' if directory else 'file'} not found: {value}")


def _check_supernet(recipe: Recipe, stage: SearchStage, seen: dict[str, str], where: str) -> None:
    """A search's supernet: an earlier supernet stage, an existing directory, or (one-shot evaluators) an earlier supernet stage to default to."""
    if stage.supernet is None:
        if stage.evaluator.startswith("oneshot") and "supernet" not in seen.values():
            raise ConfigError(f"{where}.supernet: the {stage.evaluator!r} evaluator needs a supernet: put a supernet stage first or name a supernet directory")
    elif stage.supernet in seen:
        if seen[stage.supernet] != "supernet":
            raise ConfigError(f"{where}.supernet: stage {stage.supernet!r} is not a supernet stage")
    elif stage.supernet in recipe.names():
        raise ConfigError(f"{where}.supernet: stage {stage.supernet!r} runs later; the supernet must come from an earlier stage")
    else:
        _check_file(stage.supernet, f"{where}.supernet", directory=True)


def _check_references(recipe: Recipe, label: str) -> None:
    """Cross-stage checks: unique names, inputs and teachers naming earlier stages of the right kind, files that exist."""
    seen: dict[str, str] = {}
    has_model = recipe.model is not None
    if recipe.model:
        _check_source(recipe.model, f"{label}: model")
    _check_file(recipe.weights, f"{label}: weights")
    _check_file(recipe.data.root, f"{label}: data.root", directory=True)
    if recipe.data.name in ("cifar10", "imagefolder") and recipe.data.root is None:
        raise ConfigError(f"{label}: data.root: dataset {recipe.data.name!r} needs a local path")
    for index, stage in enumerate(recipe.stages):
        where = f"{label}: stages[{index}].{stage.stage}"
        name = stage.stage_name
        if name in seen:
            raise ConfigError(f"{where}: a stage named {name!r} already exists (stages must have distinct names; add name: ...)")
        if stage.stage == "train":
            if stage.model:
                _check_source(stage.model, f"{where}.model")
            elif not recipe.model:
                raise ConfigError(f"{where}.model: no model: set the recipe's model or the stage's")
            _check_file(stage.weights, f"{where}.weights")
            has_model = True
        elif stage.stage == "supernet":
            pass  # trains on the recipe's data; reads no model
        elif stage.stage == "search":
            _check_supernet(recipe, stage, seen, where)
        elif stage.stage == "derive":
            if stage.input is not None and seen.get(stage.input) != "search":
                raise ConfigError(f"{where}.input: {stage.input!r} is not an earlier search stage")
            if stage.input is None and "search" not in seen.values():
                raise ConfigError(f"{where}: needs an earlier search stage (its Pareto front is what is derived)")
        else:
            wanted = ("train",) if stage.stage == "ckpt-compress" else MODEL_STAGES
            if stage.input is not None:
                if seen.get(stage.input) not in wanted:
                    raise ConfigError(f"{where}.input: {stage.input!r} is not an earlier {' or '.join(wanted)} stage")
            elif stage.stage == "ckpt-compress" and "train" not in seen.values():
                raise ConfigError(f"{where}: needs an earlier train stage (its checkpoints are compressed)")
            elif not has_model:
                raise ConfigError(f"{where}: no model to take: set the recipe's model or put a train stage first")
        if stage.stage == "distill" and stage.teacher is not None:
            if stage.teacher in seen:
                if seen[stage.teacher] not in MODEL_STAGES:
                    raise ConfigError(f"{where}.teacher: stage {stage.teacher!r} does not produce a float model")
            elif stage.teacher in recipe.names():
                raise ConfigError(f"{where}.teacher: stage {stage.teacher!r} runs later; a teacher must be an earlier stage")
            else:
                _check_source(stage.teacher, f"{where}.teacher")
            _check_file(stage.teacher_weights, f"{where}.teacher_weights")
        if stage.stage in MODEL_STAGES:
            has_model = True
        seen[name] = stage.stage


def recipe_from_dict(data: Any, label: str = "recipe", base: str | Path = ".") -> Recipe:
    """Validate a recipe's parsed YAML; relative paths are taken from `base`. Errors name the key path."""
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a mapping with 'data' and 'stages', got {type(data).__name__}")
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "union_tag_invalid":
            message = f"unknown stage {first['ctx']['tag']!r}; use one of {first['ctx']['expected_tags']}"
        elif first["type"] == "union_tag_not_found":
            message = f"each stage needs a 'stage:' key ({', '.join(STAGE_KINDS)})"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{label}: {_location(first['loc'])}: {message}{more}") from None
    base = Path(base)
    recipe.model = _resolve_source(recipe.model, base)
    recipe.weights = _resolve_path(recipe.weights, base)
    recipe.data.root = _resolve_path(recipe.data.root, base)
    for stage in recipe.stages:
        if stage.stage == "train":
            stage.model, stage.weights = _resolve_source(stage.model, base), _resolve_path(stage.weights, base)
        if stage.stage == "search" and stage.supernet not in recipe.names():
            stage.supernet = _resolve_path(stage.supernet, base)
        if stage.stage == "distill":
            if stage.teacher not in recipe.names():
                stage.teacher = _resolve_source(stage.teacher, base)
            stage.teacher_weights = _resolve_path(stage.teacher_weights, base)
    _check_references(recipe, label)
    return recipe


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file; a relative path inside it is relative to the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} is not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return recipe_from_dict(data, str(path), path.parent.resolve())

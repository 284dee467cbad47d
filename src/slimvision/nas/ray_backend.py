"""Parallel candidate evaluation with Ray Tune, on a local Ray instance or an existing cluster.

`RayTuneEvaluator` wraps an evaluator by *name and context*: each Tune trial rebuilds the space
and the evaluator in its worker (evaluators hold datasets and supernets, which should be loaded
where they are used rather than pickled) and scores one arch. A batch of archs is one Tune run
(a grid over the archs) under `<out>/ray/`, at most `workers` trials at a time, one thread each.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from slimvision.errors import ConfigError
from slimvision.nas.evaluator import Evaluator, scoring_settings
from slimvision.nas.space import Arch, SearchSpace


# Evaluators built in this worker process: Tune reuses a trial's actor for the next trial of the same batch,
# so a dataset or supernet is loaded once per worker process and batch, not once per arch.
_BUILT: dict[str, Evaluator] = {}


def _score_trial(config: dict[str, Any]) -> None:
    import torch
    from ray import tune

    from slimvision.nas import SPACES, create_evaluator

    torch.set_num_threads(1)  # `workers` trials share the machine's cores
    key = json.dumps([config["space"], config["space_kwargs"], config["evaluator"], config["context"]], sort_keys=True, default=str)
    if key not in _BUILT:
        _BUILT[key] = create_evaluator(config["evaluator"], SPACES.get(config["space"])(**config["space_kwargs"]), **config["context"])
    tune.report({"score": float(_BUILT[key].score(config["arch"]))})


class RayTuneEvaluator(Evaluator):
    """Scores each batch of archs as one Ray Tune run, `workers` trials at a time; scores come back in arch order."""

    def __init__(self, space: SearchSpace, evaluator: str, context: dict[str, Any], storage: str | Path,
                 address: str | None = "local", workers: int = 2, space_kwargs: dict[str, Any] | None = None):
        super().__init__(space)
        try:
            import ray  # noqa: F401
            from ray import tune  # noqa: F401
        except ImportError:
            raise ConfigError("the Ray backend needs ray[tune]: pip install 'slimvision[distributed]'") from None
        if workers < 1:
            raise ConfigError(f"--ray-workers must be >= 1, got {workers}")
        self.name, self.settings = evaluator, scoring_settings(evaluator, context)
        self.evaluator, self.context, self.space_kwargs = evaluator, {k: str(v) if isinstance(v, Path) else v for k, v in context.items()}, space_kwargs or {}
        self.storage, self.address, self.workers = Path(storage).resolve(), address, workers
        self.batches = len(list(self.storage.glob("batch_*")))  # a resumed search numbers its Tune runs on

    def _connect(self) -> None:
        import ray

        if ray.is_initialized():
            return
        if self.address in (None, "local"):
            ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=self.address, log_to_driver=False, configure_logging=False)

    def score(self, arch: Arch) -> float:
        return self.score_many([arch])[0]

    def score_many(self, archs: list[Arch]) -> list[float]:
        from ray import tune

        with contextlib.redirect_stdout(sys.stderr):  # Ray's start-up banner too: stdout stays for --json
            self._connect()
        self.batches += 1
        param_space = {"space": self.space.name, "space_kwargs": self.space_kwargs, "evaluator": self.evaluator,
                       "context": self.context, "arch": tune.grid_search(archs)}
        tuner = tune.Tuner(
            tune.with_resources(_score_trial, {"cpu": 1}), param_space=param_space,
            tune_config=tune.TuneConfig(max_concurrent_trials=self.workers, reuse_actors=True),
            run_config=tune.RunConfig(storage_path=str(self.storage), name=f"batch_{self.batches:05d}", verbose=0),
        )
        with contextlib.redirect_stdout(sys.stderr):  # Tune prints its experiment table; stdout stays for --json
            results = tuner.fit()
        scores = {self.space.encode(result.config["arch"]): result.metrics.get("score") for result in results}
        errors = [str(result.error).splitlines()[0] for result in results if result.error]
        if errors:
            raise ConfigError(f"a Ray Tune trial failed: {errors[0]}")
        return [scores[self.space.encode(arch)] for arch in archs]

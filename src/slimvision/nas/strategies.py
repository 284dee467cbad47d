"""Search strategies under hard constraints: random, evolution, optuna TPE and NSGA-II; all resumable.

Every evaluated arch is appended to `evaluations.jsonl` in the output directory, so a rerun skips
what is done (random, evolution) or continues the optuna study stored in `study.db` (tpe, nsga2).
The result is the Pareto front of score vs MACs; its archs are rebuilt and measured (MACs,
params, latency at batch 1) and any that violate a constraint are dropped. Candidates are proposed in
batches (`Search.evaluate_many`) so a parallel evaluator such as the Ray Tune backend keeps its workers busy.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from slimvision.errors import ConfigError
from slimvision.io import atomic_write_json, read_json
from slimvision.measure import count_macs, count_params, measure_latency, pinned_threads
from slimvision.nas.evaluator import Evaluator
from slimvision.nas.space import Arch, SearchSpace
from slimvision.progress import progress_bar

STRATEGIES = ("random", "evolution", "tpe", "nsga2")


@dataclass
class Constraints:
    max_macs: float | None = None
    max_params: float | None = None
    max_latency_ms: float | None = None


@dataclass
class SearchConfig:
    strategy: str = "evolution"
    trials: int = 100
    population: int = 20
    seed: int = 0
    image_size: int = 32
    in_chans: int = 3
    num_classes: int = 10
    threads: int = 1

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"unknown strategy {self.strategy!r}; use one of {', '.join(STRATEGIES)}")
        if self.trials < 1:
            raise ConfigError(f"--trials must be >= 1, got {self.trials}")


class Search:
    """Shared bookkeeping: constraint checks, the evaluation log, the final measured Pareto front."""

    def __init__(self, space: SearchSpace, evaluator: Evaluator, constraints: Constraints, config: SearchConfig, out_dir: str | Path):
        self.space, self.evaluator, self.constraints, self.config = space, evaluator, constraints, config
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.out_dir / "evaluations.jsonl"
        self._keep_scoring_settings(evaluator.settings)
        self.records: dict[str, dict[str, Any]] = {}
        self._macs: dict[str, int] = {}
        if self.log_path.is_file():
            for line in self.log_path.read_text().splitlines():
                if line.strip():
                    record = json.loads(line)
                    self.records[space.encode(record["arch"])] = record
        self.latency = None
        if constraints.max_latency_ms is not None:
            from slimvision.nas.latency_lut import LatencyTable

            self.latency = LatencyTable(self.out_dir / "latency_lut.json", config.image_size, config.in_chans, config.threads, space=space)

    def _keep_scoring_settings(self, settings: dict[str, Any] | None) -> None:
        """Record what the scores in the log depend on, and refuse to add to a log scored another way (its old and new
        scores would be ranked together)."""
        if settings is None:  # an evaluator built by hand: nothing to compare
            return
        path = self.out_dir / "scoring.json"
        if self.log_path.is_file() and path.is_file():
            recorded = read_json(path)
            changed = [f"{key} {recorded.get(key)!r} -> {settings.get(key)!r}" for key in sorted(recorded.keys() | settings.keys()) if recorded.get(key) != settings.get(key)]
            if changed:
                raise ConfigError(f"{self.out_dir} holds scores from another evaluator setting ({'; '.join(changed)}): use another --out, or delete it to start over")
        atomic_write_json(path, settings)

    def macs(self, arch: Arch) -> int:
        key = self.space.encode(arch)
        if key not in self._macs:  # evolution proposes the same children again and again
            if hasattr(self.space, "macs"):
                self._macs[key] = self.space.macs(arch, self.config.image_size, self.config.in_chans, self.config.num_classes)
            else:
                self._macs[key] = count_macs(self._build(arch), (self.config.in_chans, self.config.image_size, self.config.image_size))
        return self._macs[key]

    def _build(self, arch: Arch):
        return self.space.build(arch, self.config.num_classes, self.config.in_chans)

    def feasible(self, arch: Arch) -> bool:
        c = self.constraints
        if c.max_macs is not None and self.macs(arch) > c.max_macs:
            return False
        if c.max_params is not None and count_params(self._build(arch)) > c.max_params:
            return False
        if self.latency is not None and self.latency.predict_ms(arch) > c.max_latency_ms:
            return False
        return True

    def evaluate(self, arch: Arch) -> dict[str, Any]:
        return self.evaluate_many([arch])[0]

    def evaluate_many(self, archs: list[Arch]) -> list[dict[str, Any]]:
        """Records of `archs`; the ones not evaluated yet are scored (each once) and appended to evaluations.jsonl."""
        new = list({self.space.encode(a): a for a in archs if self.space.encode(a) not in self.records}.values())
        # A parallel evaluator gets the whole batch in one `score_many` call; a sequential one gets one arch at a
        # time, so each score is logged as soon as it exists and a crash loses at most one evaluation.
        step = max(1, len(new)) if self.evaluator.workers > 1 else 1
        for start in range(0, len(new), step):
            chunk = new[start:start + step]
            scores = self.evaluator.score_many(chunk)
            with self.log_path.open("a") as handle:
                for arch, score in zip(chunk, scores):
                    record = {"arch": arch, "macs": self.macs(arch), "score": float(score)}
                    if self.latency is not None:
                        record["latency_ms_lut"] = self.latency.predict_ms(arch)
                    self.records[self.space.encode(arch)] = record
                    handle.write(json.dumps(record) + "\n")
        return [self.records[self.space.encode(a)] for a in archs]

    def random_feasible(self, rng: random.Random, tries: int = 1000) -> Arch:
        for _ in range(tries):
            arch = self.space.sample(rng)
            if self.feasible(arch):
                return arch
        raise ConfigError("no architecture in the space meets the constraints (tried 1000 random samples); loosen --max-macs/--max-params/--max-latency-ms")

    def pareto(self) -> list[dict[str, Any]]:
        """Non-dominated records (higher score, fewer MACs), re-measured and checked against the constraints."""
        records = sorted(self.records.values(), key=lambda r: (r["macs"], -r["score"]))
        front, best = [], float("-inf")
        for record in records:
            if record["score"] > best:
                front.append(record)
                best = record["score"]
        measured = []
        shape = (self.config.in_chans, self.config.image_size, self.config.image_size)
        with pinned_threads(self.config.threads):
            for record in front:
                model = self._build(record["arch"]).eval()
                point = {**record, "macs": count_macs(model, shape), "params": count_params(model), "latency_ms": measure_latency(model, shape, 1, 3, 20).median_ms}
                c = self.constraints
                if (c.max_macs is None or point["macs"] <= c.max_macs) and (c.max_params is None or point["params"] <= c.max_params) and (c.max_latency_ms is None or point["latency_ms"] <= c.max_latency_ms):
                    measured.append(point)
        return measured


def _fresh_batch(search: Search, size: int, propose: Callable[[], Arch], patience: int = 1000) -> list[Arch]:
    """Up to `size` distinct feasible archs not evaluated yet; fewer once `patience` proposals in a row add nothing."""
    batch: dict[str, Arch] = {}
    misses = 0
    while len(batch) < size and misses < patience:
        arch = propose()
        key = search.space.encode(arch)
        # duplicates first: they are common (evolution) and cost nothing to reject, a constraint check may build a model
        if key in search.records or key in batch or not search.feasible(arch):
            misses += 1
            continue
        batch[key] = arch
        misses = 0
    return list(batch.values())


def _remaining(search: Search) -> int:
    return search.config.trials - len(search.records)


def _run_random(search: Search, progress: Callable[[], None]) -> None:
    """Batches of `population` feasible archs, so a parallel evaluator has work for every worker."""
    rng = random.Random(search.config.seed)
    while _remaining(search) > 0:
        batch = _fresh_batch(search, min(search.config.population, _remaining(search)), lambda: search.space.sample(rng))
        if not batch:
            search.random_feasible(rng)  # the clear error when nothing meets the constraints
            return  # otherwise every feasible arch we can find is evaluated already
        search.evaluate_many(batch)
        progress()


def _run_evolution(search: Search, progress: Callable[[], None]) -> None:
    """Generational evolution: each generation is one batch of up to `population` new feasible children
    (tournament parents, crossover + mutation), and the best `population` of parents and children survive."""
    cfg = search.config
    rng = random.Random(cfg.seed + len(search.records))  # a resumed run continues with a fresh stream
    population = sorted(search.records.values(), key=lambda r: -r["score"])[: cfg.population]
    missing = min(cfg.population - len(population), _remaining(search))
    if missing > 0:
        population += search.evaluate_many(_fresh_batch(search, missing, lambda: search.space.sample(rng)))
        progress()
    if not population:
        search.random_feasible(rng)  # the clear error when nothing meets the constraints
        return

    def child() -> Arch:
        # parents come from the population as it was when the generation started
        parents = sorted(rng.sample(population, min(len(population), 4)), key=lambda r: -r["score"])[:2]
        return search.space.mutate(search.space.crossover(parents[0]["arch"], parents[-1]["arch"], rng), rng, 0.15)

    while _remaining(search) > 0:
        size = min(cfg.population, _remaining(search))
        # a converged population may have no unseen feasible children left: fresh random archs keep the budget honest
        children = _fresh_batch(search, size, child) or _fresh_batch(search, size, lambda: search.space.sample(rng))
        if not children:
            return  # every feasible arch we can find is evaluated already
        population = sorted(population + search.evaluate_many(children), key=lambda r: -r["score"])[: cfg.population]
        progress()


def _run_optuna(search: Search, progress: Callable[[], None]) -> None:
    """Ask/tell in batches: NSGA-II asks a whole population at once (its generation), TPE as many trials as the
    evaluator scores at once (1 for a sequential evaluator, so TPE sees every result before its next proposal)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg = search.config
    multi = cfg.strategy == "nsga2"
    batch_size = cfg.population if multi else max(1, search.evaluator.workers)
    if multi:
        sampler = optuna.samplers.NSGAIISampler(seed=cfg.seed, population_size=cfg.population)
    else:  # the constant liar keeps the trials of one batch from all proposing the same arch
        sampler = optuna.samplers.TPESampler(seed=cfg.seed, constant_liar=batch_size > 1)
    study = optuna.create_study(
        study_name=f"slimvision-{cfg.strategy}", storage=f"sqlite:///{search.out_dir / 'study.db'}", load_if_exists=True,
        sampler=sampler, directions=["maximize", "minimize"] if multi else ["maximize"],
    )
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)  # a batch cut short by a crash: not results
    choices = search.space.choices()

    def completed() -> int:
        return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))

    budget = cfg.trials * 20  # attempts, infeasible ones included
    while completed() < cfg.trials and budget > 0:
        trials, archs = [], []
        for _ in range(min(batch_size, cfg.trials - completed(), budget)):
            trial = study.ask()
            arch = {name: trial.suggest_categorical(name, values) for name, values in choices.items()}
            budget -= 1
            if search.feasible(arch):
                trials.append(trial)
                archs.append(arch)
            else:  # infeasible: not a result, and not counted as one
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        for trial, record in zip(trials, search.evaluate_many(archs)):
            study.tell(trial, (record["score"], record["macs"]) if multi else record["score"])
        progress()


RUNNERS = {"random": _run_random, "evolution": _run_evolution, "tpe": _run_optuna, "nsga2": _run_optuna}


def run_search(space: SearchSpace, evaluator: Evaluator, constraints: Constraints, config: SearchConfig, out_dir: str | Path,
               data_spec: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Search, write `pareto.json` + `pareto.png` into out_dir, and return the measured Pareto front.

    `data_spec` (the data the archs are for) is recorded so `derive` can give its artifacts their input shape.
    """
    search = Search(space, evaluator, constraints, config, out_dir)
    with progress_bar() as bar:
        task = bar.add_task(f"{config.strategy} search", total=config.trials, completed=min(len(search.records), config.trials))
        RUNNERS[config.strategy](search, lambda: bar.update(task, completed=min(len(search.records), config.trials)))
    front = search.pareto()
    atomic_write_json(search.out_dir / "pareto.json", {
        "space": space.name, "evaluator": getattr(evaluator, "name", type(evaluator).__name__), "constraints": asdict(constraints),
        "config": asdict(config), "data": data_spec, "n_evaluated": len(search.records), "front": front,
        "conditions": f"MACs/params/latency of front points measured on the rebuilt model (latency: batch 1, median of 20, {config.threads} threads)",
    })
    if front:
        from slimvision.report import tradeoff_plot

        tradeoff_plot([str(i) for i in range(len(front))], [p["macs"] / 1e6 for p in front], [p["score"] for p in front], search.out_dir / "pareto.png", "MACs (M)", "score", f"{space.name}: {config.strategy} Pareto front")
    return front

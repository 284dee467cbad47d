"""Search strategies of the `cell` space that need more than score(arch): DARTS, GDAS, ENAS and predictor-guided search.

`run_cell_search(config, out_dir)` runs one of them and writes `result.json` (arch, score, history, and the
arch's accuracy and percentile in the shipped benchmark table under the table's own training protocol) plus
`trajectory.png`. DARTS/GDAS/ENAS train a `CellSupernet` with the foundation Trainer; the predictor strategy
spends its budget on ground truth from the benchmark oracle (table lookup, else training with the table's protocol).
"""

from __future__ import annotations

import itertools
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from slimvision.errors import ConfigError
from slimvision.io import atomic_write_json
from slimvision.nas.bench.oracle import BenchOracle
from slimvision.nas.spaces.cell import EDGE_NAMES, OPS, CellSpace, arch_to_string
from slimvision.nas.supernet.cell import CellSupernet
from slimvision.train import Callback, Trainer, TrainConfig, seed_everything

CELL_STRATEGIES = ("darts", "gdas", "enas", "predictor")
CALIBRATION_BATCHES = 8


@dataclass
class CellSearchConfig:
    strategy: str = "darts"
    data: str = "digits"
    data_root: str | None = None
    image_size: int | None = 32
    epochs: int = 5  # supernet epochs (darts, gdas, enas)
    seed: int = 0
    batch_size: int = 64
    lr: float = 0.05  # supernet weights: SGD, cosine
    weight_decay: float = 3e-4
    channels: int = 8
    max_steps_per_epoch: int | None = None
    second_order: bool = False  # darts
    arch_lr: float = 3e-3  # darts, gdas: Adam on the architecture logits
    warmup_epochs: int | None = None  # darts, gdas: weight-only epochs first; None = epochs // 2
    tau_max: float = 10.0  # gdas
    tau_min: float = 0.1
    controller_steps: int = 30  # enas: policy-gradient steps per epoch
    controller_lr: float = 5e-3
    entropy_weight: float = 1e-3
    final_samples: int = 10  # enas: sampled archs scored one-shot at the end (plus the greedy one)
    trials: int = 20  # predictor: archs given ground truth (the search's cost)
    rounds: int = 4  # predictor: active-learning rounds after the random initial set
    encoder: str = "gates"  # predictor: mlp | gcn | gates (gates ranks best from 20 archs in benchmarks/results/proxies.md)
    bench: str | None = None  # benchmark table; None = the shipped one
    bench_cache: str | None = None  # JSON-lines cache of archs trained with the table's protocol
    progress: bool = True

    def __post_init__(self) -> None:
        if self.strategy not in CELL_STRATEGIES:
            raise ConfigError(f"unknown cell strategy {self.strategy!r}; use one of {', '.join(CELL_STRATEGIES)}")
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be >= 1, got {self.epochs}")
        if self.strategy == "predictor" and self.trials < 3:
            raise ConfigError(f"--trials must be >= 3 for the predictor strategy, got {self.trials}")


def _arch(choices: list[int]) -> dict[str, str]:
    return {name: OPS[choice] for name, choice in zip(EDGE_NAMES, choices)}


class _SupernetRun:
    """Data, supernet and one-shot scoring shared by the weight-sharing strategies."""

    def __init__(self, config: CellSearchConfig):
        from slimvision.data import get_dataset, make_loader

        self.config = config
        self.train = get_dataset(config.data, "train", config.image_size, config.data_root)
        self.val = get_dataset(config.data, "val", config.image_size, config.data_root)
        self.supernet = CellSupernet(num_classes=self.train.spec.num_classes, in_chans=self.train.spec.in_chans, channels=config.channels)
        self.val_batches = list(make_loader(self.val, config.batch_size, shuffle=True, seed=config.seed))
        self.calibration = [x for x, _ in make_loader(self.train, config.batch_size, shuffle=True, seed=config.seed)][:CALIBRATION_BATCHES]
        self.train_config = TrainConfig(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, weight_decay=config.weight_decay,
                                        warmup_epochs=0, augment=False, seed=config.seed, device="cpu", progress=config.progress,
                                        max_steps_per_epoch=config.max_steps_per_epoch)

    def one_shot_accuracy(self, arch: dict[str, str]) -> float:
        """Val accuracy of `arch` with the supernet's weights and re-calibrated BN."""
        from slimvision.measure import accuracy
        from slimvision.train.batchnorm import recalibrate_batchnorm

        was_training = self.supernet.training
        model = recalibrate_batchnorm(self.supernet.extract(arch), self.calibration).eval()
        self.supernet.train(was_training)
        return float(accuracy(model, self.val))

    @torch.no_grad()
    def relaxed_accuracy(self, weights: torch.Tensor) -> float:
        """Val accuracy of the whole supernet with its ops mixed by `weights` (what DARTS actually trains)."""
        from slimvision.measure import accuracy

        class Relaxed(torch.nn.Module):
            def __init__(self, supernet: CellSupernet):
                super().__init__()
                self.supernet = supernet

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.supernet(x, weights)

        was_training = self.supernet.training
        value = float(accuracy(Relaxed(self.supernet).eval(), self.val))
        self.supernet.train(was_training)
        return value

    def fit(self, callbacks: list[Callback], loss_fn) -> None:
        Trainer(self.supernet, self.train, None, self.train_config, callbacks=callbacks, loss_fn=loss_fn, writes_checkpoints=False).fit()


class _History(Callback):
    def __init__(self, record):
        self.record, self.history = record, []

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        self.history.append({"epoch": epoch, "train_loss": round(metrics["train_loss"], 5), **self.record()})


def _differentiable(config: CellSearchConfig, oracle: BenchOracle) -> dict[str, Any]:
    from slimvision.nas.differentiable import ArchitectureStep, DifferentiableConfig, collapse_report, derive_arch, weight_loss

    run = _SupernetRun(config)
    logits = torch.nn.Parameter(1e-3 * torch.randn(len(EDGE_NAMES), len(OPS)))
    warmup = config.epochs // 2 if config.warmup_epochs is None else config.warmup_epochs
    method = DifferentiableConfig(config.strategy, config.second_order, config.arch_lr, tau_max=config.tau_max, tau_min=config.tau_min, warmup_epochs=warmup)
    step = ArchitectureStep(run.supernet, logits, method, run.val_batches, config.epochs, config.seed)

    def record() -> dict[str, Any]:
        arch = derive_arch(logits.detach())
        entry = {"arch": arch_to_string(arch), "one_shot_accuracy": run.one_shot_accuracy(arch), **collapse_report(arch, logits.detach())}
        if config.strategy == "gdas":
            entry["tau"] = round(step.tau, 4)
        else:  # the relaxed supernet is DARTS's model; the one-shot accuracy of the derived arch shows the discretization gap
            entry["supernet_accuracy"] = run.relaxed_accuracy(F.softmax(logits.detach(), -1))
        return entry

    history = _History(record)
    run.fit([step, history], weight_loss(step))
    arch = derive_arch(logits.detach())
    collapse = collapse_report(arch, logits.detach())
    if config.strategy == "darts":
        score, kind = history.history[-1]["supernet_accuracy"], "val accuracy of the relaxed (softmax-mixed) supernet"
    else:
        score, kind = history.history[-1]["one_shot_accuracy"], "one-shot val accuracy (supernet weights, BN re-calibrated)"
    return {"arch": arch, "score": score, "score_kind": kind, "history": history.history, "collapse": collapse, "arch_probabilities": F.softmax(logits.detach(), -1).tolist(), "archs_trained": 0}


class _ControllerTraining(Callback):
    """ENAS: after each epoch of shared-weight training, REINFORCE steps with one-shot rewards on validation batches."""

    def __init__(self, run: _SupernetRun, config: CellSearchConfig):
        from slimvision.nas.controller import Controller, Reinforce

        self.run = run
        self.controller = Controller([len(OPS)] * len(EDGE_NAMES))
        self.reinforce = Reinforce(self.controller, config.controller_lr, entropy_weight=config.entropy_weight)
        self.steps = config.controller_steps
        self.val_batches = itertools.cycle(run.val_batches)
        self.last: dict[str, float] = {}

    @torch.no_grad()
    def reward(self, arch: dict[str, str]) -> float:
        """Accuracy of the shared-weight subnet on the next validation batch (batch statistics in BN)."""
        inputs, targets = next(self.val_batches)
        self.run.supernet.set_active(arch)
        return float((self.run.supernet(inputs).argmax(1) == targets).float().mean())

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        self.run.supernet.train()
        rewards, entropies = [], []
        for _ in range(self.steps):
            choices, log_prob, entropy = self.controller.sample()
            reward = self.reward(_arch(choices))
            self.reinforce.step(log_prob, entropy, reward)
            rewards.append(reward)
            entropies.append(float(entropy.detach()))
        self.last = {"mean_reward": sum(rewards) / len(rewards), "baseline": self.reinforce.baseline, "policy_entropy": sum(entropies) / len(entropies)}

    def sampled_loss(self):
        """loss_fn for the Trainer: cross-entropy of one controller-sampled subnet per batch."""

        def loss_fn(model: CellSupernet, inputs: torch.Tensor, targets: torch.Tensor):
            with torch.no_grad():
                choices, _, _ = self.controller.sample()
            model.set_active(_arch(choices))
            logits = model(inputs)
            return F.cross_entropy(logits, targets), logits

        return loss_fn


def _enas(config: CellSearchConfig, oracle: BenchOracle) -> dict[str, Any]:
    run = _SupernetRun(config)
    controller = _ControllerTraining(run, config)

    def greedy() -> dict[str, str]:
        with torch.no_grad():
            return _arch(controller.controller.sample(greedy=True)[0])

    def record() -> dict[str, Any]:
        arch = greedy()
        return {"arch": arch_to_string(arch), "one_shot_accuracy": run.one_shot_accuracy(arch),
                **{k: round(v, 5) for k, v in controller.last.items()}}

    history = _History(record)
    run.fit([controller, history], controller.sampled_loss())  # controller steps first, then the history entry
    candidates = {arch_to_string(greedy()): greedy()}
    with torch.no_grad():
        for _ in range(config.final_samples * 5):
            if len(candidates) > config.final_samples:
                break
            arch = _arch(controller.controller.sample()[0])
            candidates.setdefault(arch_to_string(arch), arch)
    scored = sorted(((run.one_shot_accuracy(a), key, a) for key, a in candidates.items()), key=lambda t: -t[0])
    score, _, arch = scored[0]
    return {"arch": arch, "score": score, "score_kind": "one-shot val accuracy (supernet weights, BN re-calibrated)", "history": history.history,
            "final_candidates": [{"arch": key, "one_shot_accuracy": s} for s, key, _ in scored], "archs_trained": 0}


def _predictor(config: CellSearchConfig, oracle: BenchOracle) -> dict[str, Any]:
    """Active learning: random initial archs get ground truth; each round the retrained predictor ranks the whole space
    and the top unseen archs get ground truth next. The best validation accuracy found wins."""
    from slimvision.nas.predictors import train_predictor
    from slimvision.nas.predictors.encoders import op_indices

    rng = random.Random(config.seed)
    pool = CellSpace().all_archs()
    initial = max(2, config.trials // 3)
    per_round = max(1, math.ceil((config.trials - initial) / max(1, config.rounds)))
    known: dict[str, tuple[dict[str, str], float]] = {}
    history: list[dict[str, Any]] = []

    def query(archs: list[dict[str, str]], round_index: int) -> None:
        for arch in archs:
            known[arch_to_string(arch)] = (arch, float(oracle.result(arch)["val_accuracy"]))
        best_key = max(known, key=lambda k: known[k][1])
        history.append({"round": round_index, "evaluated": len(known), "best_val_accuracy": known[best_key][1], "best_arch": best_key,
                        "batch_val_accuracy": [round(known[arch_to_string(a)][1], 5) for a in archs]})

    query(rng.sample(pool, initial), 0)
    round_index = 0
    while len(known) < config.trials:
        round_index += 1
        archs, values = zip(*known.values())
        model = train_predictor(config.encoder, list(archs), list(values), seed=config.seed + round_index)
        unseen = [a for a in pool if arch_to_string(a) not in known]
        with torch.no_grad():
            predicted = model(op_indices(unseen))
        take = min(per_round, config.trials - len(known))
        query([unseen[int(i)] for i in predicted.topk(take).indices], round_index)
    best_key = max(known, key=lambda k: known[k][1])
    return {"arch": known[best_key][0], "score": known[best_key][1], "score_kind": "val accuracy under the table's protocol",
            "history": history, "archs_trained": len(known), "encoder": config.encoder}


RUNNERS = {"darts": _differentiable, "gdas": _differentiable, "enas": _enas, "predictor": _predictor}


def run_cell_search(config: CellSearchConfig, out_dir: str | Path) -> dict[str, Any]:
    """Run `config.strategy`, then write result.json and trajectory.png into out_dir; returns the result."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(config.seed)
    oracle = BenchOracle(config.bench, config.bench_cache)
    start = time.perf_counter()
    found = RUNNERS[config.strategy](config, oracle)
    search_seconds = time.perf_counter() - start
    bench = oracle.result(found["arch"])
    result = {
        "space": "cell", "strategy": config.strategy, "arch": found.pop("arch"), "score": found.pop("score"), "history": found.pop("history"),
        "bench_accuracy": bench["test_accuracy"], "bench_val_accuracy": bench["val_accuracy"], "bench_source": bench["source"],
        "bench_percentile": oracle.percentile(bench["test_accuracy"]), "bench_table": str(oracle.table.path),
        "search_seconds": round(search_seconds, 2), **found, "config": asdict(config),
    }
    result["arch_string"] = arch_to_string(result["arch"])
    atomic_write_json(out / "result.json", result)
    _plot(result, out / "trajectory.png")
    return result


def _plot(result: dict[str, Any], path: Path) -> None:
    from slimvision.report import trajectory_plot

    history = result["history"]
    if result["strategy"] == "predictor":
        x = [entry["evaluated"] for entry in history]
        series = {"best val accuracy so far": [entry["best_val_accuracy"] for entry in history]}
        trajectory_plot(x, series, path, "archs with ground truth", "accuracy", "cell: predictor-guided search")
        return
    x = [entry["epoch"] for entry in history]
    series = {"one-shot accuracy of the current arch": [entry["one_shot_accuracy"] for entry in history]}
    if "supernet_accuracy" in history[0]:
        series["relaxed supernet accuracy"] = [entry["supernet_accuracy"] for entry in history]
    if "parameter_free_share" in history[0]:
        series["softmax mass on parameter-free ops"] = [entry["parameter_free_share"] for entry in history]
    if "mean_reward" in history[0]:
        series["mean controller reward"] = [entry["mean_reward"] for entry in history]
    trajectory_plot(x, series, path, "epoch", "value", f"cell: {result['strategy']} search")

"""Ground truth for any cell arch under a table's training protocol: looked up if the table has it, else trained.

Trained results can be cached in a JSON-lines file (keyed by arch and protocol), so repeated searches and the
strategy benchmark train each arch once. The percentile of an accuracy is its rank among the table's archs.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from slimvision.errors import ConfigError
from slimvision.nas.bench.table import BenchTable, load_bench
from slimvision.nas.evaluator import EVALUATORS, Evaluator
from slimvision.nas.space import Arch, SearchSpace


class BenchOracle:
    """`result(arch)` -> {val_accuracy, test_accuracy (means over the table's seeds), source: table | trained}."""

    def __init__(self, table: BenchTable | str | Path | None = None, cache: str | Path | None = None):
        self.table = table if isinstance(table, BenchTable) else load_bench(table)
        self.protocol = self.table.header.get("conditions")
        self.by_arch = {row["arch"]: row for row in self.table.rows}
        self.cache_path = Path(cache) if cache else None
        self.cache: dict[str, dict[str, Any]] = {}
        self.trained = 0  # archs trained by this oracle (cache and table hits cost nothing)
        self._splits = None
        if self.cache_path and self.cache_path.is_file():
            for line in self.cache_path.read_text().splitlines():
                if line.strip():
                    record = json.loads(line)
                    if record.get("protocol") == self.protocol:
                        self.cache[record["arch"]] = record

    def _key(self, arch: Arch) -> str:
        from slimvision.nas.spaces.cell import arch_to_string

        return arch_to_string(arch)

    def result(self, arch: Arch) -> dict[str, Any]:
        """The arch's mean val/test accuracy under the table's protocol (trained once when not in the table)."""
        key = self._key(arch)
        if key in self.by_arch:
            row = self.by_arch[key]
            return {"val_accuracy": row.get("val_accuracy", row["accuracy"]), "test_accuracy": row["accuracy"], "source": "table"}
        if key not in self.cache:
            self.cache[key] = self._train(arch, key)
            if self.cache_path:
                self.cache_path.parent.mkdir(parents=True, exist_ok=True)
                with self.cache_path.open("a") as handle:
                    handle.write(json.dumps(self.cache[key]) + "\n")
        cached = self.cache[key]
        return {"val_accuracy": cached["val_accuracy"], "test_accuracy": cached["test_accuracy"], "source": "trained"}

    def _train(self, arch: Arch, key: str) -> dict[str, Any]:
        from slimvision.data import get_dataset
        from slimvision.nas.bench.build import BenchConfig, train_one
        from slimvision.nas.space import SPACES

        if not self.protocol:
            raise ConfigError(f"benchmark table {self.table.path}: no header with its training protocol, so an arch outside it cannot be trained")
        from dataclasses import fields

        known = {f.name for f in fields(BenchConfig)}
        config = BenchConfig(**{k: (tuple(v) if k == "seeds" else v) for k, v in self.protocol.items() if k in known}, progress=False)
        space = SPACES.get(config.space)(channels=config.channels, cells_per_stage=config.cells_per_stage, **config.space_kwargs)
        if self._splits is None:
            self._splits = tuple(get_dataset(config.data, split, image_size=config.image_size) for split in ("train", "val", "test"))
        runs = [train_one(space, arch, config, seed, *self._splits) for seed in config.seeds]
        self.trained += 1
        return {"arch": key, "protocol": self.protocol, "runs": runs,
                "val_accuracy": statistics.fmean(r["val_accuracy"] for r in runs), "test_accuracy": statistics.fmean(r["test_accuracy"] for r in runs)}

    def percentile(self, accuracy: float) -> float:
        """Share (0-100) of the table's archs whose test accuracy is at most `accuracy`."""
        values = self.table.accuracies()
        return 100.0 * sum(value <= accuracy for value in values) / len(values)


class BenchEvaluator(Evaluator):
    """Score = validation accuracy under the table's protocol (the table's value, or a training run that follows it)."""

    name = "bench"

    def __init__(self, space: SearchSpace, bench: Any = None, bench_cache: str | Path | None = None, **_: Any):
        super().__init__(space)
        if space.name != "cell":
            raise ConfigError(f"the bench evaluator scores the 'cell' space, not {space.name!r}")
        self.oracle = BenchOracle(bench, bench_cache)

    def score(self, arch: Arch) -> float:
        return float(self.oracle.result(arch)["val_accuracy"])


EVALUATORS.add("bench", BenchEvaluator)

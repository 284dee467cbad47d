"""Load a benchmark table: our JSON-lines format, or a user CSV/JSON of (arch, accuracy) rows."""

from __future__ import annotations

import csv
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slimvision.errors import DataError


@dataclass
class BenchTable:
    """Rows of {arch (string), arch_dict, accuracy (mean over seeds), params?, macs?, runs?}; header = build conditions."""

    rows: list[dict[str, Any]]
    header: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def accuracies(self, metric: str = "test_accuracy") -> list[float]:
        return [row[metric] if metric in row else row["accuracy"] for row in self.rows]

    def seed_agreement(self, metric: str = "test_accuracy") -> dict[str, Any]:
        """How well the table's training seeds agree: Kendall tau between every two seeds' rankings of the archs.

        It bounds what any evaluator can reach against the table's mean: an evaluator cannot rank the archs
        better than a second training run does. Uses the archs trained with every seed.
        """
        from itertools import combinations

        from scipy.stats import kendalltau

        runs = [row.get("runs") or [] for row in self.rows]
        seeds = sorted({run["seed"] for arch_runs in runs for run in arch_runs})
        if len(seeds) < 2:
            raise DataError(f"benchmark table {self.path}: seed agreement needs archs trained with 2 or more seeds")
        by_seed = [{run["seed"]: run[metric] for run in arch_runs} for arch_runs in runs]
        complete = [accs for accs in by_seed if all(seed in accs for seed in seeds)]
        if len(complete) < 3:
            raise DataError(f"benchmark table {self.path}: {len(complete)} archs have every seed ({seeds}); need 3")
        pairs = {f"{a}-{b}": float(kendalltau([accs[a] for accs in complete], [accs[b] for accs in complete])[0]) for a, b in combinations(seeds, 2)}
        return {
            "seeds": seeds,
            "n_archs": len(complete),
            "kendall_tau_pairs": pairs,
            "kendall_tau_mean": statistics.fmean(pairs.values()),
            "seed_std_mean": statistics.fmean(statistics.stdev(accs.values()) for accs in complete),
            "accuracy_range": [min(min(accs.values()) for accs in complete), max(max(accs.values()) for accs in complete)],
        }


# Tables installed with the package, by the dataset they were trained on; `--bench NAME` picks one.
SHIPPED_TABLES = {"digits": "nas_cell_digits.jsonl", "digits-hard": "nas_cell_digits_hard.jsonl"}


def default_bench_path() -> Path:
    """The shipped digits table."""
    return shipped_bench_path("digits")


def shipped_bench_path(name: str) -> Path:
    return Path(__file__).resolve().parent / "data" / SHIPPED_TABLES[name]


def _finish_row(row: dict[str, Any], source: str) -> dict[str, Any]:
    from slimvision.nas.spaces.cell import arch_from_string, arch_to_string

    if "arch" not in row:
        raise DataError(f"{source}: a row has no 'arch' field")
    arch_dict = row.get("arch_dict") or arch_from_string(str(row["arch"]))
    out = dict(row, arch=arch_to_string(arch_dict), arch_dict=arch_dict)
    runs = row.get("runs")
    if runs:
        for metric in ("val_accuracy", "test_accuracy"):
            out[metric] = statistics.fmean(run[metric] for run in runs)
        out["accuracy"] = out["test_accuracy"]
    elif "accuracy" in row:
        out["accuracy"] = float(row["accuracy"])
    else:
        raise DataError(f"{source}: row {row['arch']!r} has neither 'runs' nor 'accuracy'")
    return out


def load_bench(path: str | Path | None = None) -> BenchTable:
    """Read a table: .jsonl (ours, header line first), .json (list of rows or {'rows': [...]}) or .csv with arch,accuracy.

    `path` may also name a shipped table ("digits", "digits-hard"); None is the digits one.
    """
    path = Path(path) if path else default_bench_path()
    if not path.is_file() and str(path) in SHIPPED_TABLES:
        path = shipped_bench_path(str(path))
    if not path.is_file():
        raise DataError(f"benchmark table {path} does not exist")
    header: dict[str, Any] = {}
    try:
        if path.suffix == ".jsonl":
            lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            if lines and lines[0].get("kind") == "header":
                header, lines = lines[0], lines[1:]
            raw = lines
        elif path.suffix == ".json":
            data = json.loads(path.read_text())
            raw = data["rows"] if isinstance(data, dict) else data
        elif path.suffix == ".csv":
            with path.open(newline="") as handle:
                raw = [dict(r) for r in csv.DictReader(handle)]
        else:
            raise DataError(f"benchmark table {path}: unknown format (use .jsonl, .json or .csv)")
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataError(f"benchmark table {path}: cannot parse ({exc})") from None
    rows = [_finish_row(row, str(path)) for row in raw]
    if len(rows) < 3:
        raise DataError(f"benchmark table {path}: needs at least 3 architectures, has {len(rows)}")
    return BenchTable(rows, header, path)

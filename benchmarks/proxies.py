"""Evaluator-correlation study on the shipped mini benchmark + zero-shot search timing.

python benchmarks/proxies.py --part correlate   # proxies + predictors (N = 20, 50, 100) -> results/proxies_correlate.json
python benchmarks/proxies.py --part search      # zero-shot search, 5,000 candidates -> results/proxies_search.json
python benchmarks/proxies.py --part report      # -> results/proxies.md (+ proxies.json, proxies.png)
Each part can run in its own process (they are independent). `--bench digits-hard` runs the correlate and report
parts on the shipped digits-hard table instead, into results/proxies_digits_hard*.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"
COMMAND = " ".join(["python benchmarks/proxies.py", *sys.argv[1:]])
PROXY_NAMES = ("params", "macs", "synflow", "jacob_cov", "snip", "grad_norm", "grasp", "fisher", "naswot", "zen")
PUBLISHED_NB201 = {"synflow": 0.74, "jacob_cov": 0.73, "snip": 0.60, "grad_norm": 0.59, "grasp": 0.51, "fisher": 0.36}


def results_prefix(bench: str) -> str:
    """File-name prefix of a table's results: the digits table keeps the original names."""
    return "proxies" if bench == "digits" else f"proxies_{bench.replace('-', '_')}"


def part_correlate(names: tuple[str, ...], bootstrap: int, bench: str) -> None:
    """Proxies (`names`), or with names == ('predictors',) every predictor at N = 20, 50, 100 training archs."""
    from slimvision.nas.correlation import CorrelateConfig, correlate

    tag, prefix = "_".join(names), results_prefix(bench)
    if names != ("predictors",):
        result = correlate(CorrelateConfig(bench=bench, evaluators=names, bootstrap=bootstrap, progress=False))
        (RESULTS / f"{prefix}_correlate_{tag}.json").write_text(json.dumps({"command": COMMAND, **result.to_dict()}, indent=1))
        return
    predictors = {}
    for n_train in (20, 50, 100):
        for name in ("predictor-mlp", "predictor-gcn", "predictor-gates", "predictor-gates-mse"):
            sub = correlate(CorrelateConfig(bench=bench, evaluators=(name,), context={"n_train": n_train}, bootstrap=bootstrap, progress=False))
            predictors[f"{name}@{n_train}"] = sub.evaluators[name]
    (RESULTS / f"{prefix}_predictors.json").write_text(json.dumps({"command": COMMAND, **predictors}, indent=1))


def part_search(n_candidates: int, evaluator_name: str) -> None:
    """`slimvision search --space cell --evaluator NAME --strategy evolution --population 100 --max-macs 250k --image-size 8`."""
    import tempfile

    from slimvision.nas import SPACES, create_evaluator
    from slimvision.nas.bench import load_bench
    from slimvision.nas.spaces.cell import arch_to_string
    from slimvision.nas.strategies import Constraints, SearchConfig, run_search

    space = SPACES.get("cell")()
    evaluator = create_evaluator(evaluator_name, space, image_size=None)
    max_macs = 250_000
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        front = run_search(space, evaluator, Constraints(max_macs=max_macs), SearchConfig("evolution", n_candidates, 100, 0, 8, 1), out)
        seconds = time.perf_counter() - start
        n_unique = count_distinct_archs(Path(out) / "evaluations.jsonl", space)
    table = {row["arch"]: row for row in load_bench().rows}
    best = front[-1]
    best_arch = arch_to_string(best["arch"])
    data = {"evaluator": evaluator_name, "n_candidates": n_candidates, "n_unique": n_unique, "max_macs": max_macs, "seconds": seconds,
            "best_arch": best_arch, "best_score": best["score"], "best_macs": best["macs"],
            "best_in_table": table.get(best_arch, {}).get("test_accuracy"), "threads": torch.get_num_threads(),
            "command": f"python benchmarks/proxies.py --part search --candidates {n_candidates} --evaluator {evaluator_name}"}
    (RESULTS / f"proxies_search_{evaluator_name}.json").write_text(json.dumps(data, indent=1))


def count_distinct_archs(evaluations: Path, space) -> int:
    """Distinct archs actually scored: the search log holds one line per evaluation."""
    return len({space.encode(json.loads(line)["arch"]) for line in evaluations.read_text().splitlines() if line.strip()})


def fmt(entry: dict, key: str) -> str:
    low, high = entry["ci95"][key]
    return f"{entry[key]:.3f} [{low:.2f}, {high:.2f}]"


HAND_WRITTEN = "\n> *Hand-written"


def hand_written_tail(page: Path) -> str:
    """An existing page's part from its first hand-written note on: a rewrite of the generated part keeps it."""
    text = page.read_text() if page.is_file() else ""
    return text[text.index(HAND_WRITTEN):] if HAND_WRITTEN in text else ""


def part_report(bench: str) -> None:
    from slimvision.nas.correlation import CorrelateResult, plot_correlation

    prefix = results_prefix(bench)
    parts = [json.loads(p.read_text()) for p in sorted(RESULTS.glob(f"{prefix}_correlate_*.json"))]
    order = [name for name in PROXY_NAMES if any(name in part["evaluators"] for part in parts)]
    merged = {name: part["evaluators"][name] for part in parts for name in part["evaluators"]}
    corr = dict(parts[0], evaluators={name: merged[name] for name in order})
    predictors_path = RESULTS / f"{prefix}_predictors.json"
    corr["predictors"] = json.loads(predictors_path.read_text()) if predictors_path.exists() else {}
    corr["predictors"].pop("command", None)  # provenance, not a predictor
    plot_correlation(CorrelateResult(corr["n_archs"], corr["evaluators"], corr["conditions"]), RESULTS / f"{prefix}.png")
    searches = [json.loads(p.read_text()) for p in sorted(RESULTS.glob(f"{prefix}_search_*.json"))]
    cond = corr["conditions"]
    built = cond["bench_conditions"] or {}
    images = f"{built.get('data', 'digits')} training images ({built.get('image_size') or 8}x{built.get('image_size') or 8})"
    correlate_flags = "--part correlate" + ("" if bench == "digits" else f" --bench {bench}")
    lines = ["# Zero-cost proxies and predictors on the mini cell benchmark", "",
             f"Written by `python benchmarks/proxies.py --part report{'' if bench == 'digits' else f' --bench {bench}'}` (benchmarks/proxies.py) "
             f"from the JSON files of its `{correlate_flags}`{' and `--part search`' if bench == 'digits' else ''} runs; the notes at the end are hand-written.", "",
             f"Table: `{cond['bench'].split('/slimvision/')[-1] if '/slimvision/' in cond['bench'] else Path(cond['bench']).name}`, "
             f"{corr['n_archs']} archs; ground truth = mean {cond['metric']} over seeds. "
             f"Bench conditions: `{json.dumps(cond['bench_conditions'])}`.",
             f"Proxies: untrained network, init seed 0, one batch of 64 {images}; torch threads = {cond['threads']}, "
             f"shared 2-core machine (timings include other users' load). 95% CIs: {cond['bootstrap']} bootstrap resamples of archs.", "",
             "| evaluator | Kendall tau | Spearman | Pearson | P@top10% | P@bottom10% | BR@10% | WR@10% | ms/arch | NB201 Spearman (published) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, e in corr["evaluators"].items():
        lines.append(f"| {name} | {fmt(e, 'kendall_tau')} | {fmt(e, 'spearman')} | {fmt(e, 'pearson')} | {fmt(e, 'p_at_top10')} | "
                     f"{fmt(e, 'p_at_bottom10')} | {e['best_ranking_at10']:.3f} | {e['worst_ranking_at10']:.3f} | {e['ms_per_arch']:.1f} | "
                     f"{PUBLISHED_NB201.get(name, '')} |")
    lines += ["", "## Predictors vs number of training archs (evaluated on the held-out archs; trained on val accuracy)", "",
              "| predictor @ N train | n eval | Kendall tau | Spearman | P@top10% | ms/arch |", "|---|---|---|---|---|---|"]
    for name, e in corr["predictors"].items():
        lines.append(f"| {name} | {e['n_eval']} | {fmt(e, 'kendall_tau')} | {fmt(e, 'spearman')} | {fmt(e, 'p_at_top10')} | {e['ms_per_arch']:.2f} |")
    if searches:
        lines += ["", "## Zero-shot search (`slimvision search --strategy evolution --population 100`, distinct archs, MACs limit per 8x8 image)", "",
                  "| evaluator | distinct archs scored | MACs limit | seconds (incl. measured Pareto front) | best arch | best MACs | best in table (test acc) |",
                  "|---|---|---|---|---|---|---|"]
    for s in searches:
        lines.append(f"| {s['evaluator']} | {s['n_unique']} | {s['max_macs']} | {s['seconds']:.0f} | "
                     f"`{s['best_arch']}` | {s['best_macs']} | {s['best_in_table']} |")
    page = RESULTS / f"{prefix}.md"
    page.write_text("\n".join(lines) + "\n" + hand_written_tail(page))
    (RESULTS / f"{prefix}.json").write_text(json.dumps({"correlate": corr, "search": searches}, indent=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=("correlate", "search", "report"), required=True)
    parser.add_argument("--candidates", type=int, default=5000)
    parser.add_argument("--evaluator", default="zen")
    parser.add_argument("--evaluators", default=",".join(PROXY_NAMES), help="proxies, or 'predictors'")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--bench", default="digits", help="Shipped table the correlate and report parts study: digits or digits-hard.")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    if args.part == "correlate":
        part_correlate(tuple(args.evaluators.split(",")), args.bootstrap, args.bench)
    elif args.part == "search":
        part_search(args.candidates, args.evaluator)
    else:
        part_report(args.bench)
    print(f"{args.part}: {time.perf_counter() - start:.0f} s")

"""`slimvision nas ...`: build the mini tabular NAS benchmark, run the evaluator-correlation study."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from slimvision.cli.app import app, console, print_json

nas_app = typer.Typer(help="Zero-cost proxies, the mini NAS benchmark and the evaluator-correlation study.", no_args_is_help=True)
bench_app = typer.Typer(help="The mini tabular NAS benchmark.", no_args_is_help=True)
nas_app.add_typer(bench_app, name="bench")
app.add_typer(nas_app, name="nas")


@bench_app.command("build")
def bench_build(
    space: str = typer.Option("cell", help="Search space."),
    n: int = typer.Option(200, help="Number of distinct architectures."),
    epochs: int = typer.Option(2, help="Training epochs per architecture and seed."),
    data: str = typer.Option("digits", help="Dataset."),
    image_size: Optional[int] = typer.Option(None, "--image-size", min=4, help="Train at this resolution (default: the dataset's own); recorded in the table, which correlate then uses."),
    out: Path = typer.Option(..., help="Output table (.jsonl, appended to; an interrupted build resumes)."),
    seeds: str = typer.Option("0,1", help="Comma-separated training seeds."),
    sample_seed: int = typer.Option(0, help="Seed of the architecture sampler."),
    channels: int = typer.Option(8, help="Stem channels of the cell network."),
    lr: float = typer.Option(0.05, help="SGD learning rate."),
    threads: int = typer.Option(1, help="Torch threads."),
    shard: str = typer.Option("0/1", help="i/k: train every k-th remaining arch from the i-th (run k processes on one file)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Train N sampled architectures (several seeds each) and write the benchmark table."""
    from slimvision.nas.bench import BenchConfig, build_bench

    seed_list = tuple(int(s) for s in seeds.split(",") if s.strip())
    from slimvision.errors import ConfigError

    try:
        shard_index, shard_count = (int(part) for part in shard.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {shard!r}: expected i/k, e.g. 0/2") from None
    if not 0 <= shard_index < shard_count:
        raise ConfigError(f"--shard {shard!r}: need 0 <= i < k")
    config = BenchConfig(space=space, n=n, epochs=epochs, data=data, image_size=image_size, seeds=seed_list, sample_seed=sample_seed,
                         channels=channels, lr=lr, threads=threads, shard=(shard_index, shard_count), progress=not json_out)
    result = build_bench(config, out)
    summary = {"path": str(result.path), "n_archs": result.n_archs, "n_new": result.n_new, "seconds": round(result.seconds, 1)}
    if json_out:
        print_json(summary)
    else:
        console.print(f"wrote {result.n_new} new archs ({result.n_archs} total) to {result.path} in {result.seconds:.0f} s")


@bench_app.command("info")
def bench_info(
    bench: Optional[Path] = typer.Argument(None, help="Benchmark table (.jsonl), or a shipped one by name: digits (default) or digits-hard."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Size, build conditions and seed-vs-seed agreement of a benchmark table (the ceiling of any evaluator's Kendall tau).

    Example: slimvision nas bench info digits-hard
    """
    from slimvision.nas.bench import load_bench

    table = load_bench(bench)
    # n_archs (from seed_agreement) counts the archs trained with every seed; archs_in_table counts them all
    info = {"path": str(table.path), "archs_in_table": len(table), "conditions": table.header.get("conditions"), **table.seed_agreement()}
    if json_out:
        print_json(info)
        return
    conditions = info["conditions"] or {}
    console.print(f"{info['path']}: {info['archs_in_table']} archs" + "".join(f", {key} {conditions[key]}" for key in ("data", "image_size", "epochs") if conditions.get(key) is not None))
    console.print(f"seeds {info['seeds']} on {info['n_archs']} archs: Kendall tau between seeds "
                  + ", ".join(f"{pair} {tau:.3f}" for pair, tau in info["kendall_tau_pairs"].items())
                  + f" (mean {info['kendall_tau_mean']:.3f}); mean per-arch seed std {100 * info['seed_std_mean']:.2f} points; "
                  f"accuracy {info['accuracy_range'][0]:.3f}-{info['accuracy_range'][1]:.3f}")


@nas_app.command("correlate")
def correlate_command(
    evaluators: str = typer.Option("params,macs,synflow,jacob_cov,snip,grad_norm,grasp,fisher,naswot,zen",
                                   help="Comma-separated registered evaluator names."),
    bench: Optional[Path] = typer.Option(None, help="Benchmark table (.jsonl/.json/.csv), or a shipped one by name: digits (default) or digits-hard."),
    metric: str = typer.Option("test_accuracy", help="Ground truth column: test_accuracy, val_accuracy (or accuracy)."),
    bootstrap: int = typer.Option(1000, help="Bootstrap resamples for the 95% intervals."),
    n_train: int = typer.Option(50, help="Training archs of predictor-* evaluators (held out from their metrics)."),
    plot: Optional[Path] = typer.Option(None, help="Also write a bar chart (PNG)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Rank-correlate evaluators with the benchmark's accuracy (Kendall, Spearman, Pearson, P@top-10%, ...)."""
    from rich.table import Table

    from slimvision.nas.correlation import CorrelateConfig, correlate, plot_correlation

    names = tuple(name.strip() for name in evaluators.split(",") if name.strip())
    config = CorrelateConfig(bench=bench, evaluators=names, metric=metric, bootstrap=bootstrap,
                             context={"n_train": n_train}, progress=not json_out)
    result = correlate(config)
    if plot:
        plot_correlation(result, plot)
    if json_out:
        print_json(result.to_dict())
        return
    table = Table(title=f"evaluator correlation on {result.n_archs} archs ({metric}, 95% bootstrap CI)")
    for column in ("evaluator", "n", "kendall tau", "spearman", "pearson", "P@top10%", "P@bottom10%", "BR@10%", "WR@10%", "ms/arch"):
        table.add_column(column)
    for name, entry in result.evaluators.items():
        ci = entry["ci95"]
        cell = lambda key: f"{entry[key]:.3f} [{ci[key][0]:.2f}, {ci[key][1]:.2f}]"  # noqa: E731
        table.add_row(name, str(entry["n_eval"]), cell("kendall_tau"), cell("spearman"), cell("pearson"), cell("p_at_top10"),
                      cell("p_at_bottom10"), f"{entry['best_ranking_at10']:.3f}", f"{entry['worst_ranking_at10']:.3f}",
                      f"{entry['ms_per_arch']:.1f}")
    console.print(table)


@nas_app.command("qt-score")
def qt_score_command(
    space: str = typer.Option("cell", help="Search space."),
    evaluator: str = typer.Option("synflow", help="Evaluator that plays the accuracy term (a proxy, oneshot, train, ...)."),
    latency_ms: str = typer.Option(..., "--latency-ms", help="Comma-separated INT8 latency limits at batch 1, e.g. 0.3,0.6."),
    samples: int = typer.Option(20, help="Archs sampled from the space (each is exported, quantized and timed)."),
    top_k: int = typer.Option(3, help="Best archs averaged per latency limit."),
    data: str = typer.Option("digits", help="Dataset (calibration images and evaluator data)."),
    image_size: int = typer.Option(32, help="Input size."),
    supernet: Optional[Path] = typer.Option(None, help="Supernet directory (one-shot evaluators)."),
    threads: int = typer.Option(1, help="onnxruntime threads for the latency measurements."),
    seed: int = typer.Option(0, help="Sampling seed."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Q-T score: INT8-friendliness of a space = its best evaluator scores under measured INT8 latency limits."""
    from slimvision.config import parse_count
    from slimvision.nas import SPACES, create_evaluator
    from slimvision.nas.qt_score import QTConfig, qt_score

    search_space = SPACES.get(space)()
    judge = create_evaluator(evaluator, search_space, data=data, image_size=image_size, supernet=supernet, seed=seed)
    config = QTConfig(tuple(parse_count(limit) for limit in latency_ms.split(",") if limit.strip()), samples, top_k, image_size, data, threads, seed)
    result = qt_score(search_space, judge, config, progress=not json_out)
    if json_out:
        print_json({"space": space, "evaluator": evaluator, "qt_score": result.score, "per_limit": result.per_limit, "archs": result.archs})
        return
    console.print(f"Q-T score of {space} with {evaluator}: {result.score:.4g}  (per INT8 latency limit in ms: "
                  + ", ".join(f"{k}: {v:.4g}" for k, v in result.per_limit.items()) + ")")

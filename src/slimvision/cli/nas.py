"""`slimvision supernet train`, `slimvision search`, `slimvision derive`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from slimvision.cli.app import CHANNELS_LAST_HELP, app, console, print_json

supernet_app = typer.Typer(help="Weight-sharing supernets for one-shot NAS.", no_args_is_help=True)
app.add_typer(supernet_app, name="supernet")


@supernet_app.command("train")
def supernet_train_command(
    out: Path = typer.Option(..., "--out", help="Directory for checkpoints and the supernet artifact."),
    space: str = typer.Option("mbv2", "--space", help="Search space with a supernet: mbv2 | resnet."),
    data: str = typer.Option("digits", "--data", help="Dataset."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Local path for cifar10 / imagefolder."),
    image_size: int = typer.Option(32, "--image-size", help="Image size."),
    sampler: str = typer.Option("sandwich", "--sampler", help="uniform | sandwich | complexity | performance."),
    epochs: int = typer.Option(10, "--epochs", help="Training epochs."),
    lr: float = typer.Option(0.05, "--lr", help="Peak learning rate (SGD, cosine)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    channels_last: bool = typer.Option(False, "--channels-last", help=CHANNELS_LAST_HELP),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out."),
) -> None:
    """Train a supernet whose subnets share weights (checkpointed, resumable)."""
    from slimvision.nas.supernet.train import SupernetConfig, train_supernet

    result = train_supernet(SupernetConfig(space, sampler, epochs, lr, seed=seed, channels_last=channels_last), out, data, image_size, resume, data_root)
    console.print(f"supernet trained -> {out} (largest subnet, val accuracy without BN re-calibration: {result['val_accuracy_largest']:.4f})")


def _parse_optional(value: Optional[str]) -> Optional[float]:
    from slimvision.config import parse_count

    return None if value is None else parse_count(value)


@app.command("search")
def search_command(
    out: Path = typer.Option(..., "--out", help="Directory for evaluations.jsonl, pareto.json, pareto.png (rerun to resume)."),
    space: str = typer.Option("mbv2", "--space", help="Search space."),
    strategy: str = typer.Option("evolution", "--strategy", help="random | evolution | tpe | nsga2, or for --space cell also darts | gdas | enas | predictor (these write result.json + trajectory.png)."),
    evaluator: str = typer.Option("oneshot", "--evaluator", help="oneshot | oneshot-loss | train | any registered evaluator."),
    supernet: Optional[Path] = typer.Option(None, "--supernet", help="Supernet directory (one-shot evaluators)."),
    data: str = typer.Option("digits", "--data", help="Dataset (train and proxy evaluators; one-shot uses the supernet's)."),
    data_root: Optional[str] = typer.Option(None, "--data-root", help="Local path for cifar10 / imagefolder."),
    image_size: int = typer.Option(32, "--image-size", help="Input size for MACs/latency and the train evaluator."),
    in_chans: int = typer.Option(1, "--in-chans", help="Input channels for MACs/latency (digits: 1)."),
    max_macs: Optional[str] = typer.Option(None, "--max-macs", help="MACs limit, e.g. 30M."),
    max_params: Optional[str] = typer.Option(None, "--max-params", help="Parameter limit, e.g. 500k."),
    max_latency_ms: Optional[float] = typer.Option(None, "--max-latency-ms", help="Latency limit at batch 1 (per-block lookup table measured on this machine)."),
    trials: Optional[int] = typer.Option(None, "--trials", help="Architectures to evaluate (default 50; predictor: archs given ground truth, default 20)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="darts | gdas | enas: supernet training epochs (default 5); --evaluator train: each candidate's stand-alone training epochs (default 3)."),
    second_order: bool = typer.Option(False, "--second-order", help="darts: second-order (unrolled, finite-difference) architecture gradient."),
    encoder: str = typer.Option("gates", "--encoder", help="predictor: mlp | gcn | gates."),
    bench: Optional[Path] = typer.Option(None, "--bench", help="Benchmark table for bench_accuracy/percentile and the predictor's ground truth: a file, or a shipped table by name, digits (default) or digits-hard."),
    bench_cache: Optional[Path] = typer.Option(None, "--bench-cache", help="JSON-lines cache of archs trained with the table's protocol (reused across runs)."),
    population: int = typer.Option(16, "--population", help="Population size (evolution, nsga2)."),
    threads: int = typer.Option(1, "--threads", help="Threads for latency measurements (darts | gdas | enas | predictor: torch threads of the whole search)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Evaluate candidates in parallel with Ray Tune: 'local' starts Ray here, or a cluster address (e.g. 'auto', 'ray://host:10001')."),
    ray_workers: int = typer.Option(2, "--ray-workers", help="Parallel Ray trials (one CPU and one thread each)."),
    json_output: bool = typer.Option(False, "--json", help="Print the Pareto front as JSON."),
) -> None:
    """Constrained architecture search; writes the measured Pareto front (score vs MACs).

    random, evolution (one batch per generation) and NSGA-II score batches of --population archs, TPE
    batches of --ray-workers; --ray-address spreads each batch over Ray workers.

    On the cell space, darts | gdas | enas train a weight-sharing supernet and predictor spends --trials on
    ground truth; they write result.json (arch, score, history, bench_accuracy, bench_percentile) and trajectory.png.
    """
    from slimvision.nas.cell_search import CELL_STRATEGIES

    if strategy in CELL_STRATEGIES:
        from slimvision.measure import pinned_threads

        with pinned_threads(threads):
            _cell_search(space, strategy, data, data_root, image_size, epochs, seed, trials, second_order, encoder, bench, bench_cache, out, json_output)
        return
    from slimvision.errors import ConfigError
    from slimvision.nas import SPACES, create_evaluator
    from slimvision.nas.strategies import Constraints, SearchConfig, run_search

    search_space = SPACES.get(space)()
    config = SearchConfig(strategy, 50 if trials is None else trials, population, seed, image_size, in_chans, 10, threads)
    context = {"supernet": supernet, "data": data, "data_root": data_root, "image_size": image_size, "seed": seed}
    if epochs is not None:
        if evaluator != "train":
            raise ConfigError(f"--epochs sets the supernet training of darts | gdas | enas or the stand-alone training of --evaluator train; --evaluator {evaluator} trains nothing")
        context["epochs"] = epochs
    if ray_address:
        from slimvision.nas.ray_backend import RayTuneEvaluator

        create_evaluator(evaluator, search_space, **context)  # fail here, not in a worker, on a bad name or supernet
        judge = RayTuneEvaluator(search_space, evaluator, context, out / "ray", ray_address, ray_workers)
    else:
        judge = create_evaluator(evaluator, search_space, **context)
    front = run_search(search_space, judge, Constraints(_parse_optional(max_macs), _parse_optional(max_params), max_latency_ms), config, out,
                       data_spec=_search_data_spec(supernet, data, data_root, image_size, in_chans))
    if json_output:
        print_json(front)
        return
    table = Table(title=f"Pareto front ({strategy}, {evaluator}) -> {out / 'pareto.json'}")
    for column in ("#", "score", "MACs", "params", "latency ms (bs1)"):
        table.add_column(column, justify="right")
    for index, point in enumerate(front):
        table.add_row(str(index), f"{point['score']:.4f}", f"{point['macs'] / 1e6:.2f}M", f"{point['params']:,}", f"{point['latency_ms']:.2f}")
    console.print(table)


def _search_data_spec(supernet: Optional[Path], data: str, data_root: Optional[str], image_size: int, in_chans: int) -> Optional[dict]:
    """The data the search's archs are meant for: the supernet's recorded data, else --data at --image-size (if its channels match)."""
    from slimvision.data import get_dataset
    from slimvision.errors import SlimvisionError
    from slimvision.io import read_json

    if supernet is not None and (supernet / "meta.json").is_file():
        return read_json(supernet / "meta.json").get("data")
    try:
        spec = get_dataset(data, "val", image_size, data_root).spec
    except SlimvisionError:  # a dataset that cannot load here is not recorded; the search itself reports real errors
        return None
    return spec.to_dict() if spec.in_chans == in_chans else None


def _cell_search(space, strategy, data, data_root, image_size, epochs, seed, trials, second_order, encoder, bench, bench_cache, out, json_output) -> None:
    from slimvision.errors import ConfigError
    from slimvision.nas.cell_search import CellSearchConfig, run_cell_search

    if space != "cell":
        raise ConfigError(f"--strategy {strategy} searches the cell space; got --space {space}")
    config = CellSearchConfig(strategy, data, data_root, image_size, CellSearchConfig.epochs if epochs is None else epochs, seed, second_order=second_order, encoder=encoder,
                              trials=20 if trials is None else trials, bench=str(bench) if bench else None,
                              bench_cache=str(bench_cache) if bench_cache else None, progress=not json_output)
    result = run_cell_search(config, out)
    if json_output:
        print_json({k: v for k, v in result.items() if k != "history"})
        return
    console.print(f"{strategy}: {result['arch_string']}  score {result['score']:.4f}  bench accuracy {result['bench_accuracy']:.4f} "
                  f"({result['bench_source']}), percentile {result['bench_percentile']:.1f}  -> {out / 'result.json'}")
    collapse = result.get("collapse")
    if collapse and collapse["collapsed"]:
        console.print(f"[yellow]warning: the derived cell collapsed to parameter-free ops ({collapse['parameter_free_edges']} of 6 edges)[/yellow]")


@app.command("derive")
def derive_command(
    pareto: Path = typer.Argument(..., help="pareto.json written by `slimvision search`."),
    index: int = typer.Option(..., "--index", help="Pareto point to derive."),
    out: Path = typer.Option(..., "--out", help="Model directory to write."),
    supernet: Optional[Path] = typer.Option(None, "--supernet", help="Inherit weights from this supernet (BN re-calibrated); default: fresh init."),
) -> None:
    """Turn a Pareto point into a standalone model (train it with `slimvision train`-style fine-tuning or evaluate it)."""
    from slimvision.nas.derive import derive

    result = derive(pareto, index, out, supernet)
    console.print(f"derived point {index} -> {out} ({'inherited weights' if result['inherited'] else 'fresh weights'})")

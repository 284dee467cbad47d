"""Per-block INT8 or float (`quantize --block-search`): every block's decision, and the searched file against the
placement's all-INT8 file and the fp32 model, timed in the same interleaved rounds on the same runtime.

    python benchmarks/quant_blocks.py --model /tmp/r20 --model /tmp/mbv2 --backends onnxruntime openvino --batch-size 32

Writes benchmarks/results/quant_blocks.md and .json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


from _common import conditions, conditions_markdown, markdown_table, write_results
from slimvision.data import load_splits
from slimvision.io import resolve_model, source_meta
from slimvision.measure import pinned_threads
from slimvision.quant import QuantConfig, export_onnx, quantize
from slimvision.quant.runtimes import OpenVinoRuntime, OrtRuntime, interleaved_latency_ms, runtime_predictions


def _runtime(backend: str, path: Path, threads: int):
    return OpenVinoRuntime(path, threads, "f32", "openvino") if backend == "openvino" else OrtRuntime(path, threads, "onnxruntime")


def run_one(model_dir: str, backend: str, batch_size: int, threads: int, budget_s: float, rounds: int) -> dict:
    """One model on one runtime: the search's decisions, then fp32 / all INT8 / searched INT8 in interleaved rounds."""
    meta = source_meta(model_dir)
    train, _, test = load_splits(meta.get("data"), None, None, None)
    model, _, _ = resolve_model(model_dir, num_classes=train.spec.num_classes, in_chans=train.spec.in_chans)
    load_before = os.getloadavg()
    common = {"backend": backend, "threads": threads, "batch_size": batch_size}
    plain = quantize(model, train, QuantConfig(**common))
    started = time.perf_counter()
    # repeats=5: quantize's own per-runtime rows are not reported here (the interleaved table below is), so keep them short
    searched = quantize(model, train, QuantConfig(**common, block_search=True, block_budget_s=budget_s, repeats=5), evaluation=test)
    search_wall = time.perf_counter() - started
    record = searched.summary["block_search"][backend]
    with tempfile.TemporaryDirectory() as tmp, pinned_threads(threads):
        tmp = Path(tmp)
        files = {"fp32": export_onnx(model.eval(), tuple(test.images.shape[1:]), tmp / "fp32.onnx")}
        for name, result in (("all INT8 (placement)", plain), ("block search", searched)):
            files[name] = tmp / f"{len(files)}.onnx"
            files[name].write_bytes(result.onnx_int8)
        runtimes = {name: _runtime(backend, path, threads) for name, path in files.items()}
        latency = interleaved_latency_ms(list(runtimes.values()), tuple(test.images.shape[1:]), batch_sizes=(batch_size,), repeats=20 * rounds // 5, rounds=rounds)
        labels = test.labels.numpy()
        rows = []
        for (name, runtime), ms in zip(runtimes.items(), latency):
            predictions = runtime_predictions(runtime, test.images, batch_size if backend == "openvino" else 64)
            rows.append({"model": name, "latency_ms": ms[str(batch_size)], "accuracy": float((predictions == labels).mean())})
    return {"model_dir": model_dir, **common, "search_wall_s": search_wall, "record": record, "rows": rows,
            "load_before": load_before, "load_after": os.getloadavg()}


def markdown(runs: list[dict], cond: dict, seconds: float) -> str:
    lines = ["# Per-block INT8 or float (`--block-search`)", ""]
    lines += ["The machine was shared (another job trained at normal priority on the same 2 cores; this ran at nice 10): "
              "absolute times are inflated and noisy, the ratios within one table are what to read.", ""]
    for run in runs:
        rec = run["record"]
        load = " / ".join(f"{v:.1f}" for v in run["load_before"]), " / ".join(f"{v:.1f}" for v in run["load_after"])
        lines += [f"## {run['model_dir']} on {run['backend']}, batch {run['batch_size']}", "",
                  f"Search: {rec['blocks']} blocks, {len(rec['float_blocks'])} kept float, {rec['seconds']:.1f} s "
                  f"(budget {rec['budget_s']:.0f} s; the whole quantize call {run['search_wall_s']:.1f} s). Load average before {load[0]}, after {load[1]}.", "",
                  f"Result check: {rec['result']}.", ""]
        fp32 = next(r for r in run["rows"] if r["model"] == "fp32")
        lines += [markdown_table(["model", f"bs{run['batch_size']} ms", "vs fp32", "top-1"], [
            [r["model"], f"{r['latency_ms']:.2f}", f"{fp32['latency_ms'] / r['latency_ms']:.2f}x", f"{r['accuracy']:.4f}"] for r in run["rows"]]), ""]
        lines += [markdown_table(["block", "kept", "INT8 ms", "float ms", "gain for float", "noise", "top-1 float", "why"], [
            [d["block"], d["kept"], _fmt(d["int8_ms"]), _fmt(d["float_ms"]), _pct(d["gain"]), _pct(d["noise"], sign=False), _fmt(d["accuracy_float"], ".4f"), d["reason"]]
            for d in rec["decisions"]]), ""]
        lines += [f"Timing of the search: {rec['conditions']}.", ""]
    lines += ["Final table: fp32, all INT8 and searched files timed on the same runtime in the same interleaved rounds "
              "(`slimvision.quant.runtimes.interleaved_latency_ms`, order rotated, median of round medians), random inputs.", ""]
    return "\n".join(lines + conditions_markdown(cond, seconds))


def _fmt(value, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _pct(value, sign: bool = True) -> str:
    return "-" if value is None else f"{100 * value:{'+' if sign else ''}.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="a trained model directory (repeatable)")
    parser.add_argument("--backends", nargs="+", default=["onnxruntime", "openvino"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", default="quant_blocks")
    args = parser.parse_args()
    started = time.perf_counter()
    runs = [run_one(model, backend, args.batch_size, args.threads, args.budget, args.rounds) for model in args.model for backend in args.backends]
    cond = conditions(args.threads)
    text = markdown(runs, cond, time.perf_counter() - started)
    write_results(args.out, text, {"conditions": cond, "runs": runs})
    print(text)


if __name__ == "__main__":
    main()

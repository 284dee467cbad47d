"""OpenVINO INT8 accuracy and speed on a trained model, dynamic vs static batch, ours vs NNCF, interleaved rounds.

Two steps, because NNCF lives in its own environment (it is a peer, not a dependency):

    python benchmarks/openvino_collapse.py prepare --model runs/r20 --work /tmp/oc          # fp32/int8 ONNX + calibration .npy
    (or --model resnet56 --weights ckpt/model.safetensors --data digits --image-size 32)
    /path/to/nncf-venv/bin/python benchmarks/openvino_collapse.py nncf --work /tmp/oc       # NNCF PTQ -> /tmp/oc/nncf.xml
    python benchmarks/openvino_collapse.py measure --work /tmp/oc --out benchmarks/results/openvino_collapse_r20
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def prepare(args) -> None:
    from slimvision.data import load_splits
    from slimvision.io import resolve_model, source_meta
    from slimvision.quant.export import export_onnx
    from slimvision.quant.onnx_int8 import quantize_static_qdq

    from slimvision.models.sources import ModelSource

    source = ModelSource(args.model, weights=args.weights) if args.weights else args.model
    train, _, test = load_splits(source_meta(source).get("data"), args.data, args.image_size, None)
    model, _, _ = resolve_model(source, num_classes=train.spec.num_classes, in_chans=train.spec.in_chans)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    fp32 = export_onnx(model.eval(), tuple(test.images.shape[1:]), work / "fp32.onnx")
    quantize_static_qdq(fp32, work / "int8.onnx", train.images[:256])
    np.save(work / "calib.npy", train.images[:256].numpy())
    np.save(work / "test_x.npy", test.images.numpy())
    np.save(work / "test_y.npy", test.labels.numpy())
    (work / "model.txt").write_text(str(args.model) + (f" (weights {args.weights})" if args.weights else ""))


def nncf_quantize(args) -> None:
    import nncf
    import openvino as ov

    from slimvision.quant.runtimes import openvino_core

    work = Path(args.work)
    calib = np.load(work / "calib.npy")
    dataset = nncf.Dataset([calib[i : i + 32] for i in range(0, len(calib), 32)])
    ov.save_model(nncf.quantize(openvino_core().read_model(str(work / "fp32.onnx")), dataset, subset_size=len(calib)), str(work / "nncf.xml"))
    (work / "nncf_version.txt").write_text(nncf.__version__)


def measure(args) -> None:
    import openvino as ov

    from slimvision.quant.runtimes import OpenVinoRuntime, OrtRuntime, openvino_core

    class DynamicOpenVino:
        """What the runtime did before: one compile with a dynamic batch dimension."""

        def __init__(self, path: Path, threads: int):
            core = openvino_core()
            model = core.read_model(str(path))
            model.reshape({model.inputs[0].get_any_name(): ov.PartialShape([-1, *model.inputs[0].get_partial_shape()[1:]])})
            config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
            self.request = core.compile_model(model, "CPU", config).create_infer_request()

        def run(self, batch):
            return self.request.infer({0: batch})[0].copy()

    work = Path(args.work)
    x, y = np.load(work / "test_x.npy"), np.load(work / "test_y.npy")
    t = args.threads
    runtimes = {
        "onnxruntime fp32": OrtRuntime(work / "fp32.onnx", t),
        "onnxruntime int8 (our QDQ)": OrtRuntime(work / "int8.onnx", t),
        "openvino f32 (static batch)": OpenVinoRuntime(work / "fp32.onnx", t, "f32"),
        "openvino int8, our QDQ, dynamic batch (before)": DynamicOpenVino(work / "int8.onnx", t),
        "openvino int8, our QDQ, static batch (now)": OpenVinoRuntime(work / "int8.onnx", t, "f32"),
    }
    if (work / "nncf.xml").is_file():
        runtimes["nncf + openvino int8, dynamic batch"] = DynamicOpenVino(work / "nncf.xml", t)
        runtimes["nncf + openvino int8, static batch"] = OpenVinoRuntime(work / "nncf.xml", t, "f32")
    accuracy = {}
    for name, runtime in runtimes.items():
        predictions = np.concatenate([runtime.run(x[i : i + 32]).argmax(1) for i in range(0, len(x), 32)])
        accuracy[name] = float((predictions == y).mean())
    batch = np.random.default_rng(0).standard_normal((args.batch_size, *x.shape[1:]), dtype=np.float32)
    samples: dict[str, list[float]] = {name: [] for name in runtimes}
    for round_index in range(args.rounds):
        names = list(runtimes)
        for name in names[round_index % len(names):] + names[: round_index % len(names)]:
            runtime = runtimes[name]
            for _ in range(3):
                runtime.run(batch)
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                runtime.run(batch)
                times.append((time.perf_counter() - start) * 1000)
            samples[name].append(statistics.median(times))
    latency = {name: statistics.median(v) for name, v in samples.items()}
    load = os.getloadavg()
    lines = [
        f"# OpenVINO INT8 on {(work / 'model.txt').read_text()}: dynamic vs static batch, ours vs NNCF", "",
        f"openvino {ov.__version__}; NNCF {(work / 'nncf_version.txt').read_text() if (work / 'nncf_version.txt').is_file() else 'not run'} "
        f"(its own venv, same openvino); {t} threads; top-1 on {len(y)} test images; latency at batch {args.batch_size}: median over {args.rounds} "
        f"interleaved rounds (order rotated) of the median of {args.repeats} runs after 3 warm-up, same process. "
        f"Load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores: the machine was shared, absolute times are inflated.", "",
        f"Command: `python benchmarks/openvino_collapse.py measure --work {args.work} --out {args.out} --threads {t} --batch-size {args.batch_size} --rounds {args.rounds} --repeats {args.repeats}`", "",
        "| runtime | top-1 | ms (median of rounds) | range over rounds |", "|---|---|---|---|",
    ]
    for name in runtimes:
        lines.append(f"| {name} | {accuracy[name]:.4f} | {latency[name]:.2f} | {min(samples[name]):.2f}-{max(samples[name]):.2f} |")
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    Path(args.out + ".json").write_text(json.dumps({"command": " ".join(["python benchmarks/openvino_collapse.py", *sys.argv[1:]]), "accuracy": accuracy, "latency_ms": latency, "samples": samples, "batch_size": args.batch_size, "threads": t}, indent=1))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--model", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--weights", help="weights for a model builder (e.g. a training checkpoint's model.safetensors)")
    p.add_argument("--data", help="dataset, when --model is a builder")
    p.add_argument("--image-size", type=int)
    n = sub.add_parser("nncf")
    n.add_argument("--work", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--work", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--threads", type=int, default=2)
    m.add_argument("--batch-size", type=int, default=32)
    m.add_argument("--rounds", type=int, default=5)
    m.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    {"prepare": prepare, "nncf": nncf_quantize, "measure": measure}[args.step](args)


if __name__ == "__main__":
    sys.exit(main())

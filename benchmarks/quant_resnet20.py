"""INT8 speed-up of resnet20 (digits, 32x32) at batch 32, with interleaved rounds.

The acceptance numbers of the quantization work, measured so that drifts in machine load hit
every runtime alike: 7 rounds, each timing onnxruntime fp32 / INT8, OpenVINO f32 / INT8 (our QDQ
file) and NNCF + OpenVINO (median of 30 runs after 5 warm-up); the reported latency is the
median over rounds. Writes benchmarks/results/quant_resnet20.md (+ .json). Run on an idle machine.

    pip install nncf   # the peer, benchmark only
    python benchmarks/quant_resnet20.py [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from _common import conditions, conditions_markdown, markdown_table, write_results
from slimvision.data import get_dataset
from slimvision.io import load_artifact
from slimvision.quant import export_onnx
from slimvision.quant.onnx_int8 import quantize_static_qdq
from slimvision.quant.runtimes import OpenVinoRuntime, OrtRuntime, openvino_core, runtime_latency_ms, runtime_predictions
from slimvision.train import TrainConfig
from slimvision.train.run import RunSpec, train_run


def nncf_model(fp32_onnx: Path, calib: torch.Tensor, out: Path, transformer: bool = False) -> Path:
    """NNCF PTQ of the OpenVINO model read from `fp32_onnx`; `transformer`: NNCF's scheme for transformer models (`ModelType.TRANSFORMER`)."""
    import nncf
    import openvino as ov

    dataset = nncf.Dataset([calib[i : i + 32].numpy() for i in range(0, len(calib), 32)])
    extra = {"model_type": nncf.ModelType.TRANSFORMER} if transformer else {}
    ov.save_model(nncf.quantize(openvino_core().read_model(str(fp32_onnx)), dataset, subset_size=len(calib), **extra), str(out))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--name", default="quant_resnet20", help="Results file name in benchmarks/results/.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="quant-r20-"))
    train_run(RunSpec("resnet20", "digits", 32, config=TrainConfig(epochs=10, seed=0, save_every=0, progress=False)), work / "fp32")
    model = load_artifact(work / "fp32").model.eval()
    calib = get_dataset("digits", "train", 32).images[:256]
    test = get_dataset("digits", "test", 32)
    fp32 = export_onnx(model, (1, 32, 32), work / "fp32.onnx")
    int8 = quantize_static_qdq(fp32, work / "int8.onnx", calib)
    # The earlier graph, for comparison: only the layers with weights quantized (float ReLU and adds between them).
    weights_only = quantize_static_qdq(fp32, work / "int8_weights_only.onnx", calib, flow_ops=())
    peer = nncf_model(fp32, calib, work / "nncf.xml")
    runtimes = {
        "onnxruntime fp32": OrtRuntime(fp32, args.threads),
        "onnxruntime int8": OrtRuntime(int8, args.threads),
        "onnxruntime int8, conv/gemm only": OrtRuntime(weights_only, args.threads),
        "openvino f32": OpenVinoRuntime(fp32, args.threads, "f32"),
        "openvino int8 (our QDQ)": OpenVinoRuntime(int8, args.threads, "f32"),
        "openvino int8, conv/gemm only": OpenVinoRuntime(weights_only, args.threads, "f32"),
        "nncf + openvino int8": OpenVinoRuntime(peer, args.threads, "f32"),
    }
    accuracy = {name: float((runtime_predictions(rt, test.images) == test.labels.numpy()).mean()) for name, rt in runtimes.items()}
    samples: dict[str, list[float]] = {name: [] for name in runtimes}
    for _ in range(args.rounds):
        for name, runtime in runtimes.items():
            samples[name].append(runtime_latency_ms(runtime, (1, 32, 32), batch_sizes=(32,), repeats=30)["32"])
    latency = {name: statistics.median(values) for name, values in samples.items()}
    baseline = {name: ("onnxruntime fp32" if name.startswith("onnxruntime") else "openvino f32") for name in runtimes if "int8" in name}
    rows = [[name, f"{accuracy[name]:.4f}", f"{latency[name]:.2f}", f"{min(samples[name]):.2f}-{max(samples[name]):.2f}",
             f"{latency[baseline[name]] / latency[name]:.2f}x" if name in baseline else "—"] for name in runtimes]
    sizes = {"fp32 onnx": fp32.stat().st_size, "int8 onnx": int8.stat().st_size}
    md = [
        "# resnet20 INT8 at batch 32: interleaved measurement",
        "",
        f"resnet20 trained 10 epochs on digits 32x32; static INT8 (QDQ, MinMax, per-channel weights, ReLU and residual adds quantized, 256 calibration images; "
        f"the 'conv/gemm only' rows quantize only the layers with weights). "
        f"Latency: median over {args.rounds} interleaved rounds of (median of 30 runs after 5 warm-up), {args.threads} threads. "
        f"File size fp32 {sizes['fp32 onnx']:,} B / int8 {sizes['int8 onnx']:,} B = {sizes['fp32 onnx'] / sizes['int8 onnx']:.2f}x smaller.",
        "",
        markdown_table(["runtime", "top-1 (360 test images)", "bs32 ms (median of rounds)", "range over rounds", "speed-up vs same runtime fp32"], rows),
        "",
        *conditions_markdown(conditions(args.threads), time.perf_counter() - start),
    ]
    write_results(args.name, "\n".join(md), {"accuracy": accuracy, "latency_ms": latency, "samples": samples, "sizes": sizes})
    print("\n".join(md))


if __name__ == "__main__":
    main()

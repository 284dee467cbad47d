"""INT8 quantization benchmark: every runtime, same process, vs NNCF + OpenVINO as the peer.

Trains resnet20, resnet56, MobileNetV2 (CIFAR stem) and a 50%-MACs L1-pruned resnet56 on digits
(32x32), quantizes each with `quantize_artifact` on every backend and with `auto` (onnxruntime QDQ, OpenVINO on
the same QDQ file, torchao PT2E + inductor), and quantizes the same fp32 ONNX model with NNCF's
post-training quantization on OpenVINO. Also the QAT case: a small CNN with one outlier channel
(function-preserving rescale) where PTQ loses > 1 point. Writes benchmarks/results/quant.md.

    pip install nncf   # benchmark only
    python benchmarks/quant.py [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from _common import conditions, conditions_markdown, markdown_table, write_results
from slimvision.data import get_dataset
from slimvision.io import load_artifact, save_artifact
from slimvision.measure import pinned_threads
from slimvision.prune import FinetuneConfig, PruneConfig, prune_artifact
from slimvision.quant import QuantConfig, export_onnx, quantize_artifact
from slimvision.quant.runtimes import OpenVinoRuntime, openvino_core, runtime_latency_ms, runtime_predictions
from slimvision.train import TrainConfig
from slimvision.train.run import RunSpec, train_run

MODELS = [("resnet20", 10), ("resnet56", 20), ("mobilenetv2_cifar", 6)]


def nncf_openvino(fp32_onnx: Path, calib: torch.Tensor, test, threads: int, repeats: int) -> dict:
    import nncf
    import openvino as ov

    model = openvino_core().read_model(str(fp32_onnx))
    dataset = nncf.Dataset([calib[i : i + 32].numpy() for i in range(0, len(calib), 32)])
    quantized = nncf.quantize(model, dataset, subset_size=len(calib))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "nncf.xml"
        ov.save_model(quantized, str(path))
        runtime = OpenVinoRuntime(path, threads, "f32", "nncf + openvino")
        accuracy = float((runtime_predictions(runtime, test.images) == test.labels.numpy()).mean())
        latency = runtime_latency_ms(runtime, test.spec.input_size, repeats=repeats)
    return {"accuracy": accuracy, "latency_ms": latency}


def outlier_model(source: Path, target: Path, scale: float = 60.0) -> None:
    """Rescale one channel by `scale` before a ReLU and by 1/scale after it: same function, wide activation range."""
    artifact = load_artifact(source)
    model = artifact.model
    with torch.no_grad():
        model.features[1].weight[0] *= scale
        model.features[1].bias[0] *= scale
        model.features[3].weight[:, 0] /= scale
    save_artifact(model, artifact.arch, target, artifact.meta)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="quant-bench-"))
    start = time.perf_counter()
    dirs = {}
    for name, epochs in MODELS:
        train_run(RunSpec(name, "digits", 32, config=TrainConfig(epochs=epochs, seed=0, save_every=0, progress=False)), work / name)
        dirs[name] = work / name
    prune_artifact(str(work / "resnet56"), PruneConfig(method="l1", macs_ratio=0.5), work / "resnet56_pruned", finetune_config=FinetuneConfig(epochs=3), threads=args.threads)
    dirs["resnet56 (L1, 50% MACs)"] = work / "resnet56_pruned"

    sections, data = [], {}
    calib = get_dataset("digits", "train", 32).images[:256]
    test = get_dataset("digits", "test", 32)
    summary_rows = []
    for label, directory in dirs.items():
        # every runtime's fp32 / INT8 rows (one verb call per backend), then what `auto` picks among them
        per_backend = {
            backend: quantize_artifact(directory, QuantConfig(backend=backend, calib_samples=256, threads=args.threads, repeats=args.repeats), work / f"{directory.name}_{backend}")
            for backend in ("onnxruntime", "openvino", "torchao")
        }
        summary = quantize_artifact(directory, QuantConfig(backend="auto", calib_samples=256, threads=args.threads), work / f"{directory.name}_int8")
        with pinned_threads(args.threads):
            fp32_onnx = export_onnx(load_artifact(directory).model, (1, 32, 32), work / f"{directory.name}.onnx")
            peer = nncf_openvino(fp32_onnx, calib, test, args.threads, args.repeats)
        rows = [row for backend, result in per_backend.items() for row in result["rows"] if backend == "onnxruntime" or row["runtime"] != "torch eager"]
        baseline = {r["runtime"]: r for r in rows if r["precision"].startswith("fp32")}
        table = []
        for row in rows:
            base = baseline.get(row["runtime"])
            speedup = base["latency_ms"]["32"] / row["latency_ms"]["32"] if base and base is not row else None
            table.append([row["runtime"], row["precision"], f"{row['accuracy']:.4f}", f"{row['agreement']:.4f}", f"{row['latency_ms']['1']:.2f}", f"{row['latency_ms']['32']:.2f}", f"{speedup:.2f}x" if speedup else "—"])
        ov_fp32 = baseline["openvino"]["latency_ms"]["32"]
        table.append(["nncf + openvino", "int8 (NNCF PTQ)", f"{peer['accuracy']:.4f}", "—", f"{peer['latency_ms']['1']:.2f}", f"{peer['latency_ms']['32']:.2f}", f"{ov_fp32 / peer['latency_ms']['32']:.2f}x"])
        ours_ov = next(r for r in rows if r["runtime"] == "openvino" and r["precision"].startswith("int8"))
        summary_rows.append([
            label, f"{summary['accuracy_fp32']:.4f}", summary["deployment"], f"{summary['speedup_vs_fastest_fp32']:.2f}x",
            f"{ov_fp32 / ours_ov['latency_ms']['32']:.2f}x", f"{ov_fp32 / peer['latency_ms']['32']:.2f}x",
            f"{summary['size_bytes_fp32'] / summary['size_bytes_int8']:.2f}x",
        ])
        sections += [f"### {label}", "", markdown_table(["runtime", "precision", "top-1", "agreement w/ eager fp32", "bs1 ms", "bs32 ms", "speed-up bs32 vs same runtime fp32"], table), ""]
        data[label] = {"auto": summary, "per_backend": per_backend, "nncf_openvino": peer}
        print(label, "done", flush=True)

    # QAT: a case where PTQ loses more than a point
    train_run(RunSpec("small_cnn", "digits", None, config=TrainConfig(epochs=10, seed=0, save_every=0, progress=False)), work / "small_cnn")
    outlier_model(work / "small_cnn", work / "small_cnn_outlier")
    qat_rows = []
    for mode in ("static", "qat"):
        summary = quantize_artifact(work / "small_cnn_outlier", QuantConfig(backend="torchao", mode=mode, threads=args.threads, repeats=args.repeats), work / f"outlier_{mode}")
        qat_rows.append([f"torchao {mode}", f"{summary['accuracy_fp32']:.4f}", f"{summary['accuracy_int8']:.4f}", f"{100 * (summary['accuracy_int8'] - summary['accuracy_fp32']):+.2f}"])
        data[f"outlier_{mode}"] = summary
    ort = quantize_artifact(work / "small_cnn_outlier", QuantConfig(backend="onnxruntime", threads=args.threads, repeats=args.repeats), work / "outlier_ort")
    qat_rows.insert(0, ["onnxruntime static (minmax)", f"{ort['accuracy_fp32']:.4f}", f"{ort['accuracy_int8']:.4f}", f"{100 * (ort['accuracy_int8'] - ort['accuracy_fp32']):+.2f}"])

    cond = conditions(args.threads)
    cpu_flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cond.update(amx_int8="amx_int8" in cpu_flags, avx512_vnni="avx512_vnni" in cpu_flags)
    md = [
        "# INT8 quantization on CPU: measured speed-ups",
        "",
        "Models trained on digits (32x32, 1 channel), 256 calibration images (MinMax), top-1 on the 360 test images. "
        f"Latency: median of {args.repeats} runs after 5 warm-up, {args.threads} threads pinned, every row measured in the same process. "
        "Speed-ups are against the same runtime's fp32 model (torchao: against torch.compile fp32); OpenVINO's fp32 baseline pins "
        "INFERENCE_PRECISION_HINT=f32 and its default bf16 mode is a separate row.",
        "",
        "## Summary",
        "",
        markdown_table(["model", "fp32 top-1", "auto picked", "picked vs fastest fp32, bs32", "OpenVINO on our QDQ vs OV f32", "NNCF+OpenVINO vs OV f32", "size fp32 ONNX / picked int8 file"], summary_rows),
        "",
        "## Per model",
        "",
        *sections,
        "## QAT recovers a case where PTQ loses more than a point",
        "",
        "small_cnn on digits 8x8 with one first-layer channel scaled by 60 before its ReLU and by 1/60 after it: the fp32 "
        "function is unchanged, but the per-tensor activation range is 60x wider, so 8-bit PTQ loses resolution. QAT: PT2E "
        "prepare_qat, 3 epochs AdamW lr 1e-4, then convert.",
        "",
        markdown_table(["method", "fp32 top-1", "int8 top-1", "Δ points"], qat_rows),
        "",
        *conditions_markdown(cond, time.perf_counter() - start),
    ]
    write_results("quant", "\n".join(md), data)
    print("\n".join(md))


if __name__ == "__main__":
    main()

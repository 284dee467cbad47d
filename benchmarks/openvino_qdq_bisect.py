"""Where does OpenVINO's reading of a QDQ ONNX model leave the ONNX semantics? Bisect by prefix graphs.

The reference is onnxruntime with every graph optimisation disabled: QuantizeLinear / DequantizeLinear
computed literally, in float. For each tensor along the graph, the prefix model (graph input -> that
tensor) runs on both engines with the same images; the error is measured in units of the tensor's own
quantization step where it has one. Prefix models are used instead of extra graph outputs because
exposing an intermediate tensor changes how OpenVINO fuses the graph (and hides the bug).

    python benchmarks/openvino_qdq_bisect.py --model runs/r20 --data digits --out benchmarks/results/openvino_bisect_r20
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnx.utils

from slimvision.data import load_splits
from slimvision.io import resolve_model, source_meta
from slimvision.quant.export import INPUT_NAME, export_onnx
from slimvision.quant.onnx_int8 import quantize_static_qdq
from slimvision.quant.runtimes import openvino_core


def ort_literal(path: Path, threads: int):
    """onnxruntime with graph optimisations off: QuantizeLinear/DequantizeLinear as the ONNX spec defines them."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda feeds: session.run(None, feeds)[0]


def openvino_runner(path: Path, threads: int, config: dict | None = None):
    """OpenVINO CPU with f32 inference precision (no bf16) plus any extra `config`."""
    core = openvino_core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads, **(config or {})})
    request = compiled.create_infer_request()
    names = [i.get_any_name() for i in compiled.inputs]
    return lambda feeds: request.infer({names.index(k): v for k, v in feeds.items()})[0].copy()


def accuracy(run, images: np.ndarray, labels: np.ndarray) -> float:
    predictions = np.concatenate([run({INPUT_NAME: images[i : i + 64]}).argmax(1) for i in range(0, len(images), 64)])
    return float((predictions == labels).mean())


def quant_steps(model: onnx.ModelProto) -> dict[str, float]:
    """Largest quantization step (scale) of every DequantizeLinear output, by tensor name."""
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    return {n.output[0]: float(np.max(inits[n.input[1]])) for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[1] in inits}


def bisect(int8: Path, images: np.ndarray, threads: int, tmp: Path, ov_config: dict | None = None) -> list[dict]:
    """Per activation tensor (each DequantizeLinear output that is not a weight): OV vs literal ONNX error of its prefix model."""
    model = onnx.load(str(int8))
    inits = {i.name for i in model.graph.initializer}
    steps = quant_steps(model)
    cuts = [n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] not in inits]
    cuts.append(model.graph.output[0].name)
    rows = []
    for index, tensor in enumerate(cuts):
        path = tmp / f"prefix{index}.onnx"
        onnx.utils.extract_model(str(int8), str(path), [INPUT_NAME], [tensor], check_model=False)
        expected = ort_literal(path, threads)({INPUT_NAME: images})
        got = openvino_runner(path, threads, ov_config)({INPUT_NAME: images})
        step = steps.get(tensor)
        diff = np.abs(got - expected)
        rows.append({
            "index": index, "tensor": tensor, "step": step, "max_abs_diff": float(diff.max()),
            "max_diff_steps": float(diff.max() / step) if step else None,
            "share_off_by_more_than_1_step": float((diff > 1.01 * step).mean()) if step else None,
            "rel_diff": float(diff.max() / (np.abs(expected).max() + 1e-12)),
        })
        print(f"{index:3d} {tensor[:60]:60s} max diff {rows[-1]['max_abs_diff']:.4g}" + (f" = {rows[-1]['max_diff_steps']:.1f} steps, {100 * rows[-1]['share_off_by_more_than_1_step']:.2f}% > 1 step" if step else ""), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", default=None)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--calib-samples", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep-activations", action="store_true", help="quantize with the ReLU nodes kept (QDQKeepRemovableActivations)")
    parser.add_argument("--out", required=True, help="path prefix for the .onnx files and the .json result")
    args = parser.parse_args()

    train, _, test = load_splits(source_meta(args.model).get("data"), args.data, args.image_size, None)
    model, _, _ = resolve_model(args.model, num_classes=train.spec.num_classes, in_chans=train.spec.in_chans)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fp32 = export_onnx(model.eval(), tuple(test.images.shape[1:]), out.with_name(out.name + "_fp32.onnx"))
    int8 = quantize_static_qdq(fp32, out.with_name(out.name + "_int8.onnx"), train.images[: args.calib_samples], keep_activations=args.keep_activations)
    images, labels = test.images.numpy(), test.labels.numpy()
    result = {
        "model": args.model, "keep_activations": args.keep_activations,
        "accuracy": {
            "onnxruntime fp32": accuracy(ort_literal(fp32, args.threads), images, labels),
            "onnxruntime int8 literal (ORT_DISABLE_ALL)": accuracy(ort_literal(int8, args.threads), images, labels),
            "openvino int8 (f32 hint)": accuracy(openvino_runner(int8, args.threads), images, labels),
            "openvino int8 (f32 hint, LP_TRANSFORMS_MODE off)": accuracy(openvino_runner(int8, args.threads, {"LP_TRANSFORMS_MODE": False}), images, labels),
        },
    }
    print(json.dumps(result["accuracy"], indent=1), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        result["bisect"] = bisect(int8, images[:64], args.threads, Path(tmp))
    out.with_name(out.name + ".json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

"""Does OpenVINO compute a QDQ file as ONNX defines it? Logits of OpenVINO (dynamic vs static batch) against the literal ONNX result.

Independent of how well the model is trained: the reference is onnxruntime with every graph optimisation off
(QuantizeLinear/DequantizeLinear computed as the spec says), on the same file and images.

    python benchmarks/openvino_collapse.py prepare --model resnet56 --weights ckpt/model.safetensors --data digits --image-size 32 --work /tmp/oc56
    python benchmarks/openvino_logits_check.py --work /tmp/oc56 --out openvino_logits_r56
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, write_results  # noqa: E402
from openvino_qdq_bisect import openvino_runner, ort_literal  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="a directory written by openvino_collapse.py prepare")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", required=True, help="results file name (without extension)")
    args = parser.parse_args()

    import openvino as ov

    from slimvision.quant.runtimes import OpenVinoRuntime

    work = Path(args.work)
    images, labels = np.load(work / "test_x.npy"), np.load(work / "test_y.npy")
    images = images[: len(images) - len(images) % args.batch_size]  # whole batches: one static shape
    labels = labels[: len(images)]
    batches = [images[i : i + args.batch_size] for i in range(0, len(images), args.batch_size)]
    literal_run, fp32_run = ort_literal(work / "int8.onnx", args.threads), ort_literal(work / "fp32.onnx", args.threads)
    literal = np.concatenate([literal_run({"input": b}) for b in batches])
    fp32 = np.concatenate([fp32_run({"input": b}) for b in batches])
    dynamic_run = openvino_runner(work / "int8.onnx", args.threads)
    static = OpenVinoRuntime(work / "int8.onnx", args.threads, "f32")
    outputs = {
        "onnxruntime, literal QDQ (reference)": literal,
        "openvino int8, dynamic batch": np.concatenate([dynamic_run({"input": b}) for b in batches]),
        "openvino int8, static batch (slimvision's runtime)": np.concatenate([static.run(b) for b in batches]),
        "fp32 (onnxruntime, for scale)": fp32,
    }
    scale = float(np.abs(literal).mean())
    rows, data = [], {}
    for name, logits in outputs.items():
        record = {
            "argmax_agreement_with_literal": float((logits.argmax(1) == literal.argmax(1)).mean()),
            "mean_abs_logit_diff_relative": float(np.abs(logits - literal).mean() / scale),
            "top1": float((logits.argmax(1) == labels).mean()),
        }
        data[name] = record
        rows.append([name, f"{record['argmax_agreement_with_literal']:.4f}", f"{record['mean_abs_logit_diff_relative']:.4f}", f"{record['top1']:.4f}"])
    load = os.getloadavg()
    lines = [
        f"# OpenVINO vs the ONNX semantics of one QDQ file: {(work / 'model.txt').read_text()}", "",
        f"openvino {ov.__version__}; {len(images)} test images in batches of {args.batch_size}; {args.threads} threads; "
        f"load average {load[0]:.1f} (shared machine). Relative difference: mean |logits - literal| / mean |literal|.", "",
        markdown_table(["runtime", "argmax agreement with literal QDQ", "relative logit difference", "top-1"], rows), "",
    ]
    write_results(args.out, "\n".join(lines), {"work": str(work), "runtimes": data})
    print("\n".join(lines))


if __name__ == "__main__":
    main()

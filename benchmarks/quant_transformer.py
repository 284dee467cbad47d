"""INT8 accuracy of a trained transformer: QDQ placement x calibration method x weight granularity, on both ONNX engines.

    slimvision train --model benchmarks/tiny_vit.py:tiny_vit --data digits --image-size 32 --epochs 15 --optimizer adamw --out runs/vit
    python benchmarks/quant_transformer.py --model runs/vit --threads 2 --out quant_transformer

Every variant is quantized from the same fp32 ONNX export with 256 calibration images from the training split
and scored on the test split; OpenVINO runs the same QDQ file (static batch shape). Agreement is top-1
agreement with PyTorch fp32.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import conditions, conditions_markdown, markdown_table, write_results  # noqa: E402

VARIANTS = [  # (label, pattern_aware, calibration method, per-channel weights)
    ("by op type (before)", False, "minmax", True),
    ("pattern-aware", True, "minmax", True),
    ("pattern-aware", True, "percentile", True),
    ("pattern-aware", True, "entropy", True),
    ("pattern-aware, per-tensor weights", True, "minmax", False),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a trained model directory, or a builder with --weights")
    parser.add_argument("--weights", help="weights for a builder (e.g. a training checkpoint's model.safetensors)")
    parser.add_argument("--model-kwargs", default="{}", help="JSON keyword arguments for a builder")
    parser.add_argument("--data", help="dataset, when --model is a builder")
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calib-samples", type=int, default=256)
    parser.add_argument("--out", default="quant_transformer", help="results file name (without extension)")
    args = parser.parse_args()

    import torch

    from slimvision.data import load_splits
    from slimvision.io import resolve_model, source_meta
    from slimvision.measure import pinned_threads
    from slimvision.quant.export import export_onnx
    from slimvision.quant.onnx_int8 import quantize_static_qdq
    from slimvision.quant.runtimes import OpenVinoRuntime, OrtRuntime, runtime_predictions

    start = time.perf_counter()
    from slimvision.models.sources import ModelSource

    source = ModelSource(args.model, json.loads(args.model_kwargs), args.weights) if args.weights else args.model
    train, _, test = load_splits(source_meta(source).get("data"), args.data, args.image_size, None)
    model, _, _ = resolve_model(source, num_classes=train.spec.num_classes, in_chans=train.spec.in_chans)
    model = model.eval()
    labels = test.labels.numpy()
    with torch.no_grad():
        reference = model(test.images).argmax(1).numpy()
    fp32_top1 = float((reference == labels).mean())
    rows, records = [], []
    with pinned_threads(args.threads), tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, tuple(test.images.shape[1:]), Path(tmp) / "fp32.onnx")
        for label, pattern_aware, method, per_channel in VARIANTS:
            int8 = quantize_static_qdq(fp32, Path(tmp) / "int8.onnx", train.images[: args.calib_samples], method,
                                       pattern_aware=pattern_aware, per_channel=per_channel)
            record = {"placement": label, "calibration": method, "per_channel": per_channel}
            for engine, runtime in (("onnxruntime", OrtRuntime(int8, args.threads)), ("openvino", OpenVinoRuntime(int8, args.threads))):
                predictions = runtime_predictions(runtime, test.images)
                record[engine] = {"top1": float((predictions == labels).mean()), "agreement": float((predictions == reference).mean())}
            records.append(record)
            rows.append([label, method, "per channel" if per_channel else "per tensor",
                         *[f"{record[e]['top1']:.4f} ({100 * (record[e]['top1'] - fp32_top1):+.1f})" for e in ("onnxruntime", "openvino")],
                         *[f"{record[e]['agreement']:.4f}" for e in ("onnxruntime", "openvino")]])
            print(rows[-1], flush=True)
    load = os.getloadavg()
    lines = [
        "# INT8 on a small ViT: placement, calibration, weight granularity", "",
        f"Model: `{args.model}`{f' with weights `{args.weights}`' if args.weights else ''} ({sum(p.numel() for p in model.parameters())} parameters; {train.spec.name} {tuple(test.images.shape[1:])}). "
        f"PyTorch fp32 top-1 on the {len(test)} test images: **{fp32_top1:.4f}**. Calibration: the first {args.calib_samples} training images. "
        "Top-1 in brackets: points vs fp32.", "",
        markdown_table(["placement", "calibration", "weights", "onnxruntime top-1", "openvino top-1", "onnxruntime agreement", "openvino agreement"], rows), "",
        *conditions_markdown({**conditions(args.threads), "load average at the end": f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (shared machine)"},
                             time.perf_counter() - start),
    ]
    write_results(args.out, "\n".join(lines), {"model": args.model, "fp32_top1": fp32_top1, "variants": records})
    print("\n".join(lines))


if __name__ == "__main__":
    main()

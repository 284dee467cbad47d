"""`quantize_artifact`: the quantize verb end to end, every number measured in this process.

For each runtime we time its own fp32 model and its INT8 model (speed-up = same runtime's fp32 /
INT8) and also PyTorch eager fp32 (speed-up vs eager). OpenVINO's fp32 baseline is pinned to f32
math; its bf16 mode is reported as a separate row where the CPU supports it.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slimvision.data import TensorImageDataset, load_splits
from slimvision.errors import ArtifactError, ConfigError
from slimvision.io import atomic_directory, atomic_write_json, environment_record, load_artifact, read_json
from slimvision.measure import pinned_threads
from slimvision.quant.config import QuantConfig
from slimvision.quant.export import export_onnx
from slimvision.quant.onnx_int8 import layer_sensitivity, quantize_dynamic_int8, quantize_static_qdq
from slimvision.quant.runtimes import OpenVinoRuntime, OrtRuntime, Runtime, TorchRuntime, runtime_latency_ms, runtime_predictions

QUANT_FORMAT = "slimvision-quantized"
ONNX_FILE = "model.onnx"
PT2_FILE = "model.pt2"


@dataclasses.dataclass
class Row:
    """One runtime x precision measurement."""

    runtime: str
    precision: str
    accuracy: float
    agreement: float  # top-1 agreement with PyTorch eager fp32
    latency_ms: dict[str, float]
    size_bytes: int | None = None


def _measure(runtime: Runtime, precision: str, test: TensorImageDataset, reference: np.ndarray, input_size, repeats: int, size: int | None) -> Row:
    predictions = runtime_predictions(runtime, test.images)
    return Row(
        runtime.label, precision, float((predictions == test.labels.numpy()).mean()), float((predictions == reference).mean()),
        runtime_latency_ms(runtime, input_size, repeats=repeats), size,
    )


def _onnx_rows(backend: str, fp32: Path, int8: Path, config: QuantConfig, test, reference, input_size) -> tuple[Row, Row, list[Row]]:
    """(fp32 row, int8 row, extra rows) for onnxruntime or openvino on the given files."""
    size_fp32, size_int8 = fp32.stat().st_size, int8.stat().st_size
    if backend == "onnxruntime":
        base = _measure(OrtRuntime(fp32, config.threads, "onnxruntime"), "fp32", test, reference, input_size, config.repeats, size_fp32)
        quant = _measure(OrtRuntime(int8, config.threads, "onnxruntime"), "int8", test, reference, input_size, config.repeats, size_int8)
        return base, quant, []
    base = _measure(OpenVinoRuntime(fp32, config.threads, "f32", "openvino"), "fp32 (f32 hint)", test, reference, input_size, config.repeats, size_fp32)
    quant = _measure(OpenVinoRuntime(int8, config.threads, "f32", "openvino"), "int8 (same QDQ file)", test, reference, input_size, config.repeats, size_int8)
    extra = []
    if "BF16" in _openvino_capabilities():
        extra.append(_measure(OpenVinoRuntime(fp32, config.threads, "bf16", "openvino"), "bf16 (default on this CPU)", test, reference, input_size, config.repeats, size_fp32))
    return base, quant, extra


def _openvino_capabilities() -> list[str]:
    import openvino as ov

    return list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def _torchao_rows(model, train, config: QuantConfig, test, reference, input_size, val) -> tuple[Row, Row, Any]:
    from slimvision.quant import torchao_int8

    example = train.images[:32]
    calib = [train.images[:config.calib_samples][i : i + 32] for i in range(0, min(config.calib_samples, len(train)), 32)]
    if config.mode == "qat":
        converted = qat_finetune(model, train, val, config)
    else:
        converted = torchao_int8.ptq_pt2e(model, example, calib)
    compiled_int8 = torchao_int8.compile_frozen(converted, example)
    compiled_fp32 = torchao_int8.compile_frozen(model.eval(), example)
    base = _measure(TorchRuntime(compiled_fp32, "torch.compile (inductor)"), "fp32", test, reference, input_size, config.repeats, None)
    quant = _measure(TorchRuntime(compiled_int8, "torchao pt2e + inductor"), "int8", test, reference, input_size, config.repeats, None)
    return base, quant, converted


def qat_finetune(model, train, val, config: QuantConfig):
    """PT2E QAT: fake-quant model fine-tuned with the foundation Trainer, then converted."""
    import copy

    from slimvision.quant import torchao_int8
    from slimvision.train import Trainer, TrainConfig

    prepared = torchao_int8.prepare_qat(copy.deepcopy(model), train.images[:32])
    # A gentle fine-tune of an already trained model: AdamW at a small LR, no weight decay and no
    # augmentation (random shifts measurably hurt a few-epoch QAT run on small images).
    train_config = TrainConfig(
        epochs=config.qat_epochs, lr=config.qat_lr, optimizer="adamw", weight_decay=0.0, augment=False,
        warmup_epochs=0, seed=config.seed, batch_size=32, progress=True,
    )
    # the exported graph has a fixed batch dimension range (>= 2): drop a trailing batch of one
    usable = len(train) - (len(train) % train_config.batch_size == 1)
    Trainer(prepared, train.subset(usable), None, train_config).fit()
    return torchao_int8.convert_qat(prepared)


def quantize_artifact(
    model_dir: str | Path, config: QuantConfig, out_dir: str | Path, data: str | None = None, image_size: int | None = None, data_root: str | None = None
) -> dict[str, Any]:
    """Quantize the model in `model_dir` to INT8, measure every runtime involved, and save the INT8 artifact.

    Under `torchrun` (QAT): every rank runs the QAT fine-tune data-parallel; rank 0 alone measures,
    saves and returns the summary, other ranks return {}.
    """
    from slimvision.train import distributed

    with distributed.process_group():
        if not distributed.is_lead():
            if config.mode == "qat":
                artifact = load_artifact(model_dir)
                train, val, _ = load_splits(artifact.data_spec, data, image_size, data_root)
                qat_finetune(artifact.model.eval(), train, val, config)
            return {}
        return _quantize_artifact(model_dir, config, out_dir, data, image_size, data_root)


def _quantize_artifact(
    model_dir: str | Path, config: QuantConfig, out_dir: str | Path, data: str | None, image_size: int | None, data_root: str | None
) -> dict[str, Any]:
    artifact = load_artifact(model_dir)
    train, val, test = load_splits(artifact.data_spec, data, image_size, data_root)
    if config.calib_samples > len(train):
        raise ConfigError(f"--calib-samples {config.calib_samples} exceeds the {len(train)} training images")
    input_size = train.spec.input_size
    model = artifact.model.eval()
    calib_images = train.images[: config.calib_samples]
    with pinned_threads(config.threads) as threads, tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        eager = TorchRuntime(model, "torch eager")
        reference = runtime_predictions(eager, test.images)
        eager_row = _measure(eager, "fp32", test, reference, input_size, config.repeats, None)
        fp32_path = export_onnx(model, input_size, tmp / "fp32.onnx")
        backends = ["onnxruntime", "openvino", "torchao"] if config.backend == "auto" else [config.backend]
        candidates: dict[str, tuple[Row, Row, Path | Any]] = {}
        extra_rows: list[Row] = []
        int8_onnx = None
        kept_float: list[str] = []
        if any(b in ("onnxruntime", "openvino") for b in backends):
            int8_onnx = tmp / "int8.onnx"
            if config.mode == "dynamic":
                quantize_dynamic_int8(fp32_path, int8_onnx)
            else:
                if config.keep_float:
                    def accuracy_of(path: Path) -> float:
                        return float((runtime_predictions(OrtRuntime(path, config.threads), val.images) == val.labels.numpy()).mean())

                    ranking = layer_sensitivity(fp32_path, calib_images, accuracy_of, config.calib_method)
                    kept_float = [name for name, _ in ranking[: config.keep_float]]
                quantize_static_qdq(fp32_path, int8_onnx, calib_images, config.calib_method, exclude=kept_float)
        for backend in backends:
            if backend == "torchao":
                if config.mode == "dynamic":
                    continue  # dynamic INT8 is an ONNX path here
                base, quant, converted = _torchao_rows(model, train, config, test, reference, input_size, val)
                candidates[backend] = (base, quant, converted)
            elif config.mode != "qat":
                base, quant, extra = _onnx_rows(backend, fp32_path, int8_onnx, config, test, reference, input_size)
                candidates[backend] = (base, quant, int8_onnx)
                extra_rows += extra
        if not candidates:
            raise ConfigError(f"mode {config.mode!r} is not available on backend {config.backend!r}")
        accuracy_fp32 = eager_row.accuracy
        acceptable = {b: c for b, c in candidates.items() if accuracy_fp32 - c[1].accuracy <= config.accuracy_limit}
        pool = acceptable or candidates
        chosen = min(pool, key=lambda b: pool[b][1].latency_ms["32"])
        base, quant, payload = candidates[chosen]
        summary = {
            "backend": chosen,
            "mode": config.mode,
            "accuracy_fp32": accuracy_fp32,
            "accuracy_int8": quant.accuracy,
            "agreement_top1": quant.agreement,
            "latency_ms_fp32": base.latency_ms,
            "latency_ms_int8": quant.latency_ms,
            "speedup_bs1": base.latency_ms["1"] / quant.latency_ms["1"],
            "speedup_bs32": base.latency_ms["32"] / quant.latency_ms["32"],
            "speedup_vs_torch_eager_bs32": eager_row.latency_ms["32"] / quant.latency_ms["32"],
            "size_bytes_fp32": fp32_path.stat().st_size,
            "size_bytes_int8": None,
            "kept_float": kept_float,
            "rows": [dataclasses.asdict(r) for r in [eager_row] + [row for c in candidates.values() for row in c[:2]] + extra_rows],
            "accepted_backends": sorted(acceptable),
            "within_accuracy_limit": chosen in acceptable,
        }
        conditions = {
            "threads": threads,
            "latency": f"median of {config.repeats} runs after 5 warm-up, random inputs of {list(input_size)}, batch 1 and 32, same process",
            "accuracy": f"top-1 on the {test.spec.name} test split ({len(test)} images)",
            "speedup": "vs the same runtime's fp32 model (torchao: vs torch.compile fp32); speedup_vs_torch_eager_bs32 vs PyTorch eager fp32",
            "calibration": f"{config.calib_method} on the first {config.calib_samples} training images",
            "activations": "uint8 (asymmetric), weights int8 per channel (QDQ)" if chosen != "torchao" else "torchao X86InductorQuantizer default config",
        }
        with atomic_directory(out_dir) as target:
            if chosen == "torchao":
                exported = torch.export.export(payload, (train.images[:2],))
                torch.export.save(exported, str(target / PT2_FILE))
                summary["size_bytes_int8"] = (target / PT2_FILE).stat().st_size
            else:
                shutil.copyfile(payload, target / ONNX_FILE)
                summary["size_bytes_int8"] = (target / ONNX_FILE).stat().st_size
            atomic_write_json(target / "meta.json", {
                "format": QUANT_FORMAT, "version": 1, "backend": chosen, "file": PT2_FILE if chosen == "torchao" else ONNX_FILE,
                "data": train.spec.to_dict(), "metrics": {"accuracy": quant.accuracy}, "quantize": summary,
                "config": config.to_dict(), "conditions": conditions, "parent": str(model_dir), "environment": environment_record(),
            })
    return summary


def is_quantized_dir(path: str | Path) -> bool:
    meta = Path(path) / "meta.json"
    return meta.is_file() and read_json(meta).get("format") == QUANT_FORMAT


def load_quantized_runtime(path: str | Path, backend: str | None = None, threads: int | None = None) -> tuple[Runtime, dict[str, Any]]:
    """A runtime for a quantized artifact; `backend` overrides the recorded one (ONNX files run on both engines)."""
    path = Path(path)
    meta = read_json(path / "meta.json")
    backend = backend or meta["backend"]
    file = path / meta["file"]
    if not file.is_file():
        raise ArtifactError(f"missing file: {file}")
    if meta["file"] == PT2_FILE:
        if backend != "torchao":
            raise ConfigError(f"{path} holds a torchao export; it runs only with --backend torchao")
        from slimvision.quant import torchao_int8

        module = torch.export.load(str(file)).module()
        spec = meta["data"]
        example = torch.zeros(32, spec["in_chans"], spec["image_size"], spec["image_size"])
        return TorchRuntime(torchao_int8.compile_frozen(module, example), "torchao pt2e + inductor"), meta
    if backend == "onnxruntime":
        return OrtRuntime(file, threads), meta
    if backend == "openvino":
        return OpenVinoRuntime(file, threads, "f32"), meta
    raise ConfigError(f"backend {backend!r} cannot run {file.name}; use onnxruntime or openvino")


def evaluate_quantized(path: str | Path, backend: str | None = None, split: str = "test") -> dict[str, Any]:
    from slimvision.data import dataset_from_spec

    runtime, meta = load_quantized_runtime(path, backend)
    dataset = dataset_from_spec(meta["data"], split)
    predictions = runtime_predictions(runtime, dataset.images)
    return {
        "accuracy": float((predictions == dataset.labels.numpy()).mean()), "samples": len(dataset), "split": split, "data": dataset.spec.name,
        "backend": backend or meta["backend"], "recorded_accuracy": meta["metrics"]["accuracy"],
    }


def profile_quantized(path: str | Path, backend: str | None = None, threads: int | None = None, repeats: int = 20) -> dict[str, Any]:
    with pinned_threads(threads) as used:
        runtime, meta = load_quantized_runtime(path, backend, threads)
        input_size = (meta["data"]["in_chans"], meta["data"]["image_size"], meta["data"]["image_size"])
        latency = runtime_latency_ms(runtime, input_size, repeats=repeats)
    return {
        "model": str(path), "backend": backend or meta["backend"], "input_size": list(input_size), "threads": used,
        "latency_ms": {b: {"median": v} for b, v in latency.items()}, "size_bytes": (Path(path) / meta["file"]).stat().st_size,
    }

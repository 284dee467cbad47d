"""`quantize` (an nn.Module to INT8) and `quantize_artifact` (the CLI verb around it), every number measured in this process.

For each runtime we time its own fp32 model and its INT8 model (speed-up = same runtime's fp32 /
INT8) and also PyTorch eager fp32 (speed-up vs eager). OpenVINO's fp32 baseline is pinned to f32
math; its bf16 mode is reported as a separate row where the CPU supports it.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from slimvision.data import ImageDataset, TensorImageDataset, load_splits
from slimvision.errors import ArtifactError, ConfigError, SlimvisionError
from slimvision.io import atomic_directory, atomic_write_bytes, atomic_write_json, environment_record, read_json, resolve_model, source_meta
from slimvision.measure import pinned_threads
from slimvision.models.sources import ModelSource
from slimvision.quant import blocks, placement
from slimvision.quant.config import QuantConfig
from slimvision.quant.export import export_onnx
from slimvision.quant.onnx_int8 import layer_sensitivity, prepared_model, quantize_dynamic_int8, quantize_static_qdq
from slimvision.quant.runtimes import OpenVinoRuntime, OrtRuntime, Runtime, TorchRuntime, interleaved_latency_ms, runtime_latency_ms, runtime_predictions
from slimvision.quant.select import ACCURACY_SLACK, Candidate, SelectionConfig, select_deployment

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


def _measure(runtime: Runtime, precision: str, test: TensorImageDataset, reference: np.ndarray, size: int | None, timed: list) -> Row:
    """The row's accuracy and agreement; its latency is filled in by `_time_rows` with every other row's, interleaved."""
    predictions = runtime_predictions(runtime, test.images)
    row = Row(runtime.label, precision, float((predictions == test.labels.numpy()).mean()), float((predictions == reference).mean()), {}, size)
    timed.append((row, runtime))
    return row


def _time_rows(timed: list, input_size, repeats: int) -> None:
    """Fill every row's latency at batch 1 and 32, all runtimes timed in the same interleaved rounds."""
    # turns of at least 50 ms, as auto's rounds: a few sub-millisecond calls after another runtime time a cold start
    latencies = interleaved_latency_ms([runtime for _, runtime in timed], input_size, repeats=repeats, min_round_ms=SelectionConfig.round_ms)
    for (row, _), latency in zip(timed, latencies):
        row.latency_ms = latency


def _onnx_rows(backend: str, fp32: Path, int8: Path, config: QuantConfig, test, reference, timed: list) -> tuple[Row, Row, list[Row]]:
    """(fp32 row, int8 row, extra rows) for onnxruntime or openvino on the given files."""
    size_fp32, size_int8 = fp32.stat().st_size, int8.stat().st_size
    if backend == "onnxruntime":
        base = _measure(OrtRuntime(fp32, config.threads, "onnxruntime"), "fp32", test, reference, size_fp32, timed)
        quant = _measure(OrtRuntime(int8, config.threads, "onnxruntime"), "int8", test, reference, size_int8, timed)
        return base, quant, []
    base = _measure(OpenVinoRuntime(fp32, config.threads, "f32", "openvino"), "fp32 (f32 hint)", test, reference, size_fp32, timed)
    quant = _measure(OpenVinoRuntime(int8, config.threads, "f32", "openvino"), "int8 (same QDQ file)", test, reference, size_int8, timed)
    extra = []
    if "BF16" in _openvino_capabilities():
        extra.append(_measure(OpenVinoRuntime(fp32, config.threads, "bf16", "openvino"), "bf16 (default on this CPU)", test, reference, size_fp32, timed))
    return base, quant, extra


def _openvino_hint(precision: str) -> str:
    """OpenVINO's INFERENCE_PRECISION_HINT for a deployment: bf16 only when bf16 was measured and chosen, else f32."""
    return "bf16" if precision == "bf16" else "f32"


def _openvino_capabilities() -> list[str]:
    from slimvision.quant.runtimes import openvino_core

    return list(openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def _torchao_convert(model, calibration, images: torch.Tensor, config: QuantConfig):
    """The torchao INT8 module: PT2E PTQ calibrated on `images`, or QAT fine-tuned on the labelled `calibration` set."""
    from slimvision.quant import torchao_int8

    if config.mode == "qat":
        if not isinstance(calibration, TensorImageDataset):
            raise ConfigError("QAT fine-tunes the model: pass a labelled dataset (TensorImageDataset) as calibration data")
        return qat_finetune(model, calibration, None, config)
    calib = [images[: config.calib_samples][i : i + 32] for i in range(0, min(config.calib_samples, len(images)), 32)]
    return torchao_int8.ptq_pt2e(model, images[:32], calib)


def _torchao_rows(model, converted, example: torch.Tensor, test, reference, timed: list) -> tuple[Row, Row]:
    from slimvision.quant import torchao_int8

    compiled_int8 = torchao_int8.compile_frozen(converted, example)
    compiled_fp32 = torchao_int8.compile_frozen(model.eval(), example)
    base = _measure(TorchRuntime(compiled_fp32, "torch.compile (inductor)"), "fp32", test, reference, None, timed)
    quant = _measure(TorchRuntime(compiled_int8, "torchao pt2e + inductor"), "int8", test, reference, None, timed)
    return base, quant


def qat_finetune(model, train, val, config: QuantConfig):
    """PT2E QAT: fake-quant model fine-tuned with the foundation Trainer, then converted."""
    from slimvision.quant import torchao_int8

    return torchao_int8.convert_qat(qat_train(model, train, config))


def qat_train(model, train, config: QuantConfig):
    """The fake-quantized graph of a copy of `model` after QAT fine-tuning on `train` (not yet converted to INT8).

    Under torchrun every rank runs it; the Trainer's global batch statistics cover the graph's
    BatchNorm calls and activation observers, so N processes end where one process does.
    """
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
    return prepared


def calibration_images(data: Any, limit: int | None = None) -> torch.Tensor:
    """All images of `data`: a (N, C, H, W) tensor, a TensorImageDataset, or an iterable of batches (images or (images, labels))."""
    if isinstance(data, torch.Tensor):
        images = data
    elif isinstance(data, ImageDataset):
        images = data.images[: limit if limit is not None else len(data)]  # a streamed dataset decodes only what calibration uses
    else:
        try:
            batches = [batch[0] if isinstance(batch, (tuple, list)) else batch for batch in data]
        except TypeError:
            raise ConfigError(f"calibration data must be an image tensor, a dataset or an iterable of batches, got {type(data).__name__}") from None
        if not batches or not all(isinstance(b, torch.Tensor) for b in batches):
            raise ConfigError("calibration data yielded no image tensors")
        images = torch.cat(batches)
    if images.ndim != 4:
        raise ConfigError(f"calibration images must be (N, C, H, W), got shape {tuple(images.shape)}")
    return images.float().cpu().contiguous()


@dataclasses.dataclass
class QuantResult:
    """An INT8 model from `quantize`: QDQ ONNX bytes (onnxruntime / OpenVINO) or a torchao module, and what was measured."""

    backend: str
    mode: str
    input_size: tuple[int, ...]
    summary: dict[str, Any]
    conditions: dict[str, Any]
    onnx_int8: bytes | None = None
    torchao_module: Any = None
    example: torch.Tensor | None = None
    precision: str = "int8"  # `auto` may find the fp32 model (fp32 or bf16 math) the best deployment
    threads: int | None = None  # the thread count `auto` chose (None: not chosen; runtimes use the caller's count)

    @property
    def accuracy(self) -> float | None:
        """Top-1 of the saved deployment on the evaluation set (None without one)."""
        return self.summary.get("accuracy", self.summary.get("accuracy_int8"))

    def runtime(self, threads: int | None = None, backend: str | None = None) -> Runtime:
        """A runtime that runs the INT8 model: `.run(numpy batch) -> logits` (ONNX files also run on the other ONNX engine).

        `threads` defaults to the count `auto` chose, if it chose one.
        """
        threads = threads if threads is not None else self.threads
        if self.torchao_module is not None:
            from slimvision.quant import torchao_int8

            return TorchRuntime(torchao_int8.compile_frozen(self.torchao_module, self.example), "torchao pt2e + inductor")
        with tempfile.TemporaryDirectory() as tmp:  # the engines compile the file; it is not needed afterwards
            path = Path(tmp) / ONNX_FILE
            path.write_bytes(self.onnx_int8)
            if (backend or self.backend) == "openvino":
                return OpenVinoRuntime(path, threads, _openvino_hint(self.precision), "openvino")
            return OrtRuntime(path, threads, "onnxruntime")

    def save(self, out_dir: str | Path, data_spec: dict[str, Any] | None = None, config: QuantConfig | None = None, parent: str | None = None) -> Path:
        """Write the INT8 artifact directory (model file + meta.json) atomically."""
        with atomic_directory(out_dir) as target:
            if self.torchao_module is not None:
                exported = torch.export.export(self.torchao_module, (self.example[:2],))
                torch.export.save(exported, str(target / PT2_FILE))
                self.summary["size_bytes_int8"] = (target / PT2_FILE).stat().st_size
            else:
                atomic_write_bytes(target / ONNX_FILE, self.onnx_int8)
                self.summary["size_bytes_int8"] = len(self.onnx_int8)
            atomic_write_json(target / "meta.json", {
                "format": QUANT_FORMAT, "version": 1, "backend": self.backend, "precision": self.precision, "file": PT2_FILE if self.torchao_module is not None else ONNX_FILE,
                "threads": self.threads, "input_size": list(self.input_size), "data": data_spec, "metrics": {"accuracy": self.accuracy}, "quantize": self.summary,
                "config": config.to_dict() if config else None, "conditions": self.conditions, "parent": parent, "environment": environment_record(),
            })
        return Path(out_dir)


def quantize(
    model: nn.Module, calibration: Any, config: QuantConfig | None = None,
    evaluation: TensorImageDataset | None = None, validation: TensorImageDataset | None = None,
) -> QuantResult:
    """INT8 version of `model` calibrated on `calibration` (images, dataset or batches); the quantize verb's one code path.

    With `evaluation` (a labelled dataset) every runtime involved is timed and scored against
    PyTorch eager fp32 in this process, and `backend="auto"` keeps the fastest within the accuracy
    limit; `validation` is needed to rank layers for `keep_float`. `model` itself is not modified.
    """
    config = config or QuantConfig()
    images = calibration_images(calibration, config.calib_samples)
    if config.calib_samples > len(images):
        raise ConfigError(f"--calib-samples {config.calib_samples} exceeds the {len(images)} calibration images")
    if config.backend == "auto" and evaluation is None:
        raise ConfigError("backend 'auto' picks the fastest runtime within the accuracy limit: pass labelled evaluation data")
    if config.block_search and evaluation is None:
        raise ConfigError("block_search measures accuracy with every block in float or INT8: pass labelled evaluation data")
    if config.keep_float and validation is None:
        raise ConfigError("keep_float ranks layers by their accuracy cost: pass labelled validation data")
    input_size = tuple(images.shape[1:])
    model = copy.deepcopy(model).cpu().eval()
    calib_images = images[: config.calib_samples]
    started = time.perf_counter()
    with pinned_threads(config.threads) as threads, tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        fp32_path = export_onnx(model, input_size, tmp / "fp32.onnx")
        exported = time.perf_counter()
        backends = _auto_backends(config) if config.backend == "auto" else [config.backend]
        int8_onnx = None
        kept_float: list[str] = []
        placement_decisions: list = []
        if config.mode != "qat" and any(b in ("onnxruntime", "openvino") for b in backends):
            int8_onnx = tmp / "int8.onnx"
            if config.mode == "dynamic":
                quantize_dynamic_int8(fp32_path, int8_onnx)
            else:
                if config.keep_float:
                    def accuracy_of(path: Path) -> float:
                        return float((runtime_predictions(OrtRuntime(path, config.threads), validation.images) == validation.labels.numpy()).mean())

                    ranking = layer_sensitivity(fp32_path, calib_images, accuracy_of, config.calib_method)
                    kept_float = [name for name, _ in ranking[: config.keep_float]]
                cache = tmp / "calibration.json" if config.block_search else None
                quantize_static_qdq(fp32_path, int8_onnx, calib_images, config.calib_method, exclude=kept_float, decisions=placement_decisions, calibration_cache=cache)
        usable = [b for b in backends if (b == "torchao" and config.mode != "dynamic") or (b != "torchao" and config.mode != "qat")]
        if not usable:
            raise ConfigError(f"mode {config.mode!r} is not available on backend {config.backend!r}")
        # the INT8 file each ONNX engine runs: the same placement file, unless the block search finds another per engine
        int8_files = {b: int8_onnx for b in usable if b != "torchao"}
        block_records: dict[str, Any] = {}
        if config.block_search:
            found = blocks.find_blocks(prepared_model(fp32_path), config.max_blocks)  # the same graph for every engine
            for backend in int8_files:
                int8_files[backend], block_records[backend] = _search_blocks(backend, found, fp32_path, int8_onnx, calib_images, kept_float, config, evaluation, tmp)
        converted = _torchao_convert(model, calibration, images, config) if "torchao" in usable else None
        summary: dict[str, Any] = {"backend": usable[0], "mode": config.mode, "size_bytes_fp32": fp32_path.stat().st_size, "size_bytes_int8": None, "kept_float": kept_float}
        if placement_decisions:
            summary["qdq_placement"] = placement.summary(placement_decisions)
        if block_records:
            summary["block_search"] = block_records
        conditions: dict[str, Any] = {"threads": threads, "calibration": f"{config.calib_method} on the first {config.calib_samples} calibration images"}
        conditions["seconds"] = {"export": exported - started, "quantize_and_calibrate": time.perf_counter() - exported}
        if config.backend == "auto":
            summary, conditions = _auto_deployment(model, usable, fp32_path, int8_files, converted, images[:32], config, evaluation, summary, conditions)
        elif evaluation is not None:
            summary, conditions = _measure_backends(model, usable, fp32_path, int8_files, converted, images[:32], config, evaluation, summary, conditions)
        chosen, precision = summary["backend"], summary.get("precision", "int8")
        if precision != "int8":
            conditions["activations"] = f"none: the fp32 model ({precision} math) was the fastest accurate deployment"
        else:
            conditions["activations"] = ("uint8 (asymmetric); int8 (symmetric) where a transformer linear or Q @ K^T reads a tensor that goes negative; "
                                         "weights int8 per channel (QDQ)") if chosen != "torchao" else "torchao X86InductorQuantizer default config"
        onnx_file = fp32_path if precision != "int8" else int8_files.get(chosen)
        return QuantResult(
            chosen, config.mode, input_size, summary, conditions,
            onnx_int8=onnx_file.read_bytes() if chosen != "torchao" else None,
            torchao_module=converted if chosen == "torchao" else None, example=images[:32], precision=precision,
            threads=summary.get("threads"),  # set by auto only
        )


def _search_blocks(
    backend: str, found: list, fp32_path: Path, int8_onnx: Path, calib_images, kept_float, config: QuantConfig, test: TensorImageDataset, tmp: Path,
):
    """(the INT8 file for `backend`, its search record): of the blocks `found`, those kept float where INT8 does not pay on that engine or costs accuracy."""
    start = time.perf_counter()
    files: dict[frozenset, Path] = {frozenset(): int8_onnx}

    def file_for(float_blocks: list) -> Path:
        key = frozenset(b.name for b in float_blocks)
        if key not in files:
            files[key] = tmp / f"{backend}_blocks_{len(files)}.onnx"
            # exactly the blocks' nodes go float, reading the INT8 blocks around them dequantized (a block boundary)
            quantize_static_qdq(fp32_path, files[key], calib_images, config.calib_method, exclude=kept_float,
                                calibration_cache=tmp / "calibration.json", float_blocks=[node for b in float_blocks for node in b.nodes])
        return files[key]

    def on_onnxruntime(float_blocks: list) -> Runtime:
        return OrtRuntime(file_for(float_blocks), config.threads, "onnxruntime")

    def on_openvino(float_blocks: list) -> Runtime:
        return OpenVinoRuntime(file_for(float_blocks), config.threads, "f32", "openvino")

    # the fp32 reference as in `auto`: the export on onnxruntime, which export_onnx checked against PyTorch
    reference = runtime_predictions(OrtRuntime(fp32_path, config.threads, "onnxruntime"), test.images)
    search = blocks.BlockSearchConfig(batch_size=config.batch_size, budget_s=config.block_budget_s)
    result = blocks.search_blocks(
        found, on_openvino if backend == "openvino" else on_onnxruntime, _auto_predictor(test.images, config.batch_size), test.labels.numpy(),
        reference, config.accuracy_limit, tuple(calib_images.shape[1:]), search,
        # the ranking only orders the trials: onnxruntime computes the file's ONNX semantics without a compile per file
        rank_build=on_onnxruntime,
    )
    record = {
        "blocks": len(found),
        "float_blocks": [b.name for b in result.float_blocks],
        "decisions": blocks.decision_table(result.decisions),
        "all_int8_ms": result.start_ms,
        "searched_ms": result.final_ms,
        "gain": result.final_gain,
        "noise": result.final_noise,
        "result": result.final_reason or "every block stays INT8: nothing to compare",
        "seconds": time.perf_counter() - start,
        "budget_s": config.block_budget_s,
        "conditions": (
            f"{backend}, batch {config.batch_size}, random inputs; per block the current model and the one with that block in float, "
            f"{search.min_rounds}-{search.rounds} interleaved A/B rounds (order swapped each round) of at least {search.repeats} calls; "
            f"float kept only if faster by more than max(noise, {100 * search.min_gain:.0f}%) with top-1 within the limit, "
            f"or if it brings an INT8 model outside the limit back up; accuracy on the {test.spec.name} test split ({len(test)} images)"
        ),
    }
    return files[frozenset(b.name for b in result.float_blocks)], record


def _auto_backends(config: QuantConfig) -> list[str]:
    """Runtimes `auto` considers: both ONNX engines, and torchao when asked for (or when QAT needs it)."""
    return ["onnxruntime", "openvino"] + (["torchao"] if config.auto_torchao or config.mode == "qat" else [])


def _auto_candidates(model, backends, fp32_path, int8_files, converted, example, config: QuantConfig, threads_used: int = 1) -> list[Candidate]:
    """fp32 deployments of every runtime first, then the INT8 ones (only those the mode produced; `int8_files`: engine -> INT8 ONNX file).

    With more than one thread, every ONNX deployment also competes on a single thread: the thread count is a
    budget, and at batch 1 small networks run faster on one thread (OpenVINO bf16, shufflenet_v2 at 32 px:
    0.165 ms on one thread; 0.21 ms on two, and 0.40 ms in a slow two-thread state it falls into for seconds
    at a time, which made a short selection pick onnxruntime).
    """
    int8_files = int8_files or {}

    def onnx_candidates(threads: int | None) -> list[Candidate]:
        count = threads or config.threads
        found = [Candidate("onnxruntime", "fp32", lambda: OrtRuntime(fp32_path, count, "onnxruntime"), threads)]
        found.append(Candidate("openvino", "fp32", lambda: OpenVinoRuntime(fp32_path, count, "f32", "openvino"), threads))
        if "BF16" in _openvino_capabilities():
            found.append(Candidate("openvino", "bf16", lambda: OpenVinoRuntime(fp32_path, count, "bf16", "openvino"), threads))
        if int8_files.get("onnxruntime") is not None:
            found.append(Candidate("onnxruntime", "int8", lambda: OrtRuntime(int8_files["onnxruntime"], count, "onnxruntime"), threads))
        if int8_files.get("openvino") is not None:
            found.append(Candidate("openvino", "int8", lambda: OpenVinoRuntime(int8_files["openvino"], count, "f32", "openvino"), threads))
        return found

    candidates = onnx_candidates(None) + (onnx_candidates(1) if threads_used > 1 else [])
    if converted is not None:
        from slimvision.quant import torchao_int8

        candidates.append(Candidate("torchao", "int8", lambda: TorchRuntime(torchao_int8.compile_frozen(converted, example), "torchao pt2e + inductor")))
    return [c for c in candidates if c.precision != "int8" or c.backend in backends]  # fp32 always competes


def _auto_deployment(model, backends, fp32_path, int8_files, converted, example, config: QuantConfig, test: TensorImageDataset, summary, conditions):
    """(summary, conditions) naming the fastest accurate deployment, fp32 or INT8, with every candidate's verdict."""
    start = time.perf_counter()
    # The fp32 reference runs on onnxruntime: export_onnx has checked that file against PyTorch (max abs
    # difference within 1e-3 of the outputs' scale), and on a loaded 2-core machine PyTorch eager took 78 of auto's 129 s on resnet20.
    reference = runtime_predictions(OrtRuntime(fp32_path, config.threads, "onnxruntime"), test.images)
    phases = {"reference_s": time.perf_counter() - start}
    selection = SelectionConfig(batch_size=config.batch_size)
    winner, verdicts, _ = select_deployment(
        _auto_candidates(model, backends, fp32_path, int8_files, converted, example, config, conditions["threads"]),
        _auto_predictor(test.images, config.batch_size), test.labels.numpy(), reference, config.accuracy_limit,
        tuple(example.shape[1:]), selection, phases=phases,
    )
    if winner is None:
        reasons = "; ".join(f"{v.name}: {v.reason}" for v in verdicts)
        raise SlimvisionError(f"auto found no deployment that runs this model: {reasons}")
    accuracy_fp32 = float((reference == test.labels.numpy()).mean())
    speedup, basis = _speedup_vs_fastest_fp32(winner, verdicts)
    summary = {
        **summary,
        "backend": winner.backend,
        "precision": winner.precision,
        "deployment": winner.name,
        "threads": winner.threads or conditions["threads"],
        "accuracy_fp32": accuracy_fp32,
        "accuracy": winner.accuracy,
        "accuracy_int8": winner.accuracy if winner.precision == "int8" else None,
        "agreement_top1": winner.agreement,
        "batch_size": config.batch_size,
        "latency_ms": winner.latency_ms,
        "speedup_vs_fastest_fp32": speedup,
        "speedup_basis": basis,
        "candidates": [dataclasses.asdict(v) for v in verdicts],
        "accepted_backends": sorted({v.name for v in verdicts if v.status not in ("inaccurate", "failed")}),
        "within_accuracy_limit": True,
        "selection_seconds": time.perf_counter() - start,
        "selection_phases_seconds": phases,  # PyTorch reference predictions, build, screening, accuracy, rounds
    }
    conditions = {
        **conditions,
        "latency": (
            f"batch {config.batch_size}, random inputs of {list(example.shape[1:])}, same process: {selection.screen_rounds} interleaved screening passes (order rotated and reversed every other pass) "
            f"(fastest kept) drop candidates over {selection.prune_ratio}x the fastest accurate one, then {selection.min_rounds}-{selection.rounds} interleaved rounds "
            f"(early stop once the fastest won every round against every other) of "
            f"at least {selection.repeats} calls, median of medians; "
            f"INT8 must beat the fastest fp32 by {100 * selection.min_gain:.0f}%"
            + (f"; every ONNX deployment on {conditions['threads']} threads and on 1 thread" if conditions["threads"] > 1 else "")
        ),
        "accuracy": (
            f"top-1 on the {test.spec.name} test split ({len(test)} images); limit {config.accuracy_limit} below fp32 "
            "(the fp32 ONNX export on onnxruntime, checked against PyTorch at export)"
        ),
    }
    return summary, conditions


def _auto_predictor(images: torch.Tensor, batch_size: int):
    """Predictions for `auto`'s accuracy check: OpenVINO at the timed batch size (one static shape per batch
    size is compiled, and the deployed shape is the one checked); the other engines, whose result does not
    depend on the batch size, in batches of at least 64 (at batch 1, 360 single calls took a minute under load)."""

    def predict(runtime: Runtime) -> np.ndarray:
        return runtime_predictions(runtime, images, batch_size if isinstance(runtime, OpenVinoRuntime) else max(batch_size, 64))

    return predict


def _speedup_vs_fastest_fp32(winner, verdicts) -> tuple[float | None, str]:
    """(fastest fp32 latency / winner latency, what it compares): interleaved rounds when both ran them, else the screening round."""
    fp32 = [v for v in verdicts if v.precision != "int8" and v.screen_ms is not None]
    if not fp32:
        return None, "no fp32 runtime could run the model"
    if winner.precision != "int8":
        return 1.0, "the chosen deployment is fp32"
    timed = [v for v in fp32 if v.round_ms]
    if timed:
        best = min(timed, key=lambda v: v.latency_ms)
        return best.latency_ms / winner.latency_ms, f"vs {best.name}, interleaved rounds"
    best = min(fp32, key=lambda v: v.screen_ms)
    return best.screen_ms / winner.screen_ms, f"vs {best.name}, screening round (every fp32 runtime was pruned there)"


def _measure_backends(model, backends, fp32_path, int8_files, converted, example, config: QuantConfig, test: TensorImageDataset, summary, conditions):
    """(summary, conditions) with every backend timed and scored on `test`, and the chosen one named in `summary`."""
    input_size = tuple(example.shape[1:])
    eager = TorchRuntime(model, "torch eager")
    reference = runtime_predictions(eager, test.images)
    timed: list = []
    eager_row = _measure(eager, "fp32", test, reference, None, timed)
    candidates: dict[str, tuple[Row, Row]] = {}
    extra_rows: list[Row] = []
    for backend in backends:
        if backend == "torchao":
            candidates[backend] = _torchao_rows(model, converted, example, test, reference, timed)
        else:
            base, quant, extra = _onnx_rows(backend, fp32_path, (int8_files or {}).get(backend), config, test, reference, timed)
            candidates[backend] = (base, quant)
            extra_rows += extra
    _time_rows(timed, input_size, config.repeats)
    accuracy_fp32 = eager_row.accuracy
    acceptable = {b: c for b, c in candidates.items() if accuracy_fp32 - c[1].accuracy <= config.accuracy_limit + ACCURACY_SLACK}
    pool = acceptable or candidates
    chosen = min(pool, key=lambda b: pool[b][1].latency_ms["32"])
    base, quant = candidates[chosen]
    summary = {
        **summary,
        "backend": chosen,
        "accuracy_fp32": accuracy_fp32,
        "accuracy_int8": quant.accuracy,
        "agreement_top1": quant.agreement,
        "latency_ms_fp32": base.latency_ms,
        "latency_ms_int8": quant.latency_ms,
        "speedup_bs1": base.latency_ms["1"] / quant.latency_ms["1"],
        "speedup_bs32": base.latency_ms["32"] / quant.latency_ms["32"],
        "speedup_vs_torch_eager_bs32": eager_row.latency_ms["32"] / quant.latency_ms["32"],
        "rows": [dataclasses.asdict(r) for r in [eager_row] + [row for c in candidates.values() for row in c] + extra_rows],
        "accepted_backends": sorted(acceptable),
        "within_accuracy_limit": chosen in acceptable,
    }
    conditions = {
        **conditions,
        "latency": (
            f"every runtime timed in the same 5 interleaved rounds (order rotated and reversed every other round) of {max(1, config.repeats // 5)} runs after 5 warm-up, "
            f"median of the round medians; random inputs of {list(input_size)}, batch 1 and 32, same process"
        ),
        "accuracy": f"top-1 on the {test.spec.name} test split ({len(test)} images)",
        "speedup": "vs the same runtime's fp32 model (torchao: vs torch.compile fp32); speedup_vs_torch_eager_bs32 vs PyTorch eager fp32",
    }
    return summary, conditions


def quantize_artifact(
    model_dir: str | Path | ModelSource, config: QuantConfig, out_dir: str | Path, data: str | None = None, image_size: int | None = None, data_root: str | None = None
) -> dict[str, Any]:
    """Quantize a model directory (or any model source, given `data`) to INT8, measure every runtime involved, and save the INT8 artifact.

    Under `torchrun` (QAT): every rank runs the QAT fine-tune data-parallel; rank 0 alone measures,
    saves and returns the summary, other ranks return {}.
    """
    from slimvision.train import distributed

    with distributed.process_group():
        meta = source_meta(model_dir)
        train, val, test = load_splits(meta.get("data"), data, image_size, data_root)
        model, _, _ = resolve_model(model_dir, num_classes=train.spec.num_classes, in_chans=train.spec.in_chans)
        if not distributed.is_lead():
            if config.mode == "qat":
                qat_finetune(model.eval(), train, val, config)
            return {}
        if config.calib_samples > len(train):
            raise ConfigError(f"--calib-samples {config.calib_samples} exceeds the {len(train)} training images")
        result = quantize(model, train, config, evaluation=test, validation=val)
        result.save(out_dir, train.spec.to_dict(), config, str(model_dir))
        return result.summary


def recorded_input_size(meta: dict[str, Any]) -> tuple[int, ...]:
    """(C, H, W) a quantized artifact takes (artifacts written before `input_size` was recorded have only the data spec)."""
    if meta.get("input_size"):
        return tuple(meta["input_size"])
    return (meta["data"]["in_chans"], meta["data"]["image_size"], meta["data"]["image_size"])


def is_quantized_dir(path: str | Path) -> bool:
    meta = Path(path) / "meta.json"
    return meta.is_file() and read_json(meta).get("format") == QUANT_FORMAT


def load_quantized_runtime(path: str | Path, backend: str | None = None, threads: int | None = None) -> tuple[Runtime, dict[str, Any]]:
    """A runtime for a quantized artifact; `backend` overrides the recorded one (ONNX files run on both engines).

    `threads` defaults to the count `auto` chose for the artifact, if it chose one.
    """
    path = Path(path)
    meta = read_json(path / "meta.json")
    threads = threads if threads is not None else meta.get("threads")
    backend = backend or meta["backend"]
    file = path / meta["file"]
    if not file.is_file():
        raise ArtifactError(f"missing file: {file}")
    if meta["file"] == PT2_FILE:
        if backend != "torchao":
            raise ConfigError(f"{path} holds a torchao export; it runs only with --backend torchao")
        from slimvision.quant import torchao_int8

        module = torch.export.load(str(file)).module()
        example = torch.zeros(32, *recorded_input_size(meta))
        return TorchRuntime(torchao_int8.compile_frozen(module, example), "torchao pt2e + inductor"), meta
    if backend == "onnxruntime":
        return OrtRuntime(file, threads), meta
    if backend == "openvino":
        return OpenVinoRuntime(file, threads, _openvino_hint(meta.get("precision", "int8"))), meta
    raise ConfigError(f"backend {backend!r} cannot run {file.name}; use onnxruntime or openvino")


def evaluate_quantized(path: str | Path, backend: str | None = None, split: str = "test") -> dict[str, Any]:
    from slimvision.data import dataset_from_spec

    runtime, meta = load_quantized_runtime(path, backend)
    if not meta.get("data"):
        raise ConfigError(f"{path} records no dataset (it was quantized from the Python API without one)")
    dataset = dataset_from_spec(meta["data"], split)
    predictions = runtime_predictions(runtime, dataset.images)
    return {
        "accuracy": float((predictions == dataset.labels.numpy()).mean()), "samples": len(dataset), "split": split, "data": dataset.spec.name,
        "backend": backend or meta["backend"], "recorded_accuracy": meta["metrics"]["accuracy"],
    }


def profile_quantized(path: str | Path, backend: str | None = None, threads: int | None = None, repeats: int = 20) -> dict[str, Any]:
    """Latency and size of a quantized artifact, on `threads` (default: the count `auto` chose for it, if any), which
    pin torch (a torchao runtime) and the ONNX engines alike."""
    threads = threads or read_json(Path(path) / "meta.json").get("threads")
    with pinned_threads(threads) as used:
        runtime, meta = load_quantized_runtime(path, backend, used)
        input_size = recorded_input_size(meta)
        latency = runtime_latency_ms(runtime, input_size, repeats=repeats)
    return {
        "model": str(path), "backend": backend or meta["backend"], "input_size": list(input_size), "threads": used,
        "latency_ms": {b: {"median": v} for b, v in latency.items()}, "size_bytes": (Path(path) / meta["file"]).stat().st_size,
    }

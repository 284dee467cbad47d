"""ExCP checkpoint compression (Li et al., ICML 2024): residuals, weight-momentum joint shrinking,
non-uniform quantization, entropy-coded packing — streamed one checkpoint at a time.

The rule is the official ExCP code's (`rule="official"`, its defaults), per parameter tensor, checkpoint k
against the reconstruction of k-1:
- weight residual r = W_k - W^_{k-1}; keep r_i when |r_i| > f * median|r| with one scalar per tensor
  f = min(2.5, alpha / sqrt(mean(v))), v = Adam's second moment, the lower median (as torch.median),
  alpha = 5e-5. Without v (SGD, EMA weights, plain state dicts) f = 2.5, the cap.
- first moment m: keep m_i when |m_i| > beta * mean|m| (beta = 2) AND r_i was kept; v is kept exactly
  where m is kept; elsewhere both restore as 0.
- every optimizer-tracked tensor follows the rule, 1-D ones (biases, norm scales) included; kept values
  of r, m and v get a per-tensor 1-D k-means (run to convergence) with 2^bits - 1 levels, fp16 codebook,
  plus the exact zero of the mask.
- the first checkpoint is the full-precision reference the official code compresses against, so its
  weights are stored losslessly (its moments follow the rule); `base_bits` quantizes them instead (a
  deviation that buys ratio).
Integer tensors and non-parameter float buffers (BN statistics) are stored losslessly (XOR residual +
zstd). `lossless=True` stores every tensor that way and restores bit-exactly. Residuals are taken against
the previous *reconstruction* (the official code diffs two original checkpoints), so quantization errors
do not pile up along a chain. The project's earlier rule (per-element v scaling, an RMS cap) was measured
against this one and dropped: benchmarks/results/ckpt.md.
"""

from __future__ import annotations

import io
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from slimvision.ckpt.codec import kmeans_1d, pack_bits, pack_mask, unpack_bits, unpack_mask, xor_residual
from slimvision.ckpt.container import ArchiveWriter, read_records
from slimvision.ckpt.verify import (
    DTYPES, TensorEntry, layout_digest, numel, parse_checkpoint_record, parse_entry, parse_run_record, tensor_digest, tensor_place,
)
from slimvision.errors import ArtifactError, ConfigError
from slimvision.io import atomic_directory, atomic_write_bytes, load_state_file, save_safetensors_atomic
from slimvision.io.paths import guard_output, join_inside
from slimvision.progress import progress_bar

FORMAT = "slimvision-excp"
RUN_FILES = ("run.json", "arch.json", "meta.json")
STATE_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
SINGLE_FILE = "state.safetensors"  # the tensor file of a checkpoint that was one state-dict file
CHECKPOINT_ROOT = "checkpoints"


RULES = ("official",)
OFFICIAL_ALPHA, OFFICIAL_BETA = 5e-5, 2.0
OFFICIAL_SCALE_CAP = 2.5  # f = min(2.5, alpha / sqrt(mean v))


@dataclass
class CompressConfig:
    """Pruning rule, thresholds and bit widths (defaults: the official ExCP code's)."""

    rule: str = "official"
    bits: int = 4
    lossless: bool = False
    alpha: float = OFFICIAL_ALPHA  # weight threshold: f = min(2.5, alpha / sqrt(mean v)) times the lower median |residual|
    beta: float = OFFICIAL_BETA  # momentum threshold, in units of mean |momentum|
    base_bits: int | None = None  # bits of the first checkpoint's weights; None = lossless (the official reference)

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ConfigError(f"unknown ExCP rule {self.rule!r}; use one of {', '.join(RULES)}")
        if not 1 <= self.bits <= 8 or not (self.base_bits is None or 1 <= self.base_bits <= 8):
            raise ConfigError(f"--bits and --base-bits must be in 1..8, got {self.bits} and {self.base_bits}")
        if self.alpha < 0 or self.beta < 0:
            raise ConfigError("alpha and beta must be >= 0")


def lower_median(values: np.ndarray) -> float:
    """The lower of the two middle values for an even count (torch.median's convention), 0 for no values."""
    if values.size == 0:
        return 0.0
    middle = (values.size - 1) // 2
    return float(np.partition(values.reshape(-1), middle)[middle])


def official_weight_mask(residual: np.ndarray, second_moment: np.ndarray | None, alpha: float) -> tuple[np.ndarray, float]:
    """(keep mask, f) of the official rule: |r| > f * lower_median(|r|), f = min(2.5, alpha / sqrt(mean v))."""
    scale = OFFICIAL_SCALE_CAP
    if second_moment is not None:
        root_mean = float(np.sqrt(np.mean(second_moment, dtype=np.float64)))
        scale = min(OFFICIAL_SCALE_CAP, alpha / root_mean) if root_mean > 0 else OFFICIAL_SCALE_CAP
    magnitude = np.abs(residual)
    return magnitude > scale * lower_median(magnitude), scale


def momentum_mask(momentum: np.ndarray, weight_kept: np.ndarray, beta: float) -> np.ndarray:
    """Keep m_i when |m_i| > beta * mean|m| and the weight residual at i was kept."""
    magnitude = np.abs(momentum)
    return (magnitude > beta * magnitude.mean()) & weight_kept


@dataclass
class CompressResult:
    path: Path
    n_checkpoints: int
    raw_bytes: int
    compressed_bytes: int
    zstd_bytes: int  # the same files compressed with plain zstd, for comparison
    seconds: float
    tensors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.raw_bytes / max(1, self.compressed_bytes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(path=str(self.path), ratio=self.ratio, zstd_ratio=self.raw_bytes / max(1, self.zstd_bytes))
        data.pop("tensors")
        return data


# --- discovering checkpoints ---------------------------------------------------------

@dataclass
class SourceCheckpoint:
    name: str
    directory: Path | None  # a checkpoint directory (all its state files + json), or None for a single file
    files: list[Path]


def discover(source: str | Path) -> tuple[list[SourceCheckpoint], dict[str, str]]:
    """(checkpoints oldest first, run-level JSON files) of a training run, a checkpoints dir or a dir of state files."""
    from slimvision.train.checkpoint import checkpoint_dirs

    source = Path(source)
    if not source.exists():
        raise ArtifactError(f"not found: {source}")
    run_files = {n: (source / n).read_text() for n in RUN_FILES if (source / n).is_file()}
    dirs = checkpoint_dirs(source) or ([source] if (source / "state.json").is_file() else [])
    if not dirs and source.is_dir():
        dirs = sorted(p for p in source.iterdir() if p.is_dir() and any(f.suffix in STATE_SUFFIXES for f in p.iterdir()))
    if dirs:
        return [SourceCheckpoint(d.name, d, sorted(f for f in d.iterdir() if f.suffix in STATE_SUFFIXES or f.suffix == ".json")) for d in dirs], run_files
    files = sorted(p for p in source.iterdir() if p.suffix in STATE_SUFFIXES) if source.is_dir() else [source]
    if not files:
        raise ArtifactError(f"{source}: no checkpoints found (expected checkpoints/epoch_*/ or *.safetensors / *.pt files)")
    return [SourceCheckpoint(f.stem, None, [f]) for f in files], run_files


def _load_tensors(file: Path) -> dict[str, torch.Tensor]:
    state = load_state_file(file)
    bad = [k for k, v in state.items() if not torch.is_tensor(v)]
    if bad:
        raise ArtifactError(f"{file}: entries that are not tensors ({bad[:3]}); only flat state dicts are supported")
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


# --- per-tensor encoding ---------------------------------------------------------------

def _quantize(values: np.ndarray, bits: int) -> tuple[bytes, bytes, np.ndarray]:
    """(fp16 codebook bytes, packed indices, dequantized values)."""
    codebook, index = kmeans_1d(values, 2**bits - 1)
    codebook16 = codebook.astype(np.float16)
    decoded = codebook16.astype(np.float32)[index] if index.size else np.zeros(0, np.float32)
    return codebook16.tobytes(), pack_bits(index, bits), decoded


def _dequantize(codebook: bytes, packed: bytes, count: int, bits: int, log_space: bool) -> np.ndarray:
    book = np.frombuffer(codebook, dtype=np.float16).astype(np.float32)
    index = unpack_bits(packed, count, bits)
    if count and (book.size == 0 or index.max() >= book.size):
        raise ArtifactError("quantization indices point outside their codebook (corrupt archive)")
    values = book[index] if count else np.zeros(0, np.float32)
    return np.exp(values.astype(np.float64)).astype(np.float32) if log_space else values


def _role(file: str, key: str, optimizer_keys: set[str], params: set[str]) -> tuple[str, str | None]:
    """(role, parameter name) of a tensor: weight, exp_avg, exp_avg_sq, momentum, or lossless."""
    if file == "optimizer.safetensors" and key.startswith("state/"):
        _, param, field_name = key.split("/", 2)
        role = {"exp_avg": "momentum", "momentum_buffer": "momentum", "exp_avg_sq": "second_moment"}.get(field_name, "lossless")
        return role, param
    if file in ("model.safetensors", "ema.safetensors") and key in params:
        return "weight", key
    if file not in ("model.safetensors", "ema.safetensors", "optimizer.safetensors"):
        return "weight", key  # a generic state dict: every float tensor is a weight
    return "lossless", None


class ExcpCodec:
    """Encodes checkpoints against the reconstruction of the previous one (kept in memory, one checkpoint)."""

    def __init__(self, config: CompressConfig):
        self.config = config
        self.previous: dict[str, np.ndarray] = {}  # "file::key" -> reconstructed array
        self.tracked: set[str] = set()

    def encode(self, checkpoint: dict[str, dict[str, torch.Tensor]]) -> tuple[list[dict[str, Any]], list[bytes]]:
        entries, blobs = [], []
        optimizer = checkpoint.get("optimizer.safetensors", {})
        params = {k.split("/")[1] for k in optimizer if k.startswith("state/")}
        second = {k.split("/")[1]: v.numpy() for k, v in optimizer.items() if k.endswith("/exp_avg_sq")}
        self.tracked = params  # parameters the optimizer holds state for
        masks: dict[str, np.ndarray] = {}
        # weights first: momentum masks depend on them
        ordered = sorted(
            ((f, k, t) for f, tensors in checkpoint.items() for k, t in tensors.items()),
            key=lambda item: {"weight": 0, "momentum": 1, "second_moment": 2}.get(_role(item[0], item[1], set(optimizer), params)[0], 3),
        )
        for file, key, tensor in ordered:
            role, param = _role(file, key, set(optimizer), params)
            entry, entry_blobs = self._encode_tensor(file, key, tensor, role, param, second, masks)
            entry["blob_index"] = len(blobs)
            blobs += entry_blobs
            entries.append(entry)
        return entries, blobs

    def _encode_tensor(self, file, key, tensor, role, param, second, masks):
        cfg = self.config
        slot = f"{file}::{key}"
        array = tensor.numpy() if tensor.dtype != torch.bfloat16 else tensor.float().numpy()
        entry = {"file": file, "key": key, "dtype": str(tensor.dtype).replace("torch.", ""), "shape": list(tensor.shape), "raw_bytes": tensor.numel() * tensor.element_size()}
        previous = self.previous.get(slot)
        first = previous is None or previous.shape != array.shape
        # 1-D tensors follow the rule when the optimizer tracks them (the official code compresses every
        # parameter); in a plain state dict they may be buffers (BN statistics), so they stay exact.
        # The first checkpoint's weights are the full-precision reference (unless base_bits is set).
        lossy = (
            not cfg.lossless and tensor.dtype == torch.float32 and role != "lossless"
            and (tensor.ndim > 1 or param in self.tracked) and not (role == "weight" and first and cfg.base_bits is None)
        )
        if not lossy:
            same = previous is not None and previous.shape == array.shape and previous.dtype == array.dtype
            blob = xor_residual(np.ascontiguousarray(array), previous if same else None).tobytes()
            self.previous[slot] = array.copy()
            entry.update(encoding="xor" if same else "raw", kept=1.0)
            return entry, [blob]
        flat = array.reshape(-1).astype(np.float32)
        v = second.get(param)
        v = v.reshape(-1) if v is not None and v.size == flat.size else None
        if role == "weight":
            base = np.zeros_like(flat) if first else previous.reshape(-1)
            residual = flat - base
            if first:
                keep = np.ones(flat.size, dtype=bool)
            else:
                keep, scale = official_weight_mask(residual, v, cfg.alpha)
                entry["threshold_scale"] = scale  # f of this tensor (informational)
            masks[param or key] = keep
            bits = cfg.base_bits if first else cfg.bits
            codebook, packed, decoded = _quantize(residual[keep], bits)
            restored = base.copy()
            restored[keep] += decoded
            encoding = "weight"
        else:
            weight_kept = masks.get(param, np.ones(flat.size, dtype=bool))
            if role == "momentum":
                keep = momentum_mask(flat, weight_kept, cfg.beta)
                masks[f"momentum::{param}"] = keep
            else:
                keep = masks.get(f"momentum::{param}", weight_kept)
            codebook, packed, decoded = _quantize(flat[keep], cfg.bits)
            restored = np.zeros_like(flat)
            restored[keep] = decoded
            encoding = "values"
            bits = cfg.bits
        self.previous[slot] = restored.reshape(array.shape)
        entry.update(encoding=encoding, kept=float(keep.mean()), count=int(keep.sum()), bits=bits)
        return entry, [pack_mask(keep), codebook, packed]


def _blob(blobs: list[bytes], index: int, expected: int | None, what: str, key: str, source: str) -> bytes:
    """Blob `index`, refused when it is absent or (when `expected` is given) not exactly `expected` bytes long."""
    if index >= len(blobs):
        raise ArtifactError(f"{source}: {key!r} points at blob {index}, the record has {len(blobs)}")
    if expected is not None and len(blobs[index]) != expected:
        raise ArtifactError(f"{source}: {key!r} {what} is {len(blobs[index])} bytes, expected {expected}")
    return blobs[index]


def decode_entry(entry: dict[str, Any] | TensorEntry, blobs: list[bytes], previous: dict[str, np.ndarray], source: str) -> torch.Tensor:
    """Rebuild one tensor, updating `previous` (the running reconstruction); every field and size is checked first."""
    entry = entry if isinstance(entry, TensorEntry) else parse_entry(entry, source)
    slot, key, shape = f"{entry.file}::{entry.key}", entry.key, entry.shape
    dtype = DTYPES[entry.dtype]
    count_all = numel(shape)
    # bfloat16 is stored widened to float32 (numpy has no bfloat16)
    np_dtype = np.dtype(np.float32) if dtype == torch.bfloat16 else torch.empty(0, dtype=dtype).numpy().dtype
    if entry.encoding in ("raw", "xor"):
        data = _blob(blobs, entry.blob_index, count_all * np_dtype.itemsize, "data", key, source)
        words = np.frombuffer(data, dtype=f"u{np_dtype.itemsize}")
        if entry.encoding == "xor":
            prior = previous.get(slot)
            if prior is None or prior.size != count_all or prior.dtype.itemsize != np_dtype.itemsize:
                raise ArtifactError(f"{source}: {key!r} is a residual without its previous checkpoint")
            words = words ^ prior.reshape(-1).view(words.dtype)
        array = words.view(np_dtype).reshape(shape).copy()
    else:
        if entry.dtype != "float32" or entry.count is None or entry.bits is None:
            raise ArtifactError(f"{source}: {key!r} is quantized ({entry.encoding}) but is not float32 with a count and bits")
        count, bits = entry.count, entry.bits
        mask = unpack_mask(_blob(blobs, entry.blob_index, (count_all + 7) // 8, "mask", key, source), count_all)
        codebook = _blob(blobs, entry.blob_index + 1, None, "codebook", key, source)
        packed = _blob(blobs, entry.blob_index + 2, (count * bits + 7) // 8, "index data", key, source)
        if int(mask.sum()) != count:
            raise ArtifactError(f"{source}: {key!r} mask does not match its count")
        if len(codebook) % 2 or len(codebook) // 2 > 2**bits - 1:
            raise ArtifactError(f"{source}: {key!r} codebook of {len(codebook)} bytes does not fit {bits} bits")
        try:
            values = _dequantize(codebook, packed, count, bits, entry.encoding == "log-values")
        except ArtifactError as exc:
            raise ArtifactError(f"{source}: {key!r}: {exc}") from None
        if entry.encoding == "weight":
            prior = previous.get(slot)
            base = np.zeros(count_all, np.float32) if prior is None or prior.size != count_all else prior.reshape(-1).astype(np.float32)
            base[mask] += values
            array = base.reshape(shape)
        else:
            flat = np.zeros(count_all, np.float32)
            flat[mask] = values
            array = flat.reshape(shape)
    previous[slot] = array
    tensor = torch.from_numpy(array.copy(order="C"))  # ascontiguousarray would turn 0-d into 1-d
    return tensor.to(dtype) if dtype == torch.bfloat16 else tensor


class ContentSealer:
    """Decodes freshly encoded checkpoints as a reader will and records each tensor's content digest in its entry."""

    def __init__(self, total: int) -> None:
        self.previous: dict[str, np.ndarray] = {}  # the reader's running reconstruction
        self.ordinal = 0
        self.total = total  # binding the count into every digest stops a forger from dropping the last records

    def seal(self, entries: list[dict[str, Any]], blobs: list[bytes], checkpoint: str, source: str) -> None:
        """Add `sha256` to every entry of the next checkpoint."""
        for entry in entries:
            tensor = decode_entry(entry, blobs, self.previous, source)
            entry["sha256"] = tensor_digest(tensor, tensor_place(self.ordinal, self.total, checkpoint, entry["file"], entry["key"]))
        self.ordinal += 1

    def seal_layout(self, header: dict[str, Any]) -> dict[str, Any]:
        """The record header with `layout_sha256` over the JSON files it restores and its directory flag (see `layout_digest`)."""
        if header["kind"] == "run":
            return {**header, "layout_sha256": layout_digest(header["run_files"], -1, self.total, "", None)}
        return {**header, "layout_sha256": layout_digest(header["json"], self.ordinal - 1, self.total, header["name"], header["directory"])}


# --- public verbs ----------------------------------------------------------------------

def _zstd_size(files: list[Path]) -> int:
    import zstandard

    compressor = zstandard.ZstdCompressor(level=3)
    return sum(len(compressor.compress(f.read_bytes())) for f in files if f.suffix in STATE_SUFFIXES)


def compress_run(source: str | Path, out_file: str | Path, config: CompressConfig | None = None) -> CompressResult:
    """Compress every checkpoint of a run (or directory of state dicts) into one archive, streaming."""
    config = config or CompressConfig()
    checkpoints, run_files = discover(source)
    start = time.perf_counter()
    codec = ExcpCodec(config)
    sealer = ContentSealer(len(checkpoints))
    writer = ArchiveWriter(out_file)
    raw = zstd = 0
    tensors_report: list[dict[str, Any]] = []
    try:
        writer.write(sealer.seal_layout({"format": FORMAT, "kind": "run", "config": asdict(config), "run_files": run_files, "n_checkpoints": len(checkpoints)}), [])
        with progress_bar() as progress:
            task = progress.add_task("compressing checkpoints", total=len(checkpoints))
            for checkpoint in checkpoints:
                tensors = {f.name if checkpoint.directory else "state.safetensors": _load_tensors(f) for f in checkpoint.files if f.suffix in STATE_SUFFIXES}
                json_files = {f.name: f.read_text() for f in checkpoint.files if f.suffix == ".json"}
                entries, blobs = codec.encode(tensors)
                sealer.seal(entries, blobs, checkpoint.name, f"{source} {checkpoint.name}")
                size = writer.write(sealer.seal_layout({"kind": "checkpoint", "name": checkpoint.name, "directory": checkpoint.directory is not None, "source_files": [f.name for f in checkpoint.files], "json": json_files, "tensors": entries}), blobs)
                raw += sum(f.stat().st_size for f in checkpoint.files if f.suffix in STATE_SUFFIXES)
                zstd += _zstd_size(checkpoint.files)
                tensors_report.append({"checkpoint": checkpoint.name, "compressed_bytes": size, "tensors": entries})
                progress.advance(task)
        path = writer.close()
    except BaseException:
        writer.abort()
        raise
    return CompressResult(path, len(checkpoints), raw, path.stat().st_size, zstd, time.perf_counter() - start, tensors_report)


def _iter_checkpoints(archive: str | Path) -> Iterator[tuple[dict[str, Any], dict[str, dict[str, torch.Tensor]], dict[str, Any]]]:
    """Yield (record header, {file: {key: tensor}}, archive header) for every checkpoint, reconstructing the chain.

    Every tensor is checked against its content digest and every header against its schema; the
    number of checkpoints must match the count the archive header declares, so an archive that lost
    records fails at its end instead of yielding an earlier checkpoint as the last one.
    """
    records = read_records(archive)
    try:
        head, _ = next(records)
    except StopIteration:
        raise ArtifactError(f"{archive}: empty archive") from None
    if head.get("format") != FORMAT:
        raise ArtifactError(f"{archive}: not an ExCP checkpoint archive")
    run_record = parse_run_record(head, f"{archive} header", RUN_FILES)
    if head.get("layout_sha256") != layout_digest(run_record.run_files, -1, run_record.n_checkpoints, "", None):
        raise ArtifactError(f"{archive} header: run files do not match their content digest (corrupt or edited archive)")
    declared = run_record.n_checkpoints
    previous: dict[str, np.ndarray] = {}
    found = 0
    for index, (header, blobs) in enumerate(records):
        source = f"{archive} checkpoint {index}"
        if index >= declared:
            raise ArtifactError(f"{archive}: more checkpoints than the {declared} its header declares")
        record = parse_checkpoint_record(header, source)
        if header.get("layout_sha256") != layout_digest(record.json_files, index, declared, record.name, record.directory):
            raise ArtifactError(f"{source}: json files or layout do not match their digest (corrupt or edited archive)")
        files: dict[str, dict[str, torch.Tensor]] = {}
        for position, raw_entry in enumerate(record.tensors):
            entry = parse_entry(raw_entry, f"{source} tensor {position}")
            if entry.sha256 is None:
                raise ArtifactError(f"{source}: tensor {entry.key!r} has no content digest")
            tensors = files.setdefault(entry.file, {})
            if entry.key in tensors or entry.key == "__metadata__":
                raise ArtifactError(f"{source}: tensor {entry.file}/{entry.key!r} is duplicated or reserved")
            if record.directory is False and entry.file != SINGLE_FILE:
                raise ArtifactError(f"{source}: a single-file checkpoint holds tensor file {entry.file!r}")
            tensor = decode_entry(entry, blobs, previous, source)
            if tensor_digest(tensor, tensor_place(index, declared, record.name, entry.file, entry.key)) != entry.sha256:
                raise ArtifactError(f"{source}: tensor {entry.file}/{entry.key!r} does not match its content digest (corrupt or edited archive)")
            tensors[entry.key] = tensor
        found = index + 1
        yield header, files, head
    if found != declared:
        raise ArtifactError(f"{archive}: holds {found} checkpoints but its header declares {declared} (records missing)")


def _write_state(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """A state dict in the format its file name promises: safetensors, or a plain tensor dict for .pt/.pth/.bin."""
    if path.suffix == ".safetensors":
        save_safetensors_atomic(tensors, path)
    else:
        buffer = io.BytesIO()
        torch.save(tensors, buffer)
        atomic_write_bytes(path, buffer.getvalue())


def restore(archive: str | Path, out_dir: str | Path, index: int | None = None, overwrite: bool = False) -> Path:
    """Rebuild checkpoint `index` (None = last) as a run directory that `slimvision train --resume` accepts.

    Nothing is written until the chosen checkpoint is decoded and verified (all of them for the last);
    every file lands inside `out_dir`; an existing `out_dir` is replaced only with `overwrite`, and
    never when it is or contains the archive.
    """
    if index is not None and index < 0:
        raise ConfigError(f"--index must be >= 0, got {index}")
    guard_output(out_dir, [archive], overwrite)
    chosen = None
    count = 0
    for count, (header, files, head) in enumerate(_iter_checkpoints(archive), start=1):
        if index is None or count - 1 == index:
            chosen = (header, files, head)
            if index is not None:
                break
    if chosen is None:
        raise ArtifactError(f"{archive}: no checkpoint {index} (the archive holds {count})")
    header, files, head = chosen
    with atomic_directory(out_dir) as target:
        if header["directory"]:
            directory = join_inside(target, CHECKPOINT_ROOT, header["name"])
            directory.mkdir(parents=True)
            for name, tensors in files.items():
                _write_state(tensors, join_inside(directory, name))
            for name, text in header["json"].items():
                atomic_write_bytes(join_inside(directory, name), text.encode())
            for name, text in head["run_files"].items():
                atomic_write_bytes(join_inside(target, name), text.encode())
            if "model.safetensors" in files and "arch.json" in head["run_files"]:
                save_safetensors_atomic(files["model.safetensors"], target / "model.safetensors")
        else:
            for tensors in files.values():
                save_safetensors_atomic(tensors, join_inside(target, f"{header['name']}.safetensors"))
    return Path(out_dir)


def inspect(archive: str | Path) -> dict[str, Any]:
    """Per-checkpoint and per-tensor sizes, kept fractions and encodings (decodes and verifies everything)."""
    checkpoints = []
    for header, files, head in _iter_checkpoints(archive):
        tensors = [
            {"file": e["file"], "key": e["key"], "shape": e["shape"], "encoding": e["encoding"], "kept": e.get("kept", 1.0), "raw_bytes": e["raw_bytes"]}
            for e in header.get("tensors", [])
        ]
        checkpoints.append({"name": header["name"], "tensors": tensors, "raw_bytes": sum(t["raw_bytes"] for t in tensors)})
    size = Path(archive).stat().st_size
    raw = sum(c["raw_bytes"] for c in checkpoints)
    return {"archive": str(archive), "compressed_bytes": size, "raw_tensor_bytes": raw, "ratio": raw / max(1, size), "n_checkpoints": len(checkpoints), "config": head["config"] if checkpoints else None, "checkpoints": checkpoints}

"""What an archive's headers may say, checked before anything in them is used, and the content digest of a tensor.

Every field is validated against a schema (types, ranges, an allow-list of dtypes and encodings),
every name that becomes a path is a plain file name, and blob sizes are checked against the
declared shape before any array is allocated.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal, Optional

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from slimvision.errors import ArtifactError
from slimvision.io.paths import plain_name

DTYPES: dict[str, torch.dtype] = {
    "float64": torch.float64, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
    "int64": torch.int64, "int32": torch.int32, "int16": torch.int16, "int8": torch.int8, "uint8": torch.uint8, "bool": torch.bool,
}
ENCODINGS = ("raw", "xor", "weight", "values", "log-values")
MAX_ELEMENTS = 1 << 32  # one tensor of more than 4G elements is refused before any allocation
MAX_DIMS = 8
SHA256 = r"^[0-9a-f]{64}$"
TENSOR_FILE_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class TensorEntry(_Strict):
    """One tensor of a checkpoint record."""

    file: str
    key: str = Field(min_length=1, max_length=1000)
    dtype: Literal[tuple(DTYPES)]  # type: ignore[valid-type]
    shape: list[int] = Field(max_length=MAX_DIMS)
    encoding: Literal[ENCODINGS]  # type: ignore[valid-type]
    blob_index: int = Field(ge=0)
    count: Optional[int] = Field(default=None, ge=0)
    bits: Optional[int] = Field(default=None, ge=1, le=8)
    sha256: Optional[str] = Field(default=None, pattern=SHA256)
    raw_bytes: int = Field(ge=0)  # reported by inspect
    kept: float = Field(default=1.0, ge=0, le=1)


class RunRecord(_Strict):
    """The archive's first record: format, compression config, run-level JSON files, checkpoint count."""

    format: str
    kind: Literal["run"]
    config: dict[str, Any]
    run_files: dict[str, str]
    n_checkpoints: int = Field(ge=0)


class CheckpointRecord(_Strict):
    """One checkpoint: its name, JSON files and tensor entries."""

    kind: Literal["checkpoint"]
    name: str
    directory: bool
    json_files: dict[str, str] = Field(alias="json")
    tensors: list[dict[str, Any]]


def _parse(model: type[BaseModel], data: Any, source: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "header"
        raise ArtifactError(f"{source}: field {where!r}: {error['msg']}") from None


def parse_run_record(header: Any, source: str, run_file_names: tuple[str, ...]) -> RunRecord:
    """The validated first record; run-level file names must be among `run_file_names`."""
    record = _parse(RunRecord, header, source)
    for name in record.run_files:
        if plain_name(name, "run file", source) not in run_file_names:
            raise ArtifactError(f"{source}: run file {name[:80]!r} is not one of {', '.join(run_file_names)}")
    return record


def parse_checkpoint_record(header: Any, source: str) -> CheckpointRecord:
    """The validated checkpoint record: plain names for the checkpoint and its JSON files, unique tensor slots."""
    record = _parse(CheckpointRecord, header, source)
    plain_name(record.name, "checkpoint name", source)
    for name, text in record.json_files.items():
        plain_name(name, "json file name", source, suffix=".json")
        try:
            json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            raise ArtifactError(f"{source}: json file {name!r} is not valid JSON") from None
    return record


def parse_entry(entry: Any, source: str) -> TensorEntry:
    """A validated tensor entry (field types, dtype and encoding allow-lists, shape bounds, plain file name)."""
    parsed = _parse(TensorEntry, entry, source)
    plain_name(parsed.file, "tensor file", source, suffix=TENSOR_FILE_SUFFIXES)
    if any(size < 0 for size in parsed.shape):
        raise ArtifactError(f"{source}: {parsed.key!r} has a negative dimension in shape {parsed.shape}")
    if numel(parsed.shape) > MAX_ELEMENTS:
        raise ArtifactError(f"{source}: {parsed.key!r} claims {numel(parsed.shape)} elements (more than {MAX_ELEMENTS})")
    return parsed


def numel(shape: list[int]) -> int:
    """Number of elements of a shape (1 for a scalar), in Python integers (no overflow)."""
    total = 1
    for size in shape:
        total *= size
    return total


def tensor_digest(tensor: torch.Tensor, place: str = "") -> str:
    """sha256 of a tensor's place in the archive (checkpoint, file, key), dtype, shape and bytes: what a restore must reproduce.

    Binding the place into the digest means a record moved, repeated or dropped (with its framing
    rewritten) no longer matches, even when two checkpoints hold identical tensors.
    """
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    data = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
    head = f"{place}\0{str(tensor.dtype).replace('torch.', '')}\0{list(tensor.shape)}\0".encode()
    return hashlib.sha256(head + data).hexdigest()


def tensor_place(ordinal: int, total: int, checkpoint: str, file: str, key: str) -> str:
    """Where a tensor sits in an archive (checkpoint `ordinal` of `total`, file, key), as bound into its digest."""
    return f"{ordinal}/{total}\0{checkpoint}\0{file}\0{key}"


def layout_digest(texts: dict[str, str], ordinal: int, total: int, checkpoint: str, directory: bool | None) -> str:
    """sha256 of what a record lays out besides tensors: its JSON files (names, contents) and directory flag, bound to its place.

    The run-level record uses ordinal -1 and directory None.
    """
    place = {"ordinal": ordinal, "total": total, "checkpoint": checkpoint, "directory": directory}
    body = json.dumps({**place, "files": texts}, sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(body.encode()).hexdigest()

"""The `.svckpt` archive: a versioned, checksummed, streamable sequence of compressed records.

Layout: MAGIC (8 bytes) | version (u16) | reserved (u16) | records... | end marker.
A record is: b"REC1" | payload length (u64) | zstd payload | crc32 of the payload (u32).
The end marker is b"END1" | record count (u32). A payload is: header length (u32) | JSON header |
blob bytes; the header says where each blob starts and ends. Every length is checked against the
bytes that remain before it is trusted, so a corrupt archive fails with a clear error, never a
huge allocation or a hang.

Version 2 chains the records: each header carries its position (`seq`), the digest of the previous
header (`previous_digest`) and its own `digest` (sha256 of its canonical JSON), so a dropped,
repeated, reordered or edited record is refused even when its crc32 was recomputed. The crc32 only
catches damage to the compressed bytes; the blobs' decoded content is hashed one level up (per
tensor, in `excp.py`). Version 1 archives (no digests) are refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import zstandard

from slimvision.errors import ArtifactError
from slimvision.io.atomic import remove_stale_temps, temp_prefix

MAGIC = b"SVCKPT\x00\x00"
VERSION = 2
RECORD_TAG = b"REC1"
END_TAG = b"END1"
ZSTD_LEVEL = 19
MAX_DECOMPRESSED = 1 << 34  # refuse payloads claiming more than 16 GiB


def encode_payload(header: dict[str, Any], blobs: list[bytes]) -> bytes:
    """Header JSON (with blob offsets filled in) followed by the blobs."""
    offsets, position = [], 0
    for blob in blobs:
        offsets.append([position, len(blob)])
        position += len(blob)
    header = {**header, "blobs": offsets}
    raw_header = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<I", len(raw_header)) + raw_header + b"".join(blobs)


def header_digest(header: dict[str, Any]) -> str:
    """sha256 of a record header's canonical JSON, without its own digest and blob offsets."""
    body = {k: v for k, v in header.items() if k not in ("digest", "blobs")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()).hexdigest()


def _check_chain(header: Any, index: int, previous_digest: str | None, source: str) -> str:
    """The header's digest after checking its position, its link to the previous record and its own digest."""
    if not isinstance(header, dict):
        raise ArtifactError(f"{source}: record header is not a JSON object")
    if header.get("seq") != index or type(header.get("seq")) is not int:
        raise ArtifactError(f"{source}: record claims position {header.get('seq')!r} (records missing, repeated or out of order)")
    if header.get("previous_digest") != previous_digest:
        raise ArtifactError(f"{source}: record does not follow the previous one (records missing, repeated or out of order)")
    if header.get("digest") != header_digest(header):
        raise ArtifactError(f"{source}: record header digest mismatch (edited or corrupt archive)")
    return header["digest"]


def decode_payload(payload: bytes, source: str) -> tuple[dict[str, Any], list[bytes]]:
    if len(payload) < 4:
        raise ArtifactError(f"{source}: record payload is truncated")
    (header_len,) = struct.unpack_from("<I", payload)
    if 4 + header_len > len(payload):
        raise ArtifactError(f"{source}: record header length exceeds the payload")
    try:
        header = json.loads(payload[4 : 4 + header_len])
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise ArtifactError(f"{source}: record header is not valid JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("blobs", []), list):
        raise ArtifactError(f"{source}: record header is not a JSON object with a blob list")
    body = memoryview(payload)[4 + header_len :]
    blobs = []
    for span in header.get("blobs", []):
        if not (isinstance(span, list) and len(span) == 2 and all(type(v) is int for v in span)):
            raise ArtifactError(f"{source}: malformed blob offsets")
        start, length = span
        if start < 0 or length < 0 or start + length > len(body):
            raise ArtifactError(f"{source}: blob outside the record")
        blobs.append(bytes(body[start : start + length]))
    return header, blobs


class ArchiveWriter:
    """Streams records into a temp file; `close()` renames it into place (nothing appears on error)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(self.path.parent, self.path.name)
        fd, self.tmp = tempfile.mkstemp(prefix=temp_prefix(self.path), suffix=".tmp", dir=self.path.parent)
        self.handle: BinaryIO = os.fdopen(fd, "wb")
        self.handle.write(MAGIC + struct.pack("<HH", VERSION, 0))
        self.count = 0
        self.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
        self.bytes_written = len(MAGIC) + 4
        self.previous_digest: str | None = None

    def write(self, header: dict[str, Any], blobs: list[bytes]) -> int:
        """Append one record (chained to the previous one by digest); returns its compressed size in bytes."""
        header = json.loads(json.dumps({**header, "seq": self.count, "previous_digest": self.previous_digest}))
        header["digest"] = self.previous_digest = header_digest(header)
        payload = self.compressor.compress(encode_payload(header, blobs))
        self.handle.write(RECORD_TAG + struct.pack("<Q", len(payload)) + payload + struct.pack("<I", zlib.crc32(payload)))
        self.count += 1
        self.bytes_written += len(payload) + 16
        return len(payload)

    def close(self) -> Path:
        self.handle.write(END_TAG + struct.pack("<I", self.count))
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        self.handle.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


def read_records(path: str | Path) -> Iterator[tuple[dict[str, Any], list[bytes]]]:
    """Yield (header, blobs) of each record in order, verifying magic, version, lengths and checksums."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"archive not found: {path}")
    size = path.stat().st_size
    decompressor = zstandard.ZstdDecompressor()
    with path.open("rb") as handle:
        start = handle.read(len(MAGIC) + 4)
        if len(start) < len(MAGIC) + 4 or start[: len(MAGIC)] != MAGIC:
            raise ArtifactError(f"{path}: not a slimvision checkpoint archive (bad magic)")
        version = struct.unpack_from("<H", start, len(MAGIC))[0]
        if version == 1:
            raise ArtifactError(f"{path}: archive version 1 has no content digests and cannot be verified; compress the run again with this version")
        if version != VERSION:
            raise ArtifactError(f"{path}: archive version {version} is not supported (this build reads version {VERSION})")
        index = 0
        previous_digest = None
        while True:
            tag = handle.read(4)
            if tag == END_TAG:
                count_bytes = handle.read(4)
                if len(count_bytes) != 4 or struct.unpack("<I", count_bytes)[0] != index:
                    raise ArtifactError(f"{path}: end marker does not match the {index} records read")
                if handle.read(1):
                    raise ArtifactError(f"{path}: unexpected bytes after the end marker")
                return
            if tag != RECORD_TAG:
                raise ArtifactError(f"{path}: truncated or corrupt at record {index} (no record tag)")
            length_bytes = handle.read(8)
            if len(length_bytes) != 8:
                raise ArtifactError(f"{path}: truncated at record {index}")
            (length,) = struct.unpack("<Q", length_bytes)
            if length > size - handle.tell():
                raise ArtifactError(f"{path}: record {index} claims {length} bytes but the file is shorter (truncated?)")
            payload = handle.read(length)
            crc_bytes = handle.read(4)
            if len(crc_bytes) != 4 or zlib.crc32(payload) != struct.unpack("<I", crc_bytes)[0]:
                raise ArtifactError(f"{path}: checksum mismatch in record {index} (corrupt archive)")
            try:
                raw = decompressor.decompress(payload, max_output_size=MAX_DECOMPRESSED)
            except zstandard.ZstdError as exc:
                raise ArtifactError(f"{path}: record {index} does not decompress ({exc})") from None
            header, blobs = decode_payload(raw, f"{path} record {index}")
            previous_digest = _check_chain(header, index, previous_digest, f"{path} record {index}")
            yield header, blobs
            index += 1

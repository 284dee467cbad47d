"""The `.svckpt` archive: a versioned, checksummed, streamable sequence of compressed records.

Layout: MAGIC (8 bytes) | version (u16) | reserved (u16) | records... | end marker.
A record is: b"REC1" | payload length (u64) | zstd payload | crc32 of the payload (u32).
The end marker is b"END1" | record count (u32). A payload is: header length (u32) | JSON header |
blob bytes; the header says where each blob starts and ends. Every length is checked against the
bytes that remain before it is trusted, so a corrupt archive fails with a clear error, never a
huge allocation or a hang.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import tempfile
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import zstandard

from slimvision.errors import ArtifactError

MAGIC = b"SVCKPT\x00\x00"
VERSION = 1
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


def decode_payload(payload: bytes, source: str) -> tuple[dict[str, Any], list[bytes]]:
    if len(payload) < 4:
        raise ArtifactError(f"{source}: record payload is truncated")
    (header_len,) = struct.unpack_from("<I", payload)
    if 4 + header_len > len(payload):
        raise ArtifactError(f"{source}: record header length exceeds the payload")
    try:
        header = json.loads(payload[4 : 4 + header_len])
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ArtifactError(f"{source}: record header is not valid JSON") from None
    body = memoryview(payload)[4 + header_len :]
    blobs = []
    for start, length in header.get("blobs", []):
        if not (isinstance(start, int) and isinstance(length, int)) or start < 0 or length < 0 or start + length > len(body):
            raise ArtifactError(f"{source}: blob outside the record")
        blobs.append(bytes(body[start : start + length]))
    return header, blobs


class ArchiveWriter:
    """Streams records into a temp file; `close()` renames it into place (nothing appears on error)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self.handle: BinaryIO = os.fdopen(fd, "wb")
        self.handle.write(MAGIC + struct.pack("<HH", VERSION, 0))
        self.count = 0
        self.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
        self.bytes_written = len(MAGIC) + 4

    def write(self, header: dict[str, Any], blobs: list[bytes]) -> int:
        """Append one record; returns its compressed size in bytes."""
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
        if version != VERSION:
            raise ArtifactError(f"{path}: archive version {version} is not supported (this build reads version {VERSION})")
        index = 0
        while True:
            tag = handle.read(4)
            if tag == END_TAG:
                count_bytes = handle.read(4)
                if len(count_bytes) != 4 or struct.unpack("<I", count_bytes)[0] != index:
                    raise ArtifactError(f"{path}: end marker does not match the {index} records read")
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
            yield decode_payload(raw, f"{path} record {index}")
            index += 1

"""Fixtures for hostile archives: rewrite a real archive record by record with valid crc32s and record digests."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from slimvision.ckpt.container import ArchiveWriter, read_records

Records = list[tuple[dict[str, Any], list[bytes]]]
CHAIN_FIELDS = ("seq", "previous_digest", "digest", "blobs")


def read_plain(archive: Path) -> Records:
    """Every record as (header without its chain fields, blobs)."""
    return [({k: v for k, v in header.items() if k not in CHAIN_FIELDS}, blobs) for header, blobs in read_records(archive)]


def write_records(records: Records, path: Path) -> Path:
    """Write records as a well-formed archive: valid framing, crc32s and a freshly computed digest chain."""
    writer = ArchiveWriter(path)
    for header, blobs in records:
        writer.write(header, blobs)
    return writer.close()


def forge(archive: Path, path: Path, edit: Callable[[Records], Records | None]) -> Path:
    """Copy `archive` to `path` after `edit` changed its records (in place, or by returning a new list)."""
    records = read_plain(archive)
    edited = edit(records)
    return write_records(edited if isinstance(edited, list) else records, path)


@pytest.fixture
def forge_archive():
    """forge(archive, path, edit) -> path of the rewritten archive."""
    return forge

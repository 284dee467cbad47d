"""Run-directory state: one `stage.json` per stage, written atomically, and the hashes that decide what to redo.

A stage is finished when its `stage.json` says `done` with the hash of its current options and
inputs; a kill at any moment leaves either the previous record or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from slimvision.io import atomic_write_json, read_json

STAGE_FILE = "stage.json"
LOG_FILE = "log.txt"
STATE_VERSION = 1


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def path_fingerprint(value: str | None) -> str | None:
    """Content digest of a file, (name, size, mtime) listing of a directory's files; None when `value` is no path."""
    if not value:
        return None
    target = Path(value.rpartition(":")[0] if value.rpartition(":")[0].endswith(".py") else value)
    if target.is_file():
        return _file_digest(target)
    if target.is_dir():
        entries = sorted((str(p.relative_to(target)), p.stat().st_size, p.stat().st_mtime_ns) for p in target.rglob("*") if p.is_file())
        return hashlib.sha256(json.dumps(entries).encode()).hexdigest()
    return None


def stage_hash(options: dict[str, Any], upstream: dict[str, str], files: dict[str, str | None]) -> str:
    """Hash of what a stage's output depends on: its options, the hashes of the stages it reads, the files it reads."""
    payload = json.dumps({"version": STATE_VERSION, "options": options, "upstream": upstream, "files": files}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class StageRecord:
    """The `stage.json` of one stage directory."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.path = directory / STAGE_FILE

    def read(self) -> dict[str, Any] | None:
        """The record, or None when the stage never started (or its record is unreadable)."""
        if not self.path.is_file():
            return None
        try:
            return read_json(self.path)
        except Exception:  # a record we cannot read counts as "not finished": the stage is redone
            return None

    def is_done(self, digest: str) -> bool:
        record = self.read()
        return bool(record and record.get("status") == "done" and record.get("hash") == digest)

    def started_with(self, digest: str) -> bool:
        """True when an unfinished run of the same stage (same hash) was interrupted: its checkpoints can be resumed."""
        record = self.read()
        return bool(record and record.get("status") == "running" and record.get("hash") == digest)

    def mark_running(self, digest: str, kind: str, options: dict[str, Any]) -> None:
        atomic_write_json(self.path, {"status": "running", "hash": digest, "kind": kind, "options": options, "started": time.time()})

    def mark_done(self, result: dict[str, Any]) -> None:
        record = self.read() or {}
        record.update(status="done", finished=time.time(), seconds=time.time() - record.get("started", time.time()), result=result)
        atomic_write_json(self.path, record)

    def log(self, line: str) -> None:
        """Append one timestamped line to the stage's log."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / LOG_FILE).open("a") as handle:
            handle.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")

"""Atomic writes: a reader never sees a half-written file or output directory.

Temp names carry the writer's process id (`.NAME.PID.XXXXXXXX.tmp`, backups `.NAME.old-PID`), so
the next write to the same directory can tell leftovers of a killed process from another live
writer's files and remove only the former.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[a-z0-9_]{8}\.tmp$")
_LEGACY_TEMP = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")  # written before temp names carried a pid
_BACKUP = re.compile(r"^\.(?P<name>.+)\.old-(?P<pid>\d+)$")
LEGACY_TEMP_AGE_S = 3600.0  # a pid-less temp this old cannot belong to a write still running


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # exists but is not ours, or unknowable: keep its files
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_stale_temps(directory: str | Path, name: str | None = None) -> list[Path]:
    """Remove temp files/directories and backups that interrupted writes left in `directory` (only `name`'s if given).

    A leftover backup whose target is missing (killed between the two renames) is put back instead.
    Returns the paths that were removed or restored.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    cleaned = []
    with os.scandir(directory) as entries:
        candidates = [e.name for e in entries if e.name.startswith(".")]
    for entry in candidates:
        match = _TEMP.match(entry) or _BACKUP.match(entry)
        path = directory / entry
        if match is None:
            legacy = _LEGACY_TEMP.match(entry)
            with contextlib.suppress(FileNotFoundError):
                if legacy and (name is None or legacy["name"] == name) and time.time() - path.lstat().st_mtime > LEGACY_TEMP_AGE_S:
                    _remove(path)
                    cleaned.append(path)
            continue
        if (name is not None and match["name"] != name) or _alive(int(match["pid"])):
            continue
        target = directory / match["name"]
        if match.re is _BACKUP and not target.exists():
            os.replace(path, target)
        else:
            _remove(path)
        cleaned.append(path)
    return cleaned


def temp_prefix(path: Path) -> str:
    """The prefix of this process's temp names for `path`."""
    return f".{path.name}.{os.getpid()}."


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to a temp file beside `path`, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent, path.name)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode())


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temp directory; on success it replaces `path` whole, on error it is deleted.

    An existing `path` is left untouched unless the block finishes without error.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent, path.name)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    backup = None
    if path.exists():
        backup = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, backup)
    os.replace(tmp, path)
    if backup is not None:
        _remove(backup)

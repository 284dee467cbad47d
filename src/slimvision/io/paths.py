"""Paths that come from files or users: plain names kept inside their directory, outputs that never clobber inputs."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

from slimvision.errors import ArtifactError, ConfigError

# one path component: no separators, drive letters or control characters, not hidden, "." or ".."
_NOT_PLAIN = re.compile(r"[/\\:\x00-\x1f\x7f]|^\.|^$")


def plain_name(name: object, what: str, source: str, suffix: str | tuple[str, ...] | None = None) -> str:
    """`name` if it is a plain file name (one component, no traversal), else an ArtifactError naming `what` and `source`."""
    if not isinstance(name, str):
        raise ArtifactError(f"{source}: {what} must be a string, got {type(name).__name__}")
    if _NOT_PLAIN.search(name) or len(name) > 255:
        raise ArtifactError(f"{source}: {what} {name[:80]!r} is not a plain file name (path separators, '..' and absolute paths are refused)")
    if suffix is not None and not name.endswith(suffix):
        raise ArtifactError(f"{source}: {what} {name[:80]!r} must end with {' or '.join((suffix,) if isinstance(suffix, str) else suffix)}")
    return name


def join_inside(root: Path, *names: str) -> Path:
    """root / names, refused unless the result resolves inside `root` (defence in depth after `plain_name`)."""
    target = root.joinpath(*names)
    resolved_root = root.resolve()
    if not target.resolve().is_relative_to(resolved_root) or target.resolve() == resolved_root:
        raise ArtifactError(f"{'/'.join(names)!r} would be written outside {root}")
    return target


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


def guard_output(
    out: str | Path, inputs: Iterable[str | Path | None], overwrite: bool = False, option: str = "--out", hint: str = "pass --overwrite to replace it"
) -> None:
    """Refuse an output that is, contains or lies inside an input, and an existing output unless `overwrite`.

    Replacing a directory deletes everything below it, so an input inside the output is as much at
    risk as an output inside the input. Inputs that are not existing paths (zoo names) are ignored.
    """
    target = Path(os.path.abspath(Path(out).expanduser())).resolve()
    for item in inputs:
        if item is None or not Path(item).exists():
            continue
        source = Path(item).expanduser().resolve()
        if _overlaps(target, source):
            raise ConfigError(f"{option} {out} overlaps the input {item}: writing it would destroy the input; choose another {option}")
    if not overwrite and target.exists() and (target.is_file() or any(target.iterdir())):
        raise ConfigError(f"{option} {out} already exists; {hint} or choose another {option}")

"""Progress bars for long work, drawn on stderr so that stdout stays clean for --json and pipes."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def progress_bar(enabled: bool = True) -> Progress:
    """A transient bar (description, bar, done/total, time left) on stderr; draws nothing when not `enabled`."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), disable=not enabled, transient=True,
    )

"""The Typer app object and the helpers every command module shares."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console

app = typer.Typer(
    name="slimvision",
    help="Make vision models small and fast, and prove it with measurements.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    """JSON on stdout only (progress and tables go elsewhere), so `--json` output pipes cleanly."""
    typer.echo(json.dumps(data, indent=2, default=str))

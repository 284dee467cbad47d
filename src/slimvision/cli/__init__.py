"""The `slimvision` command: a thin Typer app; every command calls the library and prints."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import typer
from rich.markup import escape
from typer.exceptions import TyperException

from slimvision.cli import ckpt, core, distill, merge, nas, nas_bench, pipeline, prune, quant, robust  # noqa: F401  (registers commands)
from slimvision.cli.app import app, err_console
from slimvision.errors import SlimvisionError


PACKAGE_DIR = Path(__file__).resolve().parent.parent


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code; errors become one red line on stderr, slimvision's warnings one yellow line."""
    with warnings.catch_warnings():
        default_show = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if Path(filename).resolve().is_relative_to(PACKAGE_DIR):
                err_console.print(f"[yellow]warning:[/yellow] {escape(str(message))}", highlight=False, soft_wrap=True)
            else:  # a library's own warning keeps its usual form
                default_show(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        return _run(argv)


def _run(argv: list[str] | None) -> int:
    try:
        result = app(args=argv, prog_name="slimvision", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except SlimvisionError as exc:
        # escaped: a message may hold brackets (pip extras, shapes) that rich would read as markup
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 1
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err_console.print("[red]aborted[/red]")
        return 130
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/red]; long jobs continue with --resume")
        return 130
    except TyperException as exc:  # usage errors: unknown option, missing argument, bad value
        err_console.print(f"[red]error:[/red] {exc.format_message()}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except Exception as exc:  # last resort: one line instead of a traceback, unless debugging
        if os.environ.get("SLIMVISION_DEBUG"):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        err_console.print(f"[red]error:[/red] {type(exc).__name__}: {message} (set SLIMVISION_DEBUG=1 for the traceback)", highlight=False, soft_wrap=True)
        return 1


def main() -> None:
    sys.exit(run())


__all__ = ["app", "main", "run"]

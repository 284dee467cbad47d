"""What a run prints: one rule per stage as it starts or is reused, and the measured table in 80 columns."""

from __future__ import annotations

from typing import Any, Callable

from rich import box
from rich.console import Console
from rich.table import Table


def stage_printer(console: Console) -> Callable[[Any, int, str], None]:
    """A `run_recipe` callback printing `[i/N] kind -> name` per stage (its own progress bars follow on stderr)."""

    def print_stage(plan: Any, total: int, event: str) -> None:
        name, kind = plan.stage.stage_name, plan.stage.stage
        title = f"[{plan.index + 1}/{total}] {kind}" + (f" -> {name}" if name != kind else "")
        if event == "reused":
            console.rule(f"{title}  (reused)")
        elif event == "start":
            console.rule(title)

    return print_stage


def summary_table(rows: list[dict[str, Any]], title: str) -> Table:
    """The measured rows as a table that fits an 80-column terminal."""
    from slimvision.report import table_cells

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("artifact", "top-1", "params", "MACs", "bs1 ms", "bs32 ms", "x bs32"):
        table.add_column(column, justify="left" if column == "artifact" else "right", overflow="fold")
    for row in rows:
        label, _, top1, params, macs, _, bs1, bs32, speedup = table_cells(row)
        table.add_row(label if len(label) <= 22 else label[:21] + "…", top1, params, macs, bs1, bs32, speedup)
    return table

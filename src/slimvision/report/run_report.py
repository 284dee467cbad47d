"""A run's report: summary.json, report.md and a self-contained report.html (plots inline as base64 PNG)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from slimvision.io import atomic_write_bytes, atomic_write_json, read_json
from slimvision.quant.decisions import DecisionTable, decision_tables
from slimvision.report.markdown import markdown_table
from slimvision.report.plots import tradeoff_plot, width_chart
from slimvision.report.summary import ArtifactEntry, measure_entries

SUMMARY_FILE = "summary.json"
CONDITIONS_FILE = "conditions.json"
PLOTS_DIR = "plots"
HEADER = ["artifact", "runtime", "top-1", "params", "MACs", "size", "bs1 ms", "bs32 ms", "bs32 speed-up"]


def _count(value: float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.1f}{suffix}{unit}"
    return f"{value:.0f}{unit}"


def table_cells(row: dict[str, Any]) -> list[str]:
    """The report's cells for one summary row."""
    return [
        row["label"], row["runtime"], f"{row['accuracy']:.4f}", _count(row["params"]), _count(row["macs"]), _count(row["size_bytes"], "B"),
        f"{row['latency_ms']['1']:.2f}", f"{row['latency_ms']['32']:.2f}", f"{row['speedup']['32']:.2f}x",
    ]


def _plots(run_dir: Path, rows: list[dict[str, Any]]) -> list[tuple[str, Path]]:
    plots_dir = run_dir / PLOTS_DIR
    labels, accuracy = [r["label"] for r in rows], [r["accuracy"] for r in rows]
    made = [("accuracy vs latency (batch 32)", tradeoff_plot(
        labels, [r["latency_ms"]["32"] for r in rows], accuracy, plots_dir / "pareto_latency.png",
        "latency at batch 32 (ms, CPU)", "test top-1", "accuracy vs latency"))]
    with_macs = [r for r in rows if r["macs"] is not None]
    if with_macs:
        made.append(("accuracy vs MACs", tradeoff_plot(
            [r["label"] for r in with_macs], [r["macs"] / 1e6 for r in with_macs], [r["accuracy"] for r in with_macs],
            plots_dir / "pareto_macs.png", "MACs per image (M)", "test top-1", "accuracy vs MACs")))
    for row in rows:
        if row.get("layer_widths"):
            made.append((f"per-layer width: {row['label']}", width_chart(
                row["layer_widths"], plots_dir / f"widths_{row['stage']}.png", f"conv output channels: {row['label']}")))
    return made


def _conditions_lines(conditions: dict[str, Any]) -> list[str]:
    versions = ", ".join(f"{k} {v}" for k, v in conditions["versions"].items())
    return [
        f"device: {conditions['device']} ({conditions['cpu']}, {conditions['logical_cpus']} logical CPUs), {conditions['threads']} thread(s) pinned",
        f"latency: {conditions['latency']}; {conditions['rounds']} rounds x {conditions['repeats_per_round']} timed runs after "
        f"{conditions['warmup_per_round']} warm-up, batch sizes {conditions['batch_sizes']}",
        f"speed-up: {conditions['speedup']}",
        f"accuracy: {conditions['accuracy']}",
        f"MACs: {conditions['macs']}",
        f"versions: {versions}",
    ]


def _decisions(rows: list[dict[str, Any]]) -> list[tuple[str, list[DecisionTable]]]:
    """(row label, its quantize decision tables) for every row that recorded some."""
    found = [(row["label"], decision_tables(row["quantize"])) for row in rows if row.get("quantize")]
    return [(label, tables) for label, tables in found if tables]


def write_markdown(run_dir: Path, rows: list[dict[str, Any]], conditions: dict[str, Any], plots: list[tuple[str, Path]], title: str) -> Path:
    """report.md: the table, how each INT8 artifact was deployed, the conditions and links to the plots."""
    lines = [f"# {title}", "", markdown_table(HEADER, [table_cells(r) for r in rows]), ""]
    for label, tables in _decisions(rows):
        lines += [f"## How {label} was deployed", ""]
        for table in tables:
            lines += [f"**{table.title}**", "", markdown_table(table.header, table.rows), ""] + ([table.note, ""] if table.note else [])
    lines += ["## Conditions", ""]
    lines += [f"- {line}" for line in _conditions_lines(conditions)]
    lines += ["", "## Plots", ""] + [f"![{caption}]({path.relative_to(run_dir).as_posix()})\n" for caption, path in plots]
    path = run_dir / "report.md"
    atomic_write_bytes(path, "\n".join(lines).encode())
    return path


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:62rem;color:#1b1f24;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}h3{font-size:1rem;margin:1.2rem 0 .4rem}p{font-size:.9rem}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border-bottom:1px solid #d0d7de;padding:.35rem .6rem;text-align:right}
th:first-child,td:first-child,th:nth-child(2),td:nth-child(2){text-align:left}
th{background:#f6f8fa}figure{margin:1rem 0}figcaption{font-size:.85rem;color:#57606a}
.decisions td,.decisions th{text-align:left}img{max-width:100%;border:1px solid #d0d7de}ul{font-size:.9rem}
"""


def _html_table(header: list[str], rows: list[list[str]], css_class: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    opening = f'<table class="{css_class}">' if css_class else "<table>"
    return f"{opening}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_html(run_dir: Path, rows: list[dict[str, Any]], conditions: dict[str, Any], plots: list[tuple[str, Path]], title: str) -> Path:
    """report.html: one file, no external resources (plots embedded as data: URIs)."""
    decisions = "".join(
        f"<h2>How {html.escape(label)} was deployed</h2>"
        + "".join(f"<h3>{html.escape(t.title)}</h3>{_html_table(t.header, t.rows, 'decisions')}" + (f"<p>{html.escape(t.note)}</p>" if t.note else "") for t in tables)
        for label, tables in _decisions(rows)
    )
    figures = "".join(
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for caption, path in plots
    )
    items = "".join(f"<li>{html.escape(line)}</li>" for line in _conditions_lines(conditions))
    document = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_STYLE}</style></head>'
        f"<body><h1>{html.escape(title)}</h1>{_html_table(HEADER, [table_cells(r) for r in rows])}{decisions}"
        f"<h2>Conditions</h2><ul>{items}</ul><h2>Plots</h2>{figures}</body></html>\n"
    )
    path = run_dir / "report.html"
    atomic_write_bytes(path, document.encode())
    return path


def write_report(
    run_dir: str | Path, entries: list[ArtifactEntry], threads: int | None = None, remeasure: bool = True,
    rounds: int = 5, repeats: int = 10, title: str = "slimvision optimize report",
) -> list[dict[str, Any]]:
    """Measure `entries` (or reuse summary.json when not `remeasure`) and write summary.json, plots, report.md, report.html."""
    run_dir = Path(run_dir)
    if remeasure or not (run_dir / SUMMARY_FILE).is_file():
        rows, conditions = measure_entries(entries, threads, rounds, repeats)
        atomic_write_json(run_dir / SUMMARY_FILE, rows)
        atomic_write_json(run_dir / CONDITIONS_FILE, conditions)
    else:
        rows, conditions = json.loads((run_dir / SUMMARY_FILE).read_text()), read_json(run_dir / CONDITIONS_FILE)
    plots = _plots(run_dir, rows)
    write_markdown(run_dir, rows, conditions, plots, title)
    write_html(run_dir, rows, conditions, plots, title)
    return rows

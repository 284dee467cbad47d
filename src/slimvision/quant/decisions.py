"""A quantize run's recorded decisions as plain tables: the CLI prints them, the run report writes them.

Three kinds, each present only when the run made those decisions: `auto`'s verdict on every candidate
deployment, the block search's verdict on every block (per runtime), and the QDQ placement's float nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class DecisionTable:
    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""  # one line under the table


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def auto_table(summary: dict[str, Any]) -> DecisionTable:
    rows = [[c["name"], c["status"], _number(c["accuracy"], 4), _number(c["latency_ms"], 2), c["reason"]] for c in summary["candidates"]]
    speedup = summary["speedup_vs_fastest_fp32"]
    versus = f"{speedup:.2f}x the fastest fp32 runtime ({summary['speedup_basis']})" if speedup else summary["speedup_basis"]
    return DecisionTable(
        f"auto chose {summary['deployment']} (batch {summary['batch_size']})",
        ["candidate", "status", "top-1", f"bs{summary['batch_size']} ms", "why"], rows,
        f"{summary['deployment']}: {versus}; chosen in {summary['selection_seconds']:.1f} s",
    )


def block_table(runtime: str, record: dict[str, Any]) -> DecisionTable:
    return DecisionTable(
        f"block search on {runtime}: {len(record['float_blocks'])} of {record['blocks']} blocks kept float ({record['seconds']:.1f} s)",
        ["block", "kept", "why"], [[d["block"], d["kept"], d["reason"]] for d in record["decisions"]], record.get("result", ""),
    )


def placement_table(placement: dict[str, Any]) -> DecisionTable:
    return DecisionTable(
        f"QDQ placement: {placement['quantized']} nodes INT8, {len(placement['float'])} kept float",
        ["node", "op", "why"], [[d["node"], d["op_type"], d["reason"]] for d in placement["float"]], placement.get("float_activations", ""),
    )


def decision_tables(summary: dict[str, Any], placement: bool = True) -> list[DecisionTable]:
    """Every decision table `summary` (a quantize summary, as in meta.json's "quantize") has a record for;
    `placement=False` leaves out the float nodes (dozens on a transformer; the console keeps to the choices)."""
    tables = [auto_table(summary)] if "candidates" in summary else []
    tables += [block_table(runtime, record) for runtime, record in summary.get("block_search", {}).items()]
    if placement and summary.get("qdq_placement", {}).get("float"):
        tables.append(placement_table(summary["qdq_placement"]))
    return tables

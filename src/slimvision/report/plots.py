"""Accuracy-vs-cost scatter plots with the Pareto front highlighted."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402

from slimvision.io import atomic_write_bytes  # noqa: E402


def _write_png(figure, path: str | Path) -> Path:
    """Lay out, render and write `figure` as a PNG atomically, then free it."""
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def pareto_front(costs: Sequence[float], scores: Sequence[float]) -> list[int]:
    """Indices of points no other point beats on both lower cost and higher score, cheapest first."""
    order = sorted(range(len(costs)), key=lambda i: (costs[i], -scores[i]))
    front, best = [], float("-inf")
    for index in order:
        if scores[index] > best:
            front.append(index)
            best = scores[index]
    return front


LABEL_OFFSET = (4, 4)  # points right of and above a point
LABEL_LINE_HEIGHT = 11  # points between stacked labels (8 pt text plus a gap)


def label_offsets(costs: Sequence[float], heights: Sequence[float]) -> list[tuple[float, float]]:
    """Text offsets (points) for point labels: among points sharing a cost (a model and its INT8 or distilled copy),
    a label that would sit less than a line below the one above it is pushed down by the difference.

    `heights` are the points' vertical positions in points (display units), so closeness is judged as drawn.
    """
    offsets = [LABEL_OFFSET] * len(costs)
    groups: dict[float, list[int]] = {}
    for index, cost in enumerate(costs):
        groups.setdefault(cost, []).append(index)
    for members in groups.values():
        above = None  # vertical position of the previous label in this group
        for index in sorted(members, key=lambda i: -heights[i]):
            natural = heights[index] + LABEL_OFFSET[1]
            placed = natural if above is None else min(natural, above - LABEL_LINE_HEIGHT)
            offsets[index] = (LABEL_OFFSET[0], placed - heights[index])
            above = placed
    return offsets


def tradeoff_figure(labels: Sequence[str], costs: Sequence[float], scores: Sequence[float], cost_label: str, score_label: str, title: str):
    """A matplotlib figure: `scores` against `costs`, each point labelled (labels of equal costs kept apart), the Pareto front joined."""
    figure, axes = plt.subplots(figsize=(6, 4), dpi=120)
    axes.scatter(costs, scores, color="tab:blue")
    front = pareto_front(costs, scores)
    axes.plot([costs[i] for i in front], [scores[i] for i in front], color="tab:orange", linewidth=1, label="Pareto front")
    axes.margins(x=0.2, y=0.15)  # room for the labels inside the axes
    axes.set_xlabel(cost_label)
    axes.set_ylabel(score_label)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="best")
    figure.tight_layout()  # fixes the axes' placement, so data -> points below is what will be drawn
    heights = [axes.transData.transform((cost, score))[1] * 72 / figure.dpi for cost, score in zip(costs, scores)]
    for label, cost, score, offset in zip(labels, costs, scores, label_offsets(costs, heights)):
        moved = offset != LABEL_OFFSET  # a label pushed away from its point gets a thin line to it
        axes.annotate(label, (cost, score), textcoords="offset points", xytext=offset, fontsize=8, va="bottom",
                      arrowprops={"arrowstyle": "-", "color": "gray", "linewidth": 0.5} if moved else None)
    return figure


def tradeoff_plot(labels: Sequence[str], costs: Sequence[float], scores: Sequence[float], path: str | Path, cost_label: str, score_label: str, title: str) -> Path:
    """Write a PNG scatter of `scores` against `costs`, labelled, with the Pareto front joined."""
    return _write_png(tradeoff_figure(labels, costs, scores, cost_label, score_label, title), path)


def width_chart(widths: dict[str, list[int | None]], path: str | Path, title: str) -> Path:
    """Write a PNG bar chart of each conv layer's output channels before and after pruning."""
    names = list(widths)
    positions = range(len(names))
    figure, axes = plt.subplots(figsize=(max(6, 0.3 * len(names) + 2), 4), dpi=110)
    axes.bar([p - 0.2 for p in positions], [widths[n][0] or 0 for n in names], width=0.4, label="before", color="tab:gray")
    axes.bar([p + 0.2 for p in positions], [widths[n][1] for n in names], width=0.4, label="after", color="tab:blue")
    axes.set_xticks(list(positions))
    axes.set_xticklabels(names, rotation=90, fontsize=7)
    axes.set_ylabel("output channels")
    axes.set_title(title)
    axes.legend()
    return _write_png(figure, path)


def trajectory_plot(steps: Sequence[float], series: dict[str, Sequence[float]], path: str | Path, step_label: str, value_label: str, title: str) -> Path:
    """Write a PNG line chart of one or more named series over `steps` (a search's trajectory)."""
    figure, axes = plt.subplots(figsize=(6, 4), dpi=120)
    for name, values in series.items():
        axes.plot(list(steps), list(values), marker="o", markersize=3, label=name)
    axes.set_xlabel(step_label)
    axes.set_ylabel(value_label)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize=8)
    return _write_png(figure, path)

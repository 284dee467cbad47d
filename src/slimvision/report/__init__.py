"""Reports: markdown tables, accuracy-vs-cost plots, and a run's measured summary as markdown + self-contained HTML."""

from slimvision.report.markdown import markdown_table
from slimvision.report.plots import pareto_front, tradeoff_plot, trajectory_plot, width_chart
from slimvision.report.run_report import table_cells, write_report
from slimvision.report.summary import ArtifactEntry, measure_entries

__all__ = ["ArtifactEntry", "markdown_table", "measure_entries", "pareto_front", "table_cells", "tradeoff_plot", "trajectory_plot", "width_chart", "write_report"]

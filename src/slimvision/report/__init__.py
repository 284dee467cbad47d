"""Reports: markdown tables and accuracy-vs-cost plots of measured results."""

from slimvision.report.markdown import markdown_table
from slimvision.report.plots import tradeoff_plot

__all__ = ["markdown_table", "tradeoff_plot"]

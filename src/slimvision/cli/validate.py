"""Option checks that run while the command line is parsed, before any work starts or any file is written.

Integer bounds use Typer's own `min=`/`max=`; floats need these callbacks because a range check
alone lets NaN through (every comparison with NaN is false).
"""

from __future__ import annotations

import math
from typing import Optional

import typer


def finite_positive(value: Optional[float]) -> Optional[float]:
    """Typer callback: a finite number > 0 (learning rates, temperatures)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"must be a finite number > 0, got {value}")
    return value


def finite_non_negative(value: Optional[float]) -> Optional[float]:
    """Typer callback: a finite number >= 0 (tolerances, thresholds, weight decay)."""
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise typer.BadParameter(f"must be a finite number >= 0, got {value}")
    return value


def fraction(value: Optional[float]) -> Optional[float]:
    """Typer callback: a number in [0, 1) (label smoothing, a share of the epochs)."""
    if value is not None and not (math.isfinite(value) and 0 <= value < 1):
        raise typer.BadParameter(f"must be in [0, 1), got {value}")
    return value


OVERWRITE_HELP = "Replace an existing --out (never one that is, contains or lies inside an input)."

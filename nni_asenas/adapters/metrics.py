"""NNI's metric convention, shared by the strategy and the tuner: a number, or a dict read at ``"default"``."""

from __future__ import annotations

import math
from typing import Any, Mapping

__all__ = ["finite_number", "metric_score"]


def finite_number(value: Any) -> float | None:
    """``value`` as a float if it is a finite int or float (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def metric_score(metric: Any) -> float | None:
    """The score of a reported metric (a number, or a dict with ``"default"``); None if missing, not a number or
    not finite: the trial counts as failed."""
    if isinstance(metric, Mapping):
        metric = metric.get("default")
    return finite_number(metric)

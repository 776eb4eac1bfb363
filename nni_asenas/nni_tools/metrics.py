"""NNI's metric convention, shared by the strategy and the tuner: a number, or a dict read at ``"default"``.

A trial whose data (not its architecture) stopped it reports ``{"data_error": "<one line>"}`` instead, with no
``default`` (the ImageNet trial does, see :mod:`nni_asenas.imagenet.train`): :func:`data_error` reads it.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Mapping

__all__ = ["data_error", "describe_metric", "finite_number", "metric_score"]

_logger = logging.getLogger(__name__)


def describe_metric(value: Any, limit: int = 120) -> str:
    """``repr(value)`` cut to ``limit`` characters, also for ints too long to print (Python refuses over 4300
    digits): safe in a log line whatever a trial reported."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4 * limit:
        return f"<an int of about {int(value.bit_length() * math.log10(2)) + 1} digits>"
    try:
        text = repr(value)
    except ValueError:  # a huge int inside a container
        return f"<a {type(value).__name__} holding a number too long to print>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def finite_number(value: Any) -> float | None:
    """``value`` as a float if it is a finite int or float (not a bool), else None. An int too large for a float
    (``10**400``) is None too, with a log line: a metric no trial can mean, never an OverflowError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        value = float(value)
    except OverflowError:
        _logger.warning("metric %s is too large for a float: counted as an invalid result", describe_metric(value))
        return None
    return value if math.isfinite(value) else None


def metric_score(metric: Any) -> float | None:
    """The score of a reported metric (a number, or a dict with ``"default"``); None if missing, not a number or
    not finite: the trial counts as failed."""
    if isinstance(metric, Mapping):
        metric = metric.get("default")
    return finite_number(metric)


def data_error(metric: Any) -> str | None:
    """The message of a metric that says the trial's data was at fault (``{"data_error": "..."}`` without a
    ``default``), else None."""
    if isinstance(metric, Mapping) and "default" not in metric and isinstance(metric.get("data_error"), str):
        return metric["data_error"]
    return None

"""What NNI 3.0's trial API does not expose publicly: the id of the parameters a trial received.

The package's trials report that id in their final metric (``parameter_id``), so whoever reads a metric (web UI,
REST API, ``nnictl experiment export``) knows which parameters produced it, whatever NNI's listing says: NNI 3.0
without ``nni-asenas nni-patch apply`` may list a trial with another trial's parameters. The id is the one the
tuner logged for the proposal (``parameter N = proposal ...`` in the dispatcher log) and the ``parameterId`` NNI
stores with the metric.
"""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["received_parameter_id", "with_parameter_id"]


def received_parameter_id() -> int | None:
    """The id of the parameters ``nni.get_next_parameter()`` returned in this process; None before that call, outside
    NNI, or in an NNI that keeps the record elsewhere."""
    import nni.trial

    record = getattr(nni.trial, "_params", None)  # NNI 3.0 keeps the received ParameterRecord here
    parameter_id = record.get("parameter_id") if isinstance(record, Mapping) else None
    if isinstance(parameter_id, int) and not isinstance(parameter_id, bool):
        return parameter_id
    return None


def with_parameter_id(metric: Mapping[str, Any]) -> dict[str, Any]:
    """``metric`` plus ``parameter_id`` (:func:`received_parameter_id`) when it is known."""
    parameter_id = received_parameter_id()
    return dict(metric) if parameter_id is None else {**metric, "parameter_id": parameter_id}

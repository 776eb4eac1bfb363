"""ASE-NAS over the MobileNet-like space scored by an accuracy predictor, optionally re-scoring the best on a supernet.

:func:`search_with_predictor` is the MobileNet-like route (:func:`~nni_asenas.imagenet.space_search.run_mobilenet_search`)
with ``predictor.score`` as the evaluator (``evaluator.kind`` ``predictor``): thousands of queries take seconds. With
a ``rescore`` evaluator (sub-nets of a supernet, :func:`~nni_asenas.imagenet.supernet_search.build_search_evaluator`
or :func:`~nni_asenas.imagenet.ofa.build_ofa_evaluator`), the best predicted architectures are measured and the best
measured one is the result.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Iterable, Mapping

from nni_asenas.config import AseNasConfig
from nni_asenas.errors import UsageError
from nni_asenas.imagenet.space import MAX_MADDS, count_madds, count_params
from nni_asenas.imagenet.space_search import run_mobilenet_search

__all__ = ["DEFAULT_QUERIES", "search_with_predictor"]

#: Predictor queries of a search unless told otherwise: a predictor answers in well under a millisecond.
DEFAULT_QUERIES = 1000


def search_with_predictor(predictor: Any, *, max_queries: int = DEFAULT_QUERIES, seed: int = 0,
                          max_madds: float = MAX_MADDS, config: AseNasConfig | str | None = None,
                          initial_architectures: Iterable[Any] = (),
                          rescore: Callable[[Mapping[str, Any]], float] | None = None, n_rescore: int = 0,
                          on_query: Callable[[dict[str, Any]], None] | None = None,
                          evaluator: Mapping[str, Any] | None = None, **settings: Any) -> dict[str, Any]:
    """ASE-NAS for ``max_queries`` queries of ``predictor`` (an object with ``score(arch) -> top-1 percent``, such
    as :class:`~nni_asenas.imagenet.predictor.AccuracyPredictor`) under the MAdds limit at 224 px: the
    ``result.json`` document, whose ``top1`` values are *predicted* top-1.

    With ``rescore`` (an ``arch -> top-1`` evaluator on a supernet), the ``n_rescore`` best predicted distinct
    architectures are measured (``rescored``) and ``best`` is the best measured one (``best_predicted`` keeps the
    predictor's pick); a failed measurement is recorded with its error, never fatal. ``evaluator`` adds facts (the
    predictor's file, ...) to the result's ``evaluator`` object.
    """
    if isinstance(n_rescore, bool) or not isinstance(n_rescore, int) or n_rescore < 0:
        raise UsageError(f"n_rescore must be an integer >= 0, got {n_rescore!r}")
    if n_rescore and rescore is None:
        raise UsageError("n_rescore needs a rescore evaluator")
    result = run_mobilenet_search(
        predictor.score, max_queries=max_queries, evaluator={"kind": "predictor", **dict(evaluator or {})}, seed=seed,
        max_madds=max_madds, initial_architectures=initial_architectures, config=config, on_query=on_query,
        **settings)
    if rescore is not None and n_rescore > 0:
        measured = _rescore_best(result["trajectory"], rescore, n_rescore)
        scored = [record for record in measured if record["top1"] is not None]
        result["rescored"] = measured
        result["best_predicted"] = result["best"]
        result["best"] = max(scored, key=lambda record: record["top1"]) if scored else None
    return result


def _rescore_best(trajectory: list[dict[str, Any]], rescore: Callable[[Mapping[str, Any]], float],
                  n_rescore: int) -> list[dict[str, Any]]:
    """The ``n_rescore`` best predicted distinct architectures of ``trajectory``, measured by ``rescore``."""
    distinct: dict[str, dict[str, Any]] = {}
    for entry in sorted((entry for entry in trajectory if entry["top1"] is not None), key=lambda entry: -entry["top1"]):
        distinct.setdefault(json.dumps(entry["arch"]), entry)
    measured = []
    for entry in list(distinct.values())[:n_rescore]:
        arch = entry["arch"]
        record: dict[str, Any] = {"arch": arch, "predicted_top1": entry["top1"], "madds": count_madds(arch),
                                  "params": count_params(arch)}
        try:
            value = float(rescore(arch))
            record["top1"] = value if math.isfinite(value) else None
        except Exception as exc:  # noqa: BLE001 - a failed re-score is reported, the others still count
            message = str(exc).splitlines()[0] if str(exc) else ""
            record["top1"], record["error"] = None, f"{type(exc).__name__}: {message}"
        measured.append(record)
    return measured

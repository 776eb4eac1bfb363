"""The search loop every route shares: ask the searcher, evaluate the proposal, tell the result, until a stop rule.

:func:`run_search` knows no NNI, no engine and no search space. A route (the NAS-Bench-201 simulator, the supernet
search, the predictor search) builds the searcher with its decisions and constraint, gives an ``evaluate(arch)``
and its stop rule, and turns the :class:`SearchResult` into its ``result.json`` document
(:meth:`SearchResult.document`, schema in :mod:`nni_asenas.search.result`).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence

from nni_asenas.search.result import result_document

if TYPE_CHECKING:  # the searcher needs torch; the loop itself does not (the tuner imports this package at start-up)
    from nni_asenas.core.searcher import Observation, Proposal

__all__ = ["Query", "STOPPED_BY_MAX_QUERIES", "STOPPED_BY_RULE", "STOPPED_SPACE_EXHAUSTED", "SearchResult",
           "Searcher", "run_search"]

_logger = logging.getLogger(__name__)

#: Values of :attr:`SearchResult.stopped`.
STOPPED_BY_MAX_QUERIES = "max_queries"
STOPPED_BY_RULE = "stop rule"
STOPPED_SPACE_EXHAUSTED = "space exhausted"


class Searcher(Protocol):
    """What the loop needs of a searcher (:class:`~nni_asenas.core.searcher.AseNasSearcher` is one)."""

    def ask(self) -> Proposal | None: ...

    def tell(self, proposal_id: int, score: float | None) -> None: ...

    @property
    def candidates(self) -> list[Observation]: ...


@dataclass(frozen=True)
class Query:
    """One evaluated proposal of a search.

    ``value`` is what ``evaluate`` returned, in the route's unit (None: the evaluation failed and ``error`` says
    why); ``best_value`` is the best value so far, this one included; ``seconds`` the wall time from the start of
    the search to the end of this query. ``number`` counts from 1.
    """

    number: int
    proposal: Proposal
    value: float | None
    best_value: float | None
    seconds: float
    error: str | None = None

    @property
    def arch(self) -> dict[str, Any]:
        return self.proposal.arch


@dataclass(frozen=True)
class SearchResult:
    """What :func:`run_search` returns: every query in order, the searcher's final candidates, the best query and
    why the search stopped (:data:`STOPPED_BY_MAX_QUERIES`, :data:`STOPPED_BY_RULE`, :data:`STOPPED_SPACE_EXHAUSTED`),
    with the measured time spent deciding (ask and tell), evaluating, and in all."""

    queries: tuple[Query, ...]
    candidates: tuple[Observation, ...]
    best: Query | None
    stopped: str
    max_queries: int | None
    decision_seconds: float
    evaluation_seconds: float
    wall_seconds: float

    @property
    def failed_queries(self) -> int:
        return sum(query.value is None for query in self.queries)

    @property
    def decision_ms_per_query(self) -> float:
        return 1000.0 * self.decision_seconds / max(len(self.queries), 1)

    @property
    def evaluation_seconds_per_query(self) -> float:
        return self.evaluation_seconds / max(len(self.queries), 1)

    def document(self, *, strategy: str, space: str, seed: int, settings: Mapping[str, Any],
                 best: Mapping[str, Any] | None, candidates: Sequence[Any], trajectory: Sequence[Mapping[str, Any]],
                 **fields: Any) -> dict[str, Any]:
        """The ``result.json`` document of this search (:func:`~nni_asenas.search.result.result_document`): the
        counts and measured times come from here; the route gives its own form of the best query, the candidates
        and the trajectory, and its own ``fields``."""
        return result_document(
            strategy=strategy, space=space, seed=seed, queries=len(self.queries), failed_queries=self.failed_queries,
            max_queries=self.max_queries, best=best, settings=settings, candidates=candidates, trajectory=trajectory,
            decision_ms_per_query=self.decision_ms_per_query,
            evaluation_seconds_per_query=self.evaluation_seconds_per_query, wall_seconds=self.wall_seconds, **fields,
        )


def run_search(
    searcher: Searcher,
    evaluate: Callable[[dict[str, Any]], float],
    *,
    max_queries: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_query: Callable[[Query], None] | None = None,
    score_unit: float = 1.0,
    failures: tuple[type[BaseException], ...] = (RuntimeError, ValueError),
) -> SearchResult:
    """Ask ``searcher`` for proposals and evaluate them until ``max_queries`` queries are done, ``should_stop()``
    says so (checked before each query: a simulated budget, a deadline), or the searcher has nothing left.

    ``evaluate(arch)`` returns a value where higher is better; the searcher is told ``value / score_unit`` (routes
    that measure percent pass 100, so the searcher sees fractions). An evaluation that raises one of ``failures``
    or returns NaN or inf is a failed query: the searcher is told None and the search goes on. ``on_query`` is called
    with each :class:`Query` once the searcher knows its result (progress display). The loop is also where a known
    query budget (``max_queries``) would reach a searcher that plans with one.
    """
    if max_queries is not None and (isinstance(max_queries, bool) or not isinstance(max_queries, int)
                                    or max_queries < 0):
        raise ValueError(f"max_queries must be an integer >= 0 or None, got {max_queries!r}")
    if not (score_unit > 0 and math.isfinite(score_unit)):
        raise ValueError(f"score_unit must be a positive number, got {score_unit!r}")
    started = time.perf_counter()
    queries: list[Query] = []
    best: Query | None = None
    best_value: float | None = None
    decision_seconds = evaluation_seconds = 0.0
    stopped = STOPPED_SPACE_EXHAUSTED
    while True:
        if max_queries is not None and len(queries) >= max_queries:
            stopped = STOPPED_BY_MAX_QUERIES
            break
        if should_stop is not None and should_stop():
            stopped = STOPPED_BY_RULE
            break
        tick = time.perf_counter()
        proposal = searcher.ask()
        decision_seconds += time.perf_counter() - tick
        if proposal is None:  # every valid architecture has been proposed
            break
        number = len(queries) + 1
        tick = time.perf_counter()
        value, error = _evaluate(evaluate, proposal.arch, failures)
        evaluation_seconds += time.perf_counter() - tick
        if error is not None:
            _logger.warning("query %d (proposal %d) failed: %s", number, proposal.id, error)
        tick = time.perf_counter()
        searcher.tell(proposal.id, None if value is None else value / score_unit)
        decision_seconds += time.perf_counter() - tick
        improved = value is not None and (best_value is None or value > best_value)
        if improved:
            best_value = value
        query = Query(number, proposal, value, best_value, time.perf_counter() - started, error)
        if improved:
            best = query
        queries.append(query)
        _logger.debug("query %d (proposal %d, %s): %s -> %s", number, proposal.id, proposal.kind, proposal.arch, value)
        if on_query is not None:
            on_query(query)
    _logger.info("search stopped (%s) after %d queries; best %s", stopped, len(queries),
                 "none" if best is None else f"{best.value:.6g} (query {best.number}, proposal {best.proposal.id})")
    return SearchResult(tuple(queries), tuple(searcher.candidates), best, stopped, max_queries, decision_seconds,
                        evaluation_seconds, time.perf_counter() - started)


def _evaluate(evaluate: Callable[[dict[str, Any]], float], arch: dict[str, Any],
              failures: tuple[type[BaseException], ...]) -> tuple[float | None, str | None]:
    """``(value, None)``, or ``(None, why)`` for a failed evaluation."""
    try:
        value = float(evaluate(arch))
    except failures as exc:
        return None, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if not math.isfinite(value):
        return None, f"non-finite value {value}"
    return value, None

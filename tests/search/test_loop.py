"""The one search loop: stop rules, failures, the unit the searcher is told, progress, and the result."""

from __future__ import annotations

import math
from typing import Any

import pytest

from nni_asenas.core.searcher import AseNasSearcher, Observation, Proposal
from nni_asenas.search.loop import (
    STOPPED_BY_MAX_QUERIES,
    STOPPED_BY_RULE,
    STOPPED_SPACE_EXHAUSTED,
    Query,
    run_search,
)
from nni_asenas.search.result import RESULT_KEYS


class ListSearcher:
    """Proposes the given architectures in order and records what it is told."""

    def __init__(self, archs: list[dict[str, Any]]) -> None:
        self.archs = archs
        self.told: list[tuple[int, float | None]] = []

    def ask(self) -> Proposal | None:
        if len(self.told) == len(self.archs):
            return None
        return Proposal(len(self.told), self.archs[len(self.told)], "random")

    def tell(self, proposal_id: int, score: float | None) -> None:
        self.told.append((proposal_id, score))

    @property
    def candidates(self) -> list[Observation]:
        return [Observation(pid, self.archs[pid], score, "random") for pid, score in self.told if score is not None]


ARCHS = [{"x": value} for value in (3.0, 7.0, 7.0, 1.0, 9.0)]


def test_every_query_is_told_in_the_searchers_unit_and_the_first_best_is_kept() -> None:
    searcher = ListSearcher(ARCHS)
    seen: list[Query] = []
    result = run_search(searcher, lambda arch: arch["x"], score_unit=100.0, on_query=seen.append)
    assert result.stopped == STOPPED_SPACE_EXHAUSTED and len(result.queries) == 5 and seen == list(result.queries)
    assert searcher.told == [(i, arch["x"] / 100.0) for i, arch in enumerate(ARCHS)]
    assert [q.number for q in result.queries] == [1, 2, 3, 4, 5]
    assert [q.best_value for q in result.queries] == [3.0, 7.0, 7.0, 7.0, 9.0]
    assert result.best is result.queries[4]
    three_then_stop = run_search(ListSearcher(ARCHS[:3]), lambda arch: arch["x"])
    assert three_then_stop.best is three_then_stop.queries[1]  # a tie does not replace the first best


def test_max_queries_and_the_stop_rule_end_the_search_before_a_query() -> None:
    assert run_search(ListSearcher(ARCHS), lambda arch: 1.0, max_queries=2).stopped == STOPPED_BY_MAX_QUERIES
    spent: list[float] = []

    def evaluate(arch: dict[str, Any]) -> float:
        spent.append(arch["x"])
        return arch["x"]

    result = run_search(ListSearcher(ARCHS), evaluate, should_stop=lambda: sum(spent) >= 10)
    assert result.stopped == STOPPED_BY_RULE and spent == [3.0, 7.0]  # the query that crossed the budget counts
    assert run_search(ListSearcher(ARCHS), evaluate, max_queries=0).queries == ()
    with pytest.raises(ValueError, match="max_queries must be an integer >= 0"):
        run_search(ListSearcher(ARCHS), evaluate, max_queries=-1)
    with pytest.raises(ValueError, match="score_unit must be a positive number"):
        run_search(ListSearcher(ARCHS), evaluate, score_unit=0.0)


def test_failed_evaluations_are_told_as_none_and_the_search_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    def evaluate(arch: dict[str, Any]) -> float:
        if arch["x"] == 7.0:
            raise RuntimeError("out of memory\nsecond line")
        return math.nan if arch["x"] == 1.0 else arch["x"]

    searcher = ListSearcher(ARCHS)
    result = run_search(searcher, evaluate)
    assert [score for _, score in searcher.told] == [3.0, None, None, None, 9.0]
    assert result.failed_queries == 3 and [q.error for q in result.queries][1:4] == [
        "out of memory", "out of memory", "non-finite value nan"]
    assert "query 2 (proposal 1) failed: out of memory" in caplog.text
    with pytest.raises(KeyError):  # not a failure of the architecture: the caller's bug ends the search
        run_search(ListSearcher(ARCHS), lambda arch: arch["missing"])


def test_the_document_has_the_shared_keys_and_the_routes_own() -> None:
    searcher = AseNasSearcher({"a": [0, 1, 2], "b": [0, 1]}, seed=0, n_initial=2, k=2)
    result = run_search(searcher, lambda arch: float(arch["a"] + arch["b"]), max_queries=4)
    document = result.document(strategy="asenas", space="toy", seed=0, settings={"k": 2}, best={"arch": "x"},
                               candidates=[obs.arch for obs in result.candidates], trajectory=[{"query": 1}],
                               extra_field=5)
    assert list(document)[:6] == ["strategy", "space", "seed", "queries", "failed_queries", "max_queries"]
    assert set(RESULT_KEYS) <= set(document) and list(document)[-1] == "trajectory"
    assert document["queries"] == 4 and document["max_queries"] == 4 and document["extra_field"] == 5

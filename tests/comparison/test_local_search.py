"""Local search (White et al. 2021), the pure function behind the ``local-search`` peer."""

from __future__ import annotations

import numpy as np
import pytest

from nni_asenas.comparison.local_search import local_search, one_edit_neighbours


def test_one_edit_neighbours_are_every_single_change():
    ring = one_edit_neighbours((0, 2, 1), [2, 3, 4])
    assert len(ring) == 1 + 2 + 3 == len(set(ring))
    assert all(sum(a != b for a, b in zip(code, (0, 2, 1))) == 1 for code in ring)
    assert ring[0] == (1, 2, 1)  # decision by decision, options in order
    with pytest.raises(ValueError, match="2 decisions, the space 3"):
        one_edit_neighbours((0, 1), [2, 3, 4])


def counting(objective):
    calls: list[tuple[int, ...]] = []

    def query(code):
        calls.append(code)
        return objective(code)

    return calls, query


def test_climbs_to_the_optimum_of_a_unimodal_objective_and_stops_when_done():
    sizes = [5] * 4
    target = (3, 1, 4, 0)
    calls, query = counting(lambda code: -sum(a != b for a, b in zip(code, target)))
    scores = local_search(sizes, query, np.random.default_rng(0), lambda: len(calls) >= 100)
    assert len(calls) == len(set(calls)) == len(scores) == 100  # nothing queried twice; stopped at the budget
    assert scores[target] == 0
    assert list(scores) == calls  # the scores come back in query order


def test_restarts_from_a_local_optimum():
    # two basins: all-zeros is a local optimum; all-twos, the global one, is reached only from its own neighbours
    sizes = [3] * 4
    trap = (0, 0, 0, 0)

    def objective(code):
        return 10.0 if code == (2, 2, 2, 2) else float(code.count(0)) - 0.5 * code.count(2)

    calls, query = counting(objective)
    scores = local_search(sizes, query, np.random.default_rng(0), lambda: len(calls) >= 81)
    assert len(scores) == 81 and scores[(2, 2, 2, 2)] == 10.0
    seen, trapped_at = set(), None
    for i, code in enumerate(calls):
        seen.add(code)
        if trapped_at is None and {trap, *one_edit_neighbours(trap, sizes)} <= seen:
            trapped_at = i
    assert trapped_at is not None and trapped_at < 40  # it climbed into the trap first, then restarted elsewhere


def test_ends_when_the_whole_space_is_known():
    calls, query = counting(lambda code: float(sum(code)))
    scores = local_search([2, 2], query, np.random.default_rng(1), lambda: False)
    assert sorted(scores) == [(0, 0), (0, 1), (1, 0), (1, 1)] and len(calls) == 4


def test_a_constraint_keeps_every_query_and_every_move_within_it():
    sizes = [4] * 6
    admitted = lambda code: sum(code) <= 8  # noqa: E731
    queried = []

    def query(code):
        assert admitted(code)
        queried.append(code)
        return float(sum(w * v for w, v in zip(range(1, 7), code)))

    scores = local_search(sizes, query, np.random.default_rng(0), lambda: len(queried) >= 200, admits=admitted)
    assert len(scores) == 200 == len(set(queried))
    # the best under the limit: all 8 units on the heaviest decisions (3 + 3 + 2 on the last three)
    assert max(scores.values()) == 6 * 3 + 5 * 3 + 4 * 2

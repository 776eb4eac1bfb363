"""Local search, the NAS baseline of White, Nolen, Nelson, Zela and Hutter (2021), "Local search is state of the art
for NAS benchmarks": best-improvement hill climbing over one-edit neighbours with random restarts.

Pure functions on integer codes (one option index per decision); the benchmark harness runs them against the
simulated NAS-Bench-201 (:func:`nni_asenas.comparison.peers.run_local_search`).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

__all__ = ["local_search", "one_edit_neighbours"]

Arch = tuple[int, ...]


def one_edit_neighbours(code: Arch, sizes: Sequence[int]) -> list[Arch]:
    """Every architecture that differs from ``code`` in exactly one decision, decision by decision, options in order."""
    if len(code) != len(sizes):
        raise ValueError(f"code has {len(code)} decisions, the space {len(sizes)}")
    return [code[:position] + (option,) + code[position + 1:]
            for position, size in enumerate(sizes) for option in range(size) if option != code[position]]


def local_search(sizes: Sequence[int], query: Callable[[Arch], float], rng: np.random.Generator,
                 done: Callable[[], bool], admits: Callable[[Arch], bool] | None = None) -> dict[Arch, float]:
    """Best-improvement local search with random restarts until ``done()``; returns every score queried, in order.

    From a random unvisited architecture, query all its one-edit neighbours (in random order) and move to the best
    if it beats the current architecture; at a local optimum, restart from a new random unvisited architecture.
    ``query(code)`` returns a score (higher is better) and is called at most once per architecture: a repeat reads
    the recorded score at no cost. ``done()`` is asked before every query; the search also ends when every
    architecture has been queried. With ``admits`` (a constraint such as a MAdds limit), architectures it rejects are
    neither queried nor moved to, and restarts begin at admitted ones.
    """
    scores: dict[Arch, float] = {}
    total = math.prod(int(n) for n in sizes)

    def score(code: Arch) -> float | None:
        if code not in scores:
            if done():
                return None
            scores[code] = float(query(code))
        return scores[code]

    while len(scores) < total and not done():
        current = tuple(int(rng.integers(n)) for n in sizes)
        if current in scores or (admits is not None and not admits(current)):
            continue  # restarts begin at unvisited admitted architectures
        current_score = score(current)
        while current_score is not None:
            ring = one_edit_neighbours(current, sizes)
            best, best_score = None, current_score
            for i in rng.permutation(len(ring)):
                if admits is not None and not admits(ring[int(i)]):
                    continue
                value = score(ring[int(i)])
                if value is None:
                    return scores
                if value > best_score:
                    best, best_score = ring[int(i)], value
            if best is None:
                break  # a local optimum: restart
            current, current_score = best, best_score
    return scores

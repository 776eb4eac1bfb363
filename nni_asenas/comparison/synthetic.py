"""A synthetic search problem of another shape than NAS-Bench-201, with a known optimum: an NK landscape.

Used to check that what helps ASE-NAS on NAS-Bench-201 is not a trick of that table (``benchmarks/generality.py``):
the decisions are those of a real space (e.g. the 45 three-way decisions of the MobileNet-like ImageNet space), the
score of an architecture is the mean of one random term per decision that depends on it and on the next
``interactions`` decisions (Kauffman's NK model on a chain, terms drawn from a seeded normal distribution). The
landscape is rugged (many local optima) but its optimum is exact: dynamic programming over the chain.
"""

from __future__ import annotations

import itertools
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["NKLandscape"]


class NKLandscape:
    """Score of an architecture (one option index per decision) on a seeded chain NK landscape.

    Parameters
    ----------
    sizes
        Number of options of each decision, in chain order.
    interactions
        K: each term depends on its decision and the next K (fewer at the end of the chain).
    seed
        Seeds the random terms.
    """

    def __init__(self, sizes: Sequence[int], *, interactions: int = 2, seed: int = 0) -> None:
        if not sizes or any(int(n) < 1 for n in sizes):
            raise ValueError(f"sizes must be a non-empty list of positive option counts, got {list(sizes)!r}")
        if interactions < 0:
            raise ValueError(f"interactions must be >= 0, got {interactions!r}")
        self.sizes = [int(n) for n in sizes]
        self.interactions = int(interactions)
        self.seed = int(seed)
        rng = np.random.default_rng(seed)
        self._terms = [rng.standard_normal([self.sizes[j] for j in self._window(i)]) for i in range(len(self.sizes))]

    def __repr__(self) -> str:
        return f"NKLandscape(decisions={len(self.sizes)}, interactions={self.interactions}, seed={self.seed})"

    def _window(self, i: int) -> range:
        return range(i, min(i + self.interactions + 1, len(self.sizes)))

    def score(self, code: Sequence[int]) -> float:
        """Mean of the terms (higher is better)."""
        if len(code) != len(self.sizes):
            raise ValueError(f"code has {len(code)} decisions, the landscape {len(self.sizes)}")
        total = sum(float(term[tuple(code[j] for j in self._window(i))]) for i, term in enumerate(self._terms))
        return total / len(self.sizes)

    def score_arch(self, arch: Mapping[str, Any], decisions: Mapping[str, Sequence[Any]]) -> float:
        """:meth:`score` of ``{label: option}`` over ``decisions`` (the same order as ``sizes``)."""
        return self.score([list(options).index(arch[label]) for label, options in decisions.items()])

    def optimum(self) -> tuple[tuple[int, ...], float]:
        """The best architecture and its score, exactly (dynamic programming over the chain).

        The state is the options of the last K decisions chosen; a term is added once its window is complete."""
        n, k = len(self.sizes), self.interactions
        # value[state] = best sum of the terms complete so far, for the last min(K, i) options = state
        value: dict[tuple[int, ...], float] = {(): 0.0}
        choice: list[dict[tuple[int, ...], tuple[tuple[int, ...], int]]] = []
        for i in range(n):
            start = i - k  # the term of decision `start` becomes complete when decision i is chosen
            new_value: dict[tuple[int, ...], float] = {}
            back: dict[tuple[int, ...], tuple[tuple[int, ...], int]] = {}
            for state, total in value.items():
                for option in range(self.sizes[i]):
                    window = state + (option,)
                    gain = float(self._terms[start][window]) if start >= 0 else 0.0
                    new_state = window[1:] if len(window) > k else window
                    if new_state not in new_value or total + gain > new_value[new_state]:
                        new_value[new_state] = total + gain
                        back[new_state] = (state, option)
            value = new_value
            choice.append(back)
        # the last K terms have shorter windows: the final state holds their options
        best_state, best_total = None, -np.inf
        for state, total in value.items():
            first = n - len(state)
            tail = sum(float(self._terms[i][state[i - first:]]) for i in range(max(n - k, 0), n))
            if total + tail > best_total:
                best_state, best_total = state, total + tail
        assert best_state is not None
        code: list[int] = []
        state = best_state
        for i in range(n - 1, -1, -1):
            state, option = choice[i][state]
            code.append(option)
        return tuple(reversed(code)), best_total / n

    def brute_force_optimum(self) -> tuple[tuple[int, ...], float]:
        """The optimum by enumeration (small landscapes only; for tests)."""
        best = max(itertools.product(*(range(n) for n in self.sizes)), key=self.score)
        return tuple(best), self.score(best)

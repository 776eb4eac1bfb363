"""The NK landscape of the generality benchmark: seeded, rugged, with an exact optimum."""

from __future__ import annotations

import pytest

from nni_asenas.comparison.synthetic import NKLandscape


@pytest.mark.parametrize(("sizes", "k"), [([3, 3, 3, 3, 3], 2), ([2, 3, 4, 2, 3, 2], 1), ([3, 2], 3), ([4], 0)])
def test_dynamic_programming_finds_the_brute_force_optimum(sizes, k):
    for seed in range(3):
        landscape = NKLandscape(sizes, interactions=k, seed=seed)
        code, value = landscape.optimum()
        _, expected = landscape.brute_force_optimum()
        assert value == pytest.approx(expected)
        assert landscape.score(code) == pytest.approx(value)


def test_seeded_and_rugged():
    a, b = NKLandscape([3] * 8, seed=1), NKLandscape([3] * 8, seed=1)
    code = (0, 1, 2, 0, 1, 2, 0, 1)
    assert a.score(code) == b.score(code) != NKLandscape([3] * 8, seed=2).score(code)
    # more than one local optimum under one-edit moves: the landscape is not a single hill
    import itertools

    from nni_asenas.comparison.local_search import one_edit_neighbours

    small = NKLandscape([3] * 6, seed=0)
    local = sum(all(small.score(n) <= small.score(c) for n in one_edit_neighbours(c, [3] * 6))
                for c in itertools.product(range(3), repeat=6))
    assert local > 1


def test_arch_mapping_and_bad_input():
    decisions = {"x": ["a", "b"], "y": [3, 5, 7]}
    landscape = NKLandscape([2, 3], interactions=1, seed=0)
    assert landscape.score_arch({"x": "b", "y": 7}, decisions) == landscape.score((1, 2))
    with pytest.raises(ValueError, match="code has 1 decisions, the landscape 2"):
        landscape.score((0,))
    with pytest.raises(ValueError, match="sizes must be"):
        NKLandscape([])

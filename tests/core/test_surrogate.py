"""The surrogate that ranks ASE-NAS's draws: Gaussian-process regression on the edit distance."""

from __future__ import annotations

import numpy as np
import pytest

from nni_asenas.core import surrogate


def test_hamming_kernel_counts_differing_decisions():
    a = np.array([[0, 1, 2], [0, 1, 0]])
    b = np.array([[0, 1, 2], [1, 0, 0]])
    assert surrogate.hamming_kernel(a, b, 1.0) == pytest.approx(np.exp(-np.array([[0, 3], [1, 2]])))
    assert surrogate.hamming_kernel(a, b, 2.0)[0, 1] == pytest.approx(np.exp(-1.5))


def test_rating_follows_the_scores_and_interpolates():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 4, size=(60, 5))
    scores = (codes == 2).sum(axis=1) + 0.01 * rng.standard_normal(60)  # "option 2 everywhere" is best
    mean = surrogate.rate(codes, scores, codes, exploration=0.0)
    assert np.corrcoef(mean, scores)[0, 1] > 0.9  # close to the data it was fitted on
    best, worst = np.array([[2] * 5]), np.array([[0] * 5])
    assert surrogate.rate(codes, scores, best, exploration=0.0)[0] > surrogate.rate(codes, scores, worst, exploration=0.0)[0]


def test_scale_free_and_exploration_favours_the_unknown():
    codes = np.array([[0, 0, 0], [0, 0, 1]])
    scores = np.array([0.5, 0.6])
    queries = np.array([[0, 0, 2], [2, 2, 2]])  # one edit from both results / far from both
    greedy = surrogate.rate(codes, scores, queries, exploration=0.0)
    assert surrogate.rate(codes, 100 * scores, queries, exploration=0.0) == pytest.approx(greedy)  # any unit
    bold = surrogate.rate(codes, scores, queries, exploration=3.0)
    assert bold[1] - greedy[1] > bold[0] - greedy[0] > 0  # more uncertainty far away


def test_degenerate_inputs():
    queries = np.array([[0, 1], [1, 1]])
    assert surrogate.rate(np.zeros((0, 2), dtype=int), np.zeros(0), queries).tolist() == [0.0, 0.0]
    flat = surrogate.rate(np.array([[0, 1], [1, 0]]), np.array([0.3, 0.3]), queries, exploration=0.0)
    assert flat.tolist() == [0.0, 0.0]


def test_training_subset_keeps_the_best_and_the_most_recent():
    scores = np.arange(10.0)[::-1]  # the first results are the best
    assert surrogate.training_subset(scores, 20).tolist() == list(range(10))
    kept = surrogate.training_subset(scores, 4)
    assert kept.tolist() == [0, 1, 8, 9]


def test_hamming_kernel_equals_comparing_every_pair_bit_for_bit():
    """The kernel counts differences with a one-hot matrix product and looks exp up: the same numbers as the
    straightforward formula, also for negative codes (another path), empty inputs and other length scales."""
    rng = np.random.default_rng(0)
    for trial in range(60):
        n, m, width = rng.integers(0, 30), rng.integers(0, 30), rng.integers(0, 8)
        a, b = rng.integers(0, 6, size=(n, width)), rng.integers(0, 6, size=(m, width))
        if trial % 5 == 0:
            a = a - 2
        length_scale = float(rng.choice([0.5, 0.7, 1.0, 3.0]))
        distance = (a[:, None, :] != b[None, :, :]).sum(axis=-1)
        assert np.array_equal(surrogate.hamming_distances(a, b), distance)
        assert np.array_equal(surrogate.hamming_kernel(a, b, length_scale), np.exp(-distance / length_scale))

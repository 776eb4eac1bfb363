"""A cheap model of the scores seen so far, to rank the policy's draws: kernel regression on edit distance.

ASE-NAS draws several rollouts per proposal (:attr:`~nni_asenas.config.AseNasConfig.max_redraws`); with
``surrogate="gp"`` the searcher proposes the unvisited draw this model rates highest instead of the first one.
The model is the posterior of a Gaussian process whose kernel is ``exp(-hamming(a, b) / length_scale)``: the
number of decisions two architectures differ in, so it needs no features and suits any categorical space. Scores
are standardised first; the rating is ``mean + exploration * std`` (an upper confidence bound).

Pure functions on integer codes (one option index per decision); the linear algebra runs in torch, which the
searcher keeps on one thread (numpy's BLAS would start a thread pool per call on a busy machine).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["LENGTH_SCALE", "MAX_POINTS", "NOISE", "hamming_distances", "hamming_kernel", "rate", "training_subset"]

#: Kernel length scale in edits: one edit keeps e^-1 of the covariance.
LENGTH_SCALE = 1.0
#: Observation noise variance, relative to the variance of the standardised scores.
NOISE = 0.05
#: The model is fitted on at most this many results (the best half and the most recent half), so a long search
#: keeps a bounded cost per proposal.
MAX_POINTS = 256


def hamming_kernel(a: np.ndarray, b: np.ndarray, length_scale: float = LENGTH_SCALE) -> np.ndarray:
    """``exp(-d / length_scale)`` for every pair of rows of ``a`` (n, L) and ``b`` (m, L), d = differing decisions."""
    a, b = np.asarray(a), np.asarray(b)
    # d takes L + 1 values: look exp up rather than computing it per pair (the same numbers, several times faster)
    return np.exp(-np.arange(a.shape[-1] + 1) / float(length_scale))[hamming_distances(a, b)]


def hamming_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The number of differing decisions (int64) of every pair of rows of ``a`` (n, L) and ``b`` (m, L).

    Counted as ``L`` minus the matches of the rows' one-hot codes, in one matrix product: exact (small integers) and,
    for the surrogate's 256 x 256 pairs, about 20 times faster than comparing every pair decision by decision (which
    stays for codes with negative entries)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.size == 0 or b.size == 0 or min(a.min(), b.min()) < 0:
        return (a[:, None, :] != b[None, :, :]).sum(axis=-1)
    widths = np.maximum(a.max(axis=0), b.max(axis=0)) + 1  # options seen per decision
    offsets = np.cumsum(widths) - widths

    def one_hot(codes: np.ndarray) -> torch.Tensor:
        out = np.zeros((len(codes), int(widths.sum())), dtype=np.float32)
        out[np.arange(len(codes))[:, None], codes + offsets] = 1.0
        return torch.from_numpy(out)

    return (a.shape[1] - (one_hot(a) @ one_hot(b).T).round().long()).numpy()


def training_subset(scores: np.ndarray, max_points: int = MAX_POINTS) -> np.ndarray:
    """Indices (in order) of the results to fit on: all of them, or the best and the most recent
    ``max_points // 2`` each when there are more than ``max_points``."""
    n = len(scores)
    if n <= max_points:
        return np.arange(n)
    half = max_points // 2
    best = np.argsort(-np.asarray(scores), kind="stable")[:half]
    recent = np.arange(n - (max_points - half), n)
    return np.union1d(best, recent)


def rate(
    codes: np.ndarray,
    scores: np.ndarray,
    queries: np.ndarray,
    *,
    exploration: float = 1.0,
    length_scale: float = LENGTH_SCALE,
    noise: float = NOISE,
) -> np.ndarray:
    """Upper confidence bounds (in standard deviations of ``scores``) of the architectures ``queries`` (m, L),
    given evaluated ``codes`` (n, L) with ``scores`` (n,), higher is better.

    With no results every query rates 0; with one, or scores all equal, the mean is flat and only the
    uncertainty (distance to what was seen) separates the queries.
    """
    queries = np.asarray(queries)
    if len(codes) == 0:
        return np.zeros(len(queries))
    y = np.asarray(scores, dtype=np.float64)
    spread = y.std()
    y = (y - y.mean()) / spread if spread > 1e-12 * max(1.0, abs(y.mean())) else np.zeros_like(y)
    k_train = torch.from_numpy(hamming_kernel(codes, codes, length_scale))
    k_cross = torch.from_numpy(hamming_kernel(queries, codes, length_scale))
    k_train.diagonal().add_(noise)
    factor = torch.linalg.cholesky(k_train)
    alpha = torch.cholesky_solve(torch.from_numpy(y)[:, None], factor)
    mean = (k_cross @ alpha)[:, 0]
    if exploration == 0.0:
        return mean.numpy()
    v = torch.linalg.solve_triangular(factor, k_cross.T, upper=False)
    variance = (1.0 - (v * v).sum(dim=0)).clamp_min(0.0)
    return (mean + exploration * variance.sqrt()).numpy()

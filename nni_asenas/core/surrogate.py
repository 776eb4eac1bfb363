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

__all__ = ["LENGTH_SCALE", "MAX_POINTS", "NOISE", "hamming_kernel", "rate", "training_subset"]

#: Kernel length scale in edits: one edit keeps e^-1 of the covariance.
LENGTH_SCALE = 1.0
#: Observation noise variance, relative to the variance of the standardised scores.
NOISE = 0.05
#: The model is fitted on at most this many results (the best half and the most recent half), so a long search
#: keeps a bounded cost per proposal.
MAX_POINTS = 256


def hamming_kernel(a: np.ndarray, b: np.ndarray, length_scale: float = LENGTH_SCALE) -> np.ndarray:
    """``exp(-d / length_scale)`` for every pair of rows of ``a`` (n, L) and ``b`` (m, L), d = differing decisions."""
    distance = (np.asarray(a)[:, None, :] != np.asarray(b)[None, :, :]).sum(axis=-1)
    return np.exp(-distance / float(length_scale))


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

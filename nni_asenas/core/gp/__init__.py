"""A compact Gaussian process over categorical architectures: the model that rates ASE-NAS's proposals.

* :mod:`._kernel`: Matern 5/2 on a Hamming distance with one weight per decision (ARD);
* :mod:`._fit`: the weights, scale and noise by maximum a posteriori (L-BFGS-B, analytic gradients);
* :mod:`._acquisition`: log expected improvement;
* :func:`training_subset`: which results the model is fitted on, so a long search keeps a bounded cost.

:class:`GaussianProcess` fits on integer codes (one option index per decision) and their scores (higher is better,
standardised inside) and predicts the posterior mean and standard deviation of any codes, in standard deviations of
the scores. Pure numpy/scipy: the searcher holds numpy's BLAS to one thread.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import linalg

from nni_asenas.core.gp._acquisition import log_expected_improvement
from nni_asenas.core.gp._fit import MIN_NOISE, KernelParams, fit_kernel_params
from nni_asenas.core.gp._kernel import OneHot, matern52, weighted_distances

__all__ = ["MAX_POINTS", "MIN_NOISE", "GaussianProcess", "KernelParams", "log_expected_improvement",
           "training_subset"]

#: The model is fitted on at most this many results (the best half and the most recent half).
MAX_POINTS = 256


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


class GaussianProcess:
    """The posterior of a GP on ``codes`` (n, L) with ``scores`` (n,) over decisions of ``sizes``.

    ``params`` None fits the hyperparameters (:func:`fit_kernel_params`); given ones are reused (a cheap update when
    only the data changed). Scores are standardised (mean 0, standard deviation 1; all equal: zeros).
    """

    def __init__(self, codes: np.ndarray, scores: np.ndarray, sizes: Sequence[int],
                 params: KernelParams | None = None) -> None:
        self.one_hot = OneHot(np.asarray(sizes))
        self.codes = np.asarray(codes, dtype=np.int64)
        y = np.asarray(scores, dtype=np.float64)
        centre = float(y.mean()) if len(y) else 0.0
        spread = float(y.std()) if len(y) else 0.0
        self.y = (y - centre) / spread if spread > 1e-12 * max(1.0, abs(centre)) else np.zeros_like(y)
        self.x = self.one_hot.encode(self.codes)
        self.params = fit_kernel_params(self.x, self.y, self.one_hot) if params is None else params
        covariance = self.params.scale * matern52(self._distances(self.x))[0]
        covariance[np.diag_indices_from(covariance)] += self.params.noise
        self._factor = linalg.cholesky(covariance, lower=True, check_finite=False)
        self._alpha = linalg.cho_solve((self._factor, True), self.y, check_finite=False)

    @property
    def best(self) -> float:
        """The best standardised score seen (the incumbent of the expected improvement)."""
        return float(self.y.max()) if len(self.y) else 0.0

    def _distances(self, queries: np.ndarray) -> np.ndarray:
        return weighted_distances(queries, self.x, self.params.weights, self.one_hot.decision)

    def predict(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of ``codes`` (m, L), in standardised units."""
        cross = self.params.scale * matern52(self._distances(self.one_hot.encode(codes)))[0]
        mean = cross @ self._alpha
        v = linalg.solve_triangular(self._factor, cross.T, lower=True, check_finite=False)
        variance = np.maximum(self.params.scale - (v * v).sum(axis=0), 1e-12)
        return mean, np.sqrt(variance)

    def log_expected_improvement(self, codes: np.ndarray) -> np.ndarray:
        """log EI of ``codes`` over the best score seen."""
        mean, std = self.predict(codes)
        return log_expected_improvement(mean, std, self.best)

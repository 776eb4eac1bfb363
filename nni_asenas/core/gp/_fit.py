"""The model's hyperparameters, fitted by maximum a posteriori on the scores seen.

One weight per decision (its inverse squared length scale: how much differing in it matters), the kernel scale and
the noise variance, all searched in log space by L-BFGS-B with the analytic gradient of the log marginal likelihood
plus a weak prior (the prior of Optuna's ``GPSampler``: a penalty on very small and very large weights, Gamma(2, 1)
on the scale, Gamma(1.1, 30) on the noise). Every fit starts from the same point (all ones, noise 1e-2), so a fit is
a pure function of the data: a resumed search refits to the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg, optimize

from nni_asenas.core.gp._kernel import OneHot, matern52, weighted_distances

__all__ = ["KernelParams", "MIN_NOISE", "fit_kernel_params"]

#: Floor of the noise variance (standardised scores): keeps the Cholesky factorisation well defined.
MIN_NOISE = 1e-6
#: L-BFGS-B stops when the gradient's largest component is below this (Optuna's setting).
GTOL = 1e-2
_BOUNDS_LOG_WEIGHT = (-12.0, 8.0)
_BOUNDS_LOG_SCALE = (-8.0, 5.0)
_BOUNDS_LOG_NOISE = (-16.0, 2.0)


@dataclass(frozen=True)
class KernelParams:
    """``weights`` (L,): inverse squared length scale per decision; ``scale``: prior variance; ``noise``: noise
    variance (all for standardised scores)."""

    weights: np.ndarray
    scale: float
    noise: float

    @classmethod
    def initial(cls, n_decisions: int) -> KernelParams:
        return cls(np.ones(n_decisions), 1.0, 1e-2)


def _negative_log_posterior(raw: np.ndarray, x: np.ndarray, y: np.ndarray, one_hot: OneHot) -> tuple[float, np.ndarray]:
    n_decisions = len(one_hot.sizes)
    weights, scale = np.exp(raw[:n_decisions]), float(np.exp(raw[n_decisions]))
    noise_part = float(np.exp(raw[n_decisions + 1]))
    noise = noise_part + MIN_NOISE
    kernel, slope = matern52(weighted_distances(x, x, weights, one_hot.decision))
    covariance = scale * kernel
    covariance[np.diag_indices_from(covariance)] += noise
    try:
        factor = linalg.cholesky(covariance, lower=True, check_finite=False)
    except linalg.LinAlgError:
        return 1e25, np.zeros_like(raw)
    alpha = linalg.cho_solve((factor, True), y, check_finite=False)
    inverse = linalg.cho_solve((factor, True), np.eye(len(y)), check_finite=False)
    value = 0.5 * float(y @ alpha) + float(np.log(np.diag(factor)).sum())
    outer = 0.5 * (np.outer(alpha, alpha) - inverse)  # d log-likelihood / d covariance
    g = outer * slope
    # sum_ij g_ij [x_i and x_j differ in decision l] = sum(g) - sum over l's options of (x^T g x)_oo
    same = np.bincount(one_hot.decision, weights=((g @ x) * x).sum(axis=0), minlength=n_decisions)
    gradient = np.empty_like(raw)
    gradient[:n_decisions] = -scale * weights * (g.sum() - same)
    gradient[n_decisions] = -scale * float((outer * kernel).sum())
    gradient[n_decisions + 1] = -noise_part * float(np.trace(outer))
    # the prior (log density, up to a constant) and its gradient in log space
    value -= float(-(0.1 / weights + 0.1 * weights).sum() + np.log(scale) - scale + 0.1 * np.log(noise) - 30.0 * noise)
    gradient[:n_decisions] -= 0.1 / weights - 0.1 * weights
    gradient[n_decisions] -= 1.0 - scale
    gradient[n_decisions + 1] -= (0.1 / noise - 30.0) * noise_part
    return value, gradient


def fit_kernel_params(x: np.ndarray, y: np.ndarray, one_hot: OneHot) -> KernelParams:
    """The MAP hyperparameters for one-hot codes ``x`` (n, S) and standardised scores ``y`` (n,)."""
    n_decisions = len(one_hot.sizes)
    start = KernelParams.initial(n_decisions)
    raw = np.concatenate([np.log(start.weights), [np.log(start.scale), np.log(start.noise - MIN_NOISE)]])
    bounds = [_BOUNDS_LOG_WEIGHT] * n_decisions + [_BOUNDS_LOG_SCALE, _BOUNDS_LOG_NOISE]
    result = optimize.minimize(_negative_log_posterior, raw, args=(x, y, one_hot), jac=True, method="L-BFGS-B",
                               bounds=bounds, options={"gtol": GTOL})
    best = result.x if np.all(np.isfinite(result.x)) else raw
    return KernelParams(np.exp(best[:n_decisions]), float(np.exp(best[n_decisions])),
                        float(np.exp(best[n_decisions + 1])) + MIN_NOISE)

"""Acquisition: the logarithm of the expected improvement over the best score seen, computed stably far below it."""

from __future__ import annotations

import math

import numpy as np
from scipy import special

__all__ = ["log_expected_improvement"]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_SQRT_HALF_PI = math.sqrt(0.5 * math.pi)


def log_expected_improvement(mean: np.ndarray, std: np.ndarray, best: float) -> np.ndarray:
    """``log E[max(f - best, 0)]`` for ``f ~ N(mean, std^2)``: ``log(std) + log(phi(z) + z Phi(z))`` with
    ``z = (mean - best) / std``. Far below the best (z < -6), where ``phi + z Phi`` cancels to 0 in float64, it is
    written ``phi(z) (1 + z Phi(z) / phi(z))`` with the Mills ratio ``Phi / phi = sqrt(pi / 2) erfcx(-z / sqrt 2)``,
    which keeps the ranking of draws the model considers hopeless."""
    std = np.maximum(np.asarray(std, dtype=np.float64), 1e-12)
    z = (np.asarray(mean, dtype=np.float64) - best) / std
    out = np.empty_like(z)
    near = z > -6.0
    zn = z[near]
    out[near] = np.log(np.maximum(np.exp(-0.5 * zn * zn - _LOG_SQRT_2PI) + zn * special.ndtr(zn), 1e-300))
    zf = z[~near]
    mills = _SQRT_HALF_PI * special.erfcx(-zf / math.sqrt(2.0))
    out[~near] = -0.5 * zf * zf - _LOG_SQRT_2PI + np.log(np.maximum(1.0 + zf * mills, 1e-300))
    return out + np.log(std)

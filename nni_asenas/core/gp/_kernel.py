"""The kernel: Matern 5/2 on a weighted Hamming distance between categorical codes.

Two architectures differ in some decisions; decision ``l`` weighs ``w_l`` (its inverse squared length scale), and the
squared distance is the sum of the weights where they differ. Computed from one-hot codes as ``sum(w) - matches``, one
matrix product, which is exact and much cheaper than comparing every pair decision by decision.
"""

from __future__ import annotations

import numpy as np

__all__ = ["OneHot", "matern52", "weighted_distances"]


class OneHot:
    """One-hot codes of integer codes (n, L) over decisions of the given sizes, shared by the model's matrices."""

    def __init__(self, sizes: np.ndarray) -> None:
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.offsets = np.cumsum(self.sizes) - self.sizes
        self.width = int(self.sizes.sum())
        self.decision = np.repeat(np.arange(len(self.sizes)), self.sizes)  # column -> its decision

    def encode(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes, dtype=np.int64).reshape(-1, len(self.sizes))
        out = np.zeros((len(codes), self.width))
        out[np.arange(len(codes))[:, None], codes + self.offsets] = 1.0
        return out


def weighted_distances(a: np.ndarray, b: np.ndarray, weights: np.ndarray, decision: np.ndarray) -> np.ndarray:
    """Squared distances ``sum_l w_l [a_l != b_l]`` of every pair of one-hot rows of ``a`` (n, S) and ``b`` (m, S);
    ``decision`` maps each one-hot column to its decision."""
    matches = (a * weights[decision]) @ b.T
    return np.maximum(weights.sum() - matches, 0.0)


def matern52(squared: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Matern 5/2 of squared distances ``d2`` and its derivative with respect to ``d2``:
    ``(1 + r + r^2/3) exp(-r)`` with ``r = sqrt(5 d2)``."""
    r = np.sqrt(5.0 * squared)
    decay = np.exp(-r)
    return decay * (1.0 + r + r * r / 3.0), -(5.0 / 6.0) * (1.0 + r) * decay

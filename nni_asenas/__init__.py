"""ASE-NAS (Automatic Subspace Evoking for Efficient NAS) for Microsoft NNI.

The engine-free searcher (:class:`AseNasSearcher`) is imported eagerly; the NNI strategy (:class:`AseNas`) and
tuner (:class:`AseNasTuner`) are imported on first use, because importing ``nni.nas`` takes seconds.
"""

from __future__ import annotations

import importlib
from typing import Any

from .searcher import AseNasSearcher, Observation, Proposal

__version__ = "0.1.0"

__all__ = ["AseNas", "AseNasSearcher", "AseNasTuner", "Observation", "Proposal", "__version__"]

_LAZY = {"AseNas": "nni_asenas.strategy", "AseNasTuner": "nni_asenas.tuner"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nni_asenas' has no attribute {name!r}")

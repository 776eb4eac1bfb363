"""ASE-NAS (Automatic Subspace Evoking for Efficient NAS) for Microsoft NNI.

Public classes are imported on first use: the searcher needs torch and the NNI strategy ``nni.nas``, which take
seconds to import, while the table and the CLI's light commands need neither.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

__all__ = ["AseNas", "AseNasSearcher", "AseNasTuner", "Observation", "Proposal", "__version__"]

_LAZY = {
    "AseNas": "nni_asenas.strategy",
    "AseNasSearcher": "nni_asenas.searcher",
    "AseNasTuner": "nni_asenas.tuner",
    "Observation": "nni_asenas.searcher",
    "Proposal": "nni_asenas.searcher",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nni_asenas' has no attribute {name!r}")

"""ASE-NAS (Automatic Subspace Evoking for Efficient NAS) for Microsoft NNI.

Public classes are imported on first use: the searcher needs torch and the NNI strategy ``nni.nas``, which take
seconds to import, while the configuration, the table and the CLI's light commands need neither. Importing this
package changes nothing in NNI.

Layers, each importing only those before it (``tests/test_package_layout.py`` holds the allow-list):
``errors``, ``config``, ``threads`` (foundation); ``core`` (the method, no NNI); ``search`` (the one search loop,
its result and the reader of initial architectures); ``nni_tools`` (NNI 3.0 fixes, space codec, metrics, trial
API); ``nasbench`` and ``imagenet`` (the domains); ``adapters`` (the NNI strategy and tuner and their trial
ledger), ``comparison`` (the benchmark harness) and ``trials`` (programs NNI runs); ``cli`` (``nni-asenas``).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

__all__ = [
    "AseNas", "AseNasConfig", "AseNasSearcher", "AseNasTuner", "Observation", "PRESETS", "Proposal", "__version__",
]

_LAZY = {
    "AseNas": "nni_asenas.adapters.strategy",
    "AseNasConfig": "nni_asenas.config",
    "AseNasSearcher": "nni_asenas.core.searcher",
    "AseNasTuner": "nni_asenas.adapters.tuner",
    "Observation": "nni_asenas.core.searcher",
    "PRESETS": "nni_asenas.config",
    "Proposal": "nni_asenas.core.searcher",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nni_asenas' has no attribute {name!r}")

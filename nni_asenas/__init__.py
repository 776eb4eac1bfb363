"""ASE-NAS (Automatic Subspace Evoking for Efficient NAS) for Microsoft NNI.

Public classes are imported on first use: the searcher needs torch and the NNI strategy ``nni.nas``, which take
seconds to import, while the configuration, the table and the CLI's light commands need neither. Importing this
package changes nothing in NNI.

Layout: ``core`` (the method, no NNI), ``adapters`` (NNI strategy, tuner, space codec), ``nasbench``
(NAS-Bench-201/101 tables, simulator, NNI-schema databases), ``comparison`` (the benchmark harness and its peers),
``imagenet`` (MobileNet-like space and training pieces), ``trials`` (programs NNI runs), ``cli`` (``nni-asenas``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Any, Sequence

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

#: Modules of 0.1 that moved in 0.2. Importing an old name still works (it is the new module) and warns with a
#: DeprecationWarning; the old names go away in 0.3.
MOVED_MODULES = {
    "nni_asenas.searcher": "nni_asenas.core.searcher",
    "nni_asenas.strategy": "nni_asenas.adapters.strategy",
    "nni_asenas.tuner": "nni_asenas.adapters.tuner",
    "nni_asenas.compat": "nni_asenas.adapters.compat",
    "nni_asenas.nasbench201": "nni_asenas.nasbench.nb201",
    "nni_asenas.simulate": "nni_asenas.nasbench.simulator",
    "nni_asenas.benchmark": "nni_asenas.nasbench.databases",
    "nni_asenas.bench": "nni_asenas.comparison.harness",
    "nni_asenas.spaces": "nni_asenas.imagenet",
    "nni_asenas.spaces.mobilenet": "nni_asenas.imagenet.space",
    "nni_asenas.spaces.nasbench201": "nni_asenas.nasbench.nb201_space",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'nni_asenas' has no attribute {name!r}")


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the 0.1 module names of :data:`MOVED_MODULES` as their new modules, with a deprecation warning."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if fullname not in MOVED_MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: Any) -> ModuleType:
        new = MOVED_MODULES[spec.name]
        warnings.warn(f"{spec.name} moved to {new} in nni-asenas 0.2; the old name goes away in 0.3",
                      DeprecationWarning, stacklevel=3)
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        pass  # the new module is already executed


if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())

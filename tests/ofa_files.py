"""OFA's released files and OFA's tutorial code as references (imported by test modules; ``tests/`` is on sys.path).

The files (``acc_predictor.pth``, ``note10/{r}_lookup_table.yaml``, ``specialized/*/``) are third-party downloads:
tests find them through the environment variable :data:`OFA_FILES_VARIABLE` only. Where it is unset (a user's
clone) the tests that need them skip with a one-line reason; in CI (``CI`` set to true) they fail instead.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import types
from pathlib import Path
from typing import Any, NoReturn

import pytest

OFA_FILES_VARIABLE = "NNI_ASENAS_OFA_FILES"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> NoReturn:
    """Skip in a user's clone; fail in CI, where every test must run."""
    if in_ci():
        pytest.fail(f"{reason} (CI must run every test)", pytrace=False)
    pytest.skip(reason)


def ofa_files_folder() -> Path:
    """The folder of OFA's released files, checked; skips or fails (see :func:`skip_or_fail`) where it is not set."""
    value = os.environ.get(OFA_FILES_VARIABLE)
    if not value:
        skip_or_fail(f"{OFA_FILES_VARIABLE} is not set (the folder with OFA's acc_predictor.pth, note10/ and "
                     f"specialized/)")
    folder = Path(value)
    for needed in ("acc_predictor.pth", "note10/224_lookup_table.yaml", "specialized"):
        if not (folder / needed).exists():
            pytest.fail(f"{OFA_FILES_VARIABLE}={value}: no {needed} there", pytrace=False)
    return folder


def ofa_tutorial_module(name: str) -> types.ModuleType:
    """``ofa/tutorial/{name}.py`` of the installed ``ofa`` package, loaded alone.

    ``import ofa.tutorial`` would run its ``__init__``, which imports ImageNet helpers and ``gdown`` (not a
    dependency of ``ofa``); ``accuracy_predictor.py`` and ``latency_table.py`` need only torch, yaml and
    ``ofa.utils``. OFA's ``LatencyEstimator`` reads its table with ``yaml.load(fp)``, which PyYAML 6 refuses
    without a loader: the module gets a ``yaml`` whose ``load`` is ``yaml.load`` with the safe loader.
    """
    spec = importlib.util.find_spec("ofa")
    if spec is None or not spec.submodule_search_locations:
        skip_or_fail("the OFA reference tests need the test extra (pip install ofa)")
    path = Path(list(spec.submodule_search_locations)[0]) / "tutorial" / f"{name}.py"
    module_spec = importlib.util.spec_from_file_location(f"_ofa_tutorial_{name}", path)
    assert module_spec is not None and module_spec.loader is not None, path
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if hasattr(module, "yaml"):
        import yaml

        module.yaml = types.SimpleNamespace(load=functools.partial(yaml.load, Loader=yaml.SafeLoader))
    return module


def ofa_spec(arch: dict[str, Any], resolution: int) -> dict[str, list[int]]:
    """An architecture as OFA's tutorial spec ``{"ks", "e", "d", "r"}`` (fresh lists: OFA edits them)."""
    from nni_asenas.imagenet.ofa import arch_to_ofa

    blocks = {label: value for label, value in arch.items() if label != "resolution"}
    return {**arch_to_ofa(blocks), "r": [resolution]}

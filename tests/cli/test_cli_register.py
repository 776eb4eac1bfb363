"""``nni-asenas register`` makes ``tuner: {name: ASENAS}`` work, in a private NNI config directory."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from nni_asenas.adapters.tuner import AseNasTuner
from nni_asenas.cli import app as cli
from nni_asenas.cli.register import META_PATH
from nni_asenas.config import AseNasConfig


def test_meta_file_names_the_tuner() -> None:
    meta = yaml.safe_load(META_PATH.read_text())
    assert meta["algoType"] == "tuner" and meta["builtinName"] == "ASENAS"
    assert meta["className"] == "nni_asenas.adapters.tuner.AseNasTuner"
    AseNasTuner(**meta["classArgs"])


def test_register_then_nni_builds_the_tuner_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nni.tools.package_utils import create_builtin_class_instance, get_algo_meta

    monkeypatch.setenv("NNI_CONFIG_DIR", str(tmp_path))
    assert get_algo_meta("ASENAS") is None
    assert cli.main(["register"]) == 0
    assert "ASENAS" in (tmp_path / "registered_algorithms.yml").read_text()
    tuner = create_builtin_class_instance("ASENAS", {"k": 2, "max_queries": 9}, "tuners")
    assert isinstance(tuner, AseNasTuner)
    assert (tuner.config.k, tuner.config.n_steps, tuner.max_queries) == (2, AseNasConfig().n_steps, 9)

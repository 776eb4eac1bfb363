"""Every experiment config in experiments/ loads with NNI's own config loader, and its tuner accepts it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from nni.experiment.config import ExperimentConfig

from nni_asenas.adapters.tuner import AseNasTuner
from nni_asenas.nasbench.nb201 import BUDGET_SECONDS, DATASETS

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
CONFIGS = sorted(EXPERIMENTS.glob("*.yml"))


def test_the_nasbench201_experiments_exist() -> None:
    assert {p.name for p in CONFIGS} >= {f"nasbench201-{d}.yml" for d in DATASETS}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_nni_loads_the_config_and_builds_its_tuner(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    service = yaml.safe_load(path.read_text())["trainingService"]
    for machine in service.get("machineList", []):  # NNI's loader wants the (placeholder) key file to exist
        monkeypatch.setenv("HOME", str(tmp_path))
        key = Path(machine["sshKeyFile"]).expanduser()
        key.parent.mkdir(parents=True, exist_ok=True)
        key.write_text("placeholder\n")
    config = ExperimentConfig.load(str(path))
    config.validate()
    canonical = config.canonical_copy()  # paths resolved against the yml, search space read
    assert canonical.search_space, f"{path.name}: empty search space"
    module = re.search(r"-m\s+([\w.]+)", canonical.trial_command)
    if module and module.group(1).startswith("nni_asenas"):
        assert (Path(canonical.trial_code_directory) / (module.group(1).replace(".", "/") + ".py")).is_file()

    tuner_config: dict[str, Any] = canonical.json()["tuner"]
    if tuner_config.get("name", "").upper() == "ASENAS":  # registered name: register into a private NNI config
        monkeypatch.setenv("NNI_CONFIG_DIR", str(tmp_path))
        from nni.tools.nnictl.algo_management import read_reg_meta_list
        from nni.tools.package_utils import register_algo_meta

        from nni_asenas.cli.register import META_PATH

        for meta in read_reg_meta_list(str(META_PATH)):
            register_algo_meta(meta)
    from nni.__main__ import _create_algo  # what NNI's dispatcher runs to build the tuner

    tuner = _create_algo(tuner_config, "tuner")
    if isinstance(tuner, AseNasTuner):
        tuner.update_search_space(canonical.search_space)
        assert tuner.generate_parameters(0).keys() == canonical.search_space.keys()


@pytest.mark.parametrize("dataset", DATASETS)
def test_nasbench201_experiment_follows_the_protocol(dataset: str) -> None:
    config = yaml.safe_load((EXPERIMENTS / f"nasbench201-{dataset}.yml").read_text())
    assert config["trialConcurrency"] == 4
    assert config["trainingService"]["platform"] == "local"
    assert config["trialCommand"].split() == ["python3", "-m", "nni_asenas.trials.nasbench201", "--dataset", dataset]
    assert config["tuner"]["className"] == "nni_asenas.AseNasTuner"
    assert config["tuner"]["classArgs"]["budget_seconds"] == BUDGET_SECONDS[dataset]


def test_the_remote_experiment_is_the_cifar10_one_on_another_machine() -> None:
    local = yaml.safe_load((EXPERIMENTS / "nasbench201-cifar10.yml").read_text())
    remote = yaml.safe_load((EXPERIMENTS / "nasbench201-cifar10-remote.yml").read_text())
    assert remote["tuner"] == local["tuner"] and remote["trialConcurrency"] == local["trialConcurrency"]
    interpreter, *arguments = remote["trialCommand"].split()
    assert Path(interpreter).is_absolute() and arguments == local["trialCommand"].split()[1:]
    assert remote["nniManagerIp"] and remote["trainingService"]["platform"] == "remote"
    (machine,) = remote["trainingService"]["machineList"]
    assert {"host", "user", "sshKeyFile", "pythonPath"} <= set(machine) and "password" not in machine
    assert Path(machine["pythonPath"]) == Path(interpreter).parent

"""The ImageNet training library's settings: checked when made (errors name the setting), the programs' one source of
defaults, their flags mapped back in errors, and a run from Python equal to the program's run."""

from __future__ import annotations

import csv
import dataclasses
import json
import warnings
from pathlib import Path

import pytest

from nni_asenas.errors import UsageError
from nni_asenas.imagenet import supernet_train, train
from nni_asenas.imagenet.settings import RunSettings, SupernetSettings, TrainSettings
from nni_asenas.imagenet.space import decisions
from nni_asenas.trials import imagenet as trial_program
from nni_asenas.trials import supernet as supernet_program

warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module.*")


@pytest.mark.quick
@pytest.mark.parametrize("changes, message", [
    ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
    ({"epochs": 2.5}, "epochs must be at least 1, got 2.5"),
    ({"crop_pct": 1.5}, "crop_pct must be in (0, 1], got 1.5"),
    ({"momentum": float("nan")}, "momentum must be in [0, 1), got nan"),
    ({"opt": "adam"}, "opt must be one of sgd, rmsprop, got 'adam'"),
    ({"workers": -1}, "workers must be >= 0, got -1"),
    ({"seed": -1}, "seed must be an integer"),
    ({"randaugment": "2"}, "randaugment expects N,M"),
    ({"data": ""}, "data must be a dataset folder"),
    ({"ema_decay": 1.0}, "ema_decay must be in [0, 1), got 1"),
])
def test_a_bad_setting_is_one_line_naming_it(changes, message):
    with pytest.raises(UsageError) as caught:
        TrainSettings(**{"data": "d", **changes})
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


@pytest.mark.quick
def test_supernet_settings_check_their_own_fields_and_defaults():
    with pytest.raises(UsageError, match="random_subnets must be >= 0"):
        SupernetSettings(data="d", random_subnets=-1)
    with pytest.raises(UsageError, match="sampling must be one of sandwich, uniform"):
        SupernetSettings(data="d", sampling="all")
    with pytest.raises(UsageError, match="calib_images must be at least 1"):
        SupernetSettings(data="d", calib_images=0)
    supernet, trial = SupernetSettings(data="d"), TrainSettings(data="d")
    assert (supernet.epochs, supernet.weight_decay, supernet.max_madds) == (120, 3e-5, 0.0)
    assert (trial.epochs, trial.weight_decay, trial.max_madds) == (300, 4e-5, 600e6)
    with pytest.raises(dataclasses.FrozenInstanceError):
        trial.epochs = 1  # type: ignore[misc]
    assert trial.replace(epochs=5).epochs == 5
    with pytest.raises(UsageError, match="epochs must be at least 1"):
        trial.replace(epochs=0)


@pytest.mark.quick
@pytest.mark.parametrize("program, settings", [(trial_program, TrainSettings), (supernet_program, SupernetSettings)])
def test_the_programs_take_every_default_from_the_settings(program, settings):
    parsed = program.parse_settings(["--data", "d"])
    assert parsed == settings(data="d")
    fields = {field.name for field in dataclasses.fields(settings)}
    assert {action.dest for action in program.build_parser()._actions if action.dest != "help"} == fields


@pytest.mark.quick
def test_the_programs_name_flags_where_the_library_names_settings():
    with pytest.raises(UsageError, match=r"^--batch-size must be at least 1, got 0$"):
        trial_program.parse_settings(["--data", "d", "--batch-size", "0"])
    with pytest.raises(UsageError, match=r"^--max-bad-images-fraction must be in \[0, 1\), got 1$"):
        supernet_program.parse_settings(["--data", "d", "--max-bad-images-fraction", "1"])
    assert issubclass(TrainSettings, RunSettings) and issubclass(SupernetSettings, RunSettings)


def _without_timing(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return [{k: v for k, v in row.items() if k not in ("epoch_seconds", "train_images_per_s")}
                for row in csv.DictReader(handle)]


def test_a_run_from_python_equals_the_programs_run(image_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(train.nni, "report_intermediate_result", lambda value: None)
    monkeypatch.setattr(train.nni, "report_final_result", lambda value: None)
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({label: options[0] for label, options in decisions().items()}))
    common = {"data": str(image_folder), "img_size": 32, "width_mult": 0.25, "workers": 0, "batch_size": 6,
              "lr": 0.05, "warmup_epochs": 0.5, "log_interval": 1, "epochs": 1}
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in common.items()]

    result = train.run(TrainSettings(**common, arch=str(arch), output=str(tmp_path / "python")))
    assert trial_program.main([*flags, "--arch", str(arch), "--output", str(tmp_path / "program")]) == 0
    assert json.loads((tmp_path / "program" / "results.json").read_text()) == result
    assert _without_timing(tmp_path / "program" / "summary.csv") == _without_timing(tmp_path / "python" / "summary.csv")

    supernet = dict(common, holdout=6, calib_images=6, random_subnets=1, batch_size=12)
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in supernet.items()]
    result = supernet_train.run(SupernetSettings(**supernet, output=str(tmp_path / "supernet-python")))
    assert supernet_program.main([*flags, "--output", str(tmp_path / "supernet-program")]) == 0
    program_result = json.loads((tmp_path / "supernet-program" / "results.json").read_text())
    assert {k: v for k, v in program_result.items() if k != "checkpoint"} == \
        {k: v for k, v in result.items() if k != "checkpoint"}

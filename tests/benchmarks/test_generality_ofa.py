"""benchmarks/generality_ofa.py: kept runs read back, and Optuna's GPSampler kept moving under a limit."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import pytest
from benchmark_scripts import load_script
from ofa_files import ofa_files_folder

from nni_asenas.imagenet.space import decisions as mobilenet_decisions


def _script() -> ModuleType:
    return load_script("generality_ofa")


LIMITS: dict[str, float | None] = {"max_madds": 600e6, "max_latency_ms": None}


def test_a_kept_run_is_read_back_cut_to_the_budget(tmp_path):
    script = _script()
    script.keep_run(str(tmp_path), "optuna-gp", 3, LIMITS, 5, [1.0, 2.0, 3.0, 4.0, 5.0], 12.5)
    document = json.loads((tmp_path / "optuna-gp" / "seed-3" / "result.json").read_text())
    assert document["scores"] == [1.0, 2.0, 3.0, 4.0, 5.0] and document["limits"] == LIMITS
    assert [path.name for path in tmp_path.rglob("*") if path.is_file()] == ["result.json"]  # no partial file left
    assert script.stored_run(str(tmp_path), "optuna-gp", 3, LIMITS, 3) == ([1.0, 2.0, 3.0], 12.5)
    assert script.stored_run(str(tmp_path), "optuna-gp", 3, LIMITS, 5) == ([1.0, 2.0, 3.0, 4.0, 5.0], 12.5)


@pytest.mark.parametrize("strategy, seed, limits, queries", [
    ("optuna-gp", 3, LIMITS, 6),  # kept to fewer queries than asked: run again
    ("optuna-gp", 3, {"max_madds": 400e6, "max_latency_ms": None}, 5),  # another limit
    ("optuna-gp", 4, LIMITS, 5),  # another seed
    ("optuna-tpe-mv", 3, LIMITS, 5),  # another strategy
])
def test_a_kept_run_of_another_setting_is_not_read_back(tmp_path, strategy, seed, limits, queries):
    script = _script()
    script.keep_run(str(tmp_path), "optuna-gp", 3, LIMITS, 5, [1.0, 2.0, 3.0, 4.0, 5.0], 12.5)
    assert script.stored_run(str(tmp_path), strategy, seed, limits, queries) is None
    assert script.stored_run(None, "optuna-gp", 3, LIMITS, 5) is None


def test_the_slow_peers_kept_runs_are_read_back_and_the_others_run_again(tmp_path):
    script = _script()
    folder = str(ofa_files_folder())
    script.keep_run(str(tmp_path), "optuna-gp", 0, LIMITS, 3, [70.0, 71.0, 72.0], 99.0)
    script.keep_run(str(tmp_path), "random", 0, LIMITS, 3, [70.0, 71.0, 72.0], 99.0)
    runs = script.run_seed(folder, 600e6, None, {"optuna-gp": 3, "random": 3}, str(tmp_path), 0)
    assert runs["optuna-gp"] == ([70.0, 71.0, 72.0], 99.0)
    scores, _ = runs["random"]
    assert len(scores) == 3 and scores != [70.0, 71.0, 72.0]  # predicted top-1 of three random networks


class _Predictor:
    """More kernel and expand is better: the best networks lie beyond any MAdds-like limit."""

    def predict_one(self, arch: dict[str, Any]) -> float:
        return sum(value for label, value in arch.items() if label.endswith(("_kernel", "_expand"))) / 1000.0


@pytest.mark.slow
def test_gpsampler_reaches_its_budget_when_its_model_favours_networks_over_the_limit():
    pytest.importorskip("optuna")
    script = _script()
    over_after_start_up: list[dict[str, Any]] = []

    def within(arch: dict[str, Any]) -> bool:  # a limit on the same sizes the score rewards
        admitted = sum(value for label, value in arch.items() if label.endswith("_kernel")) <= 90
        if not admitted and len(objective.scores) >= 10:
            over_after_start_up.append(arch)
        return admitted

    objective = script.Objective(_Predictor(), 20, within)
    script.run_optuna(objective, mobilenet_decisions(), 0, "optuna-gp")
    # Told as failed, these would stall it: its model leaves them out and proposes the same region again.
    assert over_after_start_up
    assert len(objective.scores) == 20

"""One contract, three front ends: the engine-free searcher, the NNI strategy and the NNI tuner.

Every front end is driven through the same small space with the same scores, failures, NaN and constraint, and
must: propose the same architectures for the same seed; never propose an architecture twice; survive failed and
NaN trials; never propose an architecture the constraint rejects; and continue identically after a state round
trip (``state_dict`` through a file, then ``load_state_dict`` into a new instance). In the spirit of Optuna's
shared sampler tests and NNI's strategy sanity checks.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import nni
import pytest
import torch
from nni.mutable import Categorical, ExpressionConstraint
from nni.nas.benchmark import BenchmarkModelSpace
from nni.nas.benchmark.evaluator import BenchmarkEvaluator
from nni.nas.benchmark.space import SlimBenchmarkSpace
from nni.nas.execution import SequentialExecutionEngine

from nni_asenas import AseNas, AseNasSearcher, AseNasTuner
from nni_asenas.nni_tools.compat import CheckpointSerializer

DECISIONS: dict[str, list[Any]] = {"a": [0, 1, 2, 3], "b": [0, 1, 2], "c": [0, 1, 2], "d": [0, 1]}
SETTINGS: dict[str, Any] = {"k": 2, "n_steps": 2}


def constraint(arch: dict[str, Any]) -> bool:
    """Rejects 6 of the 72 architectures."""
    return not (arch["a"] == 0 and arch["c"] == 0)


def score(arch: dict[str, Any]) -> float | None:
    """A deterministic score with failures (None) and NaN results."""
    if arch["a"] == 3 and arch["b"] == 2:
        return None
    if arch["c"] == 2 and arch["d"] == 1:
        return math.nan
    return arch["a"] * 1.5 + arch["b"] - 0.5 * arch["d"] + (0.0, 0.7, 0.2)[arch["c"]]


def key(arch: dict[str, Any]) -> tuple:
    return tuple(sorted(arch.items()))


# ------------------------------------------------------------------------------------------- the three drivers


class SearcherDriver:
    name = "searcher"

    def __init__(self, seed: int) -> None:
        self.front = AseNasSearcher(DECISIONS, constraint=constraint, seed=seed, **SETTINGS)

    def run(self, n: int) -> list[dict[str, Any]]:
        archs = []
        for _ in range(n):
            proposal = self.front.ask()
            assert proposal is not None
            archs.append(proposal.arch)
            self.front.tell(proposal.id, score(proposal.arch))
        return archs

    def state(self) -> dict[str, Any]:
        return self.front.state_dict()

    def load(self, state: dict[str, Any]) -> None:
        self.front.load_state_dict(state)


class TunerDriver:
    name = "tuner"

    def __init__(self, seed: int) -> None:
        self.front = AseNasTuner(seed=seed, constraint=f"{__name__}:constraint", **SETTINGS)
        self.front.update_search_space({label: {"_type": "choice", "_value": values} for label, values in DECISIONS.items()})
        self.next_id = 0

    def run(self, n: int) -> list[dict[str, Any]]:
        archs = []
        for _ in range(n):
            pid, self.next_id = self.next_id, self.next_id + 1
            params = self.front.generate_parameters(pid)
            archs.append(params)
            value = score(params)
            if value is None:
                self.front.trial_end(pid, False)
            else:
                self.front.receive_trial_result(pid, params, value)
                self.front.trial_end(pid, True)
        return archs

    def state(self) -> dict[str, Any]:
        return {"tuner": self.front.state_dict(), "next_id": self.next_id}

    def load(self, state: dict[str, Any]) -> None:
        self.front.load_state_dict(state["tuner"])
        self.next_id = state["next_id"]


class _FormulaEvaluator(BenchmarkEvaluator):
    """Answers a sample with :func:`score` (a failure raises, as a crashing trial does)."""

    def __init__(self, space: SlimBenchmarkSpace) -> None:
        super().__init__()
        self.space = space

    def default_space(self) -> SlimBenchmarkSpace:  # type: ignore[override]
        return self.space

    def evaluate(self, sample: dict[str, Any]) -> Any:
        value = score(sample)
        if value is None:
            raise RuntimeError("this trial crashes")
        nni.report_final_result(value)
        return value


def formula_space() -> BenchmarkModelSpace:
    mutables: dict[str, Any] = {label: Categorical(values, label=label) for label, values in DECISIONS.items()}
    mutables["rule"] = ExpressionConstraint(mutables["a"] + mutables["c"] >= 1, label="rule")  # = constraint()
    return BenchmarkModelSpace(_FormulaEvaluator(SlimBenchmarkSpace(mutables)))


class StrategyDriver:
    name = "strategy"

    def __init__(self, seed: int) -> None:
        self.front = AseNas(seed=seed, **SETTINGS)
        self.space = formula_space()
        self.state_to_load: dict[str, Any] | None = None

    def run(self, n: int) -> list[dict[str, Any]]:
        engine = SequentialExecutionEngine(max_model_count=n, continue_on_failure=True)
        self.front.initialize(self.space, engine)
        if self.state_to_load is not None:
            self.front.load_state_dict(self.state_to_load)
            self.state_to_load = None
        self.front.run()
        return [{label: m.sample[label] for label in DECISIONS} for m in engine.list_models()]

    def state(self) -> dict[str, Any]:
        return self.front.state_dict()

    def load(self, state: dict[str, Any]) -> None:
        self.state_to_load = state


DRIVERS = [SearcherDriver, TunerDriver, StrategyDriver]


@pytest.fixture(params=DRIVERS, ids=lambda d: d.name)
def driver(request: pytest.FixtureRequest) -> Callable[[int], Any]:
    return request.param


# ------------------------------------------------------------------------------------------- the contract


def test_same_seed_same_proposals(driver: Any) -> None:
    assert driver(7).run(30) == driver(7).run(30)
    assert driver(7).run(30) != driver(8).run(30)


def test_no_duplicates_and_constraint_respected_until_the_space_is_exhausted(driver: Any) -> None:
    n_valid = sum(1 for a in DECISIONS["a"] for c in DECISIONS["c"] if not (a == 0 and c == 0)) * 3 * 2
    archs = driver(3).run(n_valid)
    assert len({key(arch) for arch in archs}) == n_valid
    assert all(constraint(arch) for arch in archs)


def test_failures_and_nan_are_survived_and_never_win(driver: Any) -> None:
    archs = driver(5).run(50)
    failed = [arch for arch in archs if score(arch) is None]
    nan = [arch for arch in archs if (value := score(arch)) is not None and math.isnan(value)]
    assert failed and nan  # the run met both kinds and went on
    front = driver(5)
    front.run(50)
    best = front.front.searcher.best if hasattr(front.front, "searcher") else front.front.best
    assert best is not None and best.score is not None and math.isfinite(best.score)


def test_state_round_trip_continues_identically(driver: Any, tmp_path: Path) -> None:
    whole = driver(11).run(40)
    first = driver(11)
    head = first.run(25)
    CheckpointSerializer().save(first.state(), tmp_path / "state")  # through a file, as NNI saves it
    second = driver(11)
    second.load(CheckpointSerializer().load(tmp_path / "state"))
    tail = second.run(15)
    assert head + tail == whole


def test_the_three_front_ends_agree_on_the_first_proposals() -> None:
    """The adapters add no randomness of their own: with the same seed all three start with the same random
    candidates (the policy's later proposals depend on the same scores, so they agree too while nothing is
    pending)."""
    torch.manual_seed(0)
    runs = [d(13).run(20) for d in DRIVERS]
    assert runs[0] == runs[1] == runs[2]

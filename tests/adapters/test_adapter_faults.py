"""Faults reaching the tuner and the strategy end cleanly: absurd metrics are failed results with a log line, data
errors leave the architecture unjudged (proposed again), seeds are checked up front and named."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import nni
import pytest
from nni.mutable import Categorical
from nni.nas.benchmark import BenchmarkModelSpace
from nni.nas.benchmark.evaluator import BenchmarkEvaluator
from nni.nas.benchmark.space import SlimBenchmarkSpace
from nni.nas.execution import SequentialExecutionEngine

from nni_asenas import AseNas
from nni_asenas.adapters.tuner import CHECKPOINT_FILE, AseNasTuner
from nni_asenas.errors import UsageError
from nni_asenas.nni_tools.metrics import data_error, describe_metric, finite_number, metric_score

SPACE = {f"x{i}": {"_type": "choice", "_value": list(range(4))} for i in range(4)}
DATA_ERROR = {"data_error": "--data /imagenet: 9 of the 100 training images cannot be read"}


def make_tuner(**kwargs: Any) -> AseNasTuner:
    tuner = AseNasTuner(**kwargs)
    tuner.update_search_space(SPACE)
    return tuner


def score(params: dict[str, Any]) -> float:
    return float(sum(params.values()))


# -------------------------------------------------------------------------------------------------- metrics

def test_a_metric_too_large_for_a_float_is_invalid_with_a_log_line(caplog):
    with caplog.at_level(logging.WARNING, logger="nni_asenas.nni_tools.metrics"):
        assert finite_number(10**400) is None
        assert metric_score({"default": -(10**400)}) is None
    assert "metric <an int of about 401 digits> is too large for a float" in caplog.text
    assert describe_metric(10**5000) == "<an int of about 5001 digits>"  # repr() itself refuses this one
    assert describe_metric({"default": 10**5000}) == "<a dict holding a number too long to print>"
    assert describe_metric("x" * 500).endswith("...") and len(describe_metric("x" * 500)) == 120


def test_data_error_is_read_only_from_a_metric_without_default():
    assert data_error(DATA_ERROR) == DATA_ERROR["data_error"]
    assert data_error({**DATA_ERROR, "default": 1.0}) is None  # a result is a result
    assert data_error({"data_error": 3}) is None and data_error(0.5) is None


# ---------------------------------------------------------------------------------------------------- tuner

@pytest.mark.parametrize("value", [10**400, {"default": 10**400}, '{"default": 1e400}', '{"default": ' + "9" * 400 + "}"])
def test_tuner_counts_an_absurd_metric_as_a_failed_trial_and_goes_on(value, caplog):
    tuner = make_tuner(seed=0)
    params = tuner.generate_parameters(0)
    with caplog.at_level(logging.WARNING):
        tuner.receive_trial_result(0, params, value)
    (observation,) = tuner.searcher.history
    assert observation.score is None and tuner.n_queries == 1
    assert "counted as a failed trial" in caplog.text
    assert tuner.generate_parameters(1) != params  # the experiment goes on


def test_tuner_proposes_an_architecture_again_when_its_trial_stopped_on_its_data(caplog):
    tuner = make_tuner(seed=1)
    first, second = tuner.generate_parameters(0), tuner.generate_parameters(1)
    with caplog.at_level(logging.ERROR):
        tuner.receive_trial_result(0, first, DATA_ERROR)
    tuner.trial_end(0, False)  # the trial exits with an error after reporting it
    assert "stopped on its data, not its architecture" in caplog.text and DATA_ERROR["data_error"] in caplog.text
    assert tuner.searcher.is_pending(first) and tuner.n_queries == 0  # not failed, not counted

    assert tuner.generate_parameters(2) == first  # proposed again, first
    tuner.receive_trial_result(2, first, score(first))
    tuner.receive_trial_result(1, second, score(second))
    history = tuner.searcher.history
    assert [o.arch for o in history] == [first, second] and history[0].score == score(first)
    assert tuner.n_queries == 2


def test_tuner_stops_proposing_after_data_errors_in_a_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NNI_CHECKPOINT_DIRECTORY", str(tmp_path))
    tuner = make_tuner(seed=2)
    proposed = []
    for pid in range(3):
        proposed.append(tuner.generate_parameters(pid))
        tuner.receive_trial_result(pid, proposed[-1], DATA_ERROR)
    assert proposed[1] == proposed[2] == proposed[0]  # the same architecture each time, never judged
    with pytest.raises(nni.NoMoreTrialError, match="3 trials in a row stopped on their data, not their architecture"):
        tuner.generate_parameters(3)
    assert tuner.searcher.history == []

    resumed = AseNasTuner(seed=2)  # the data was fixed and the experiment resumed
    resumed.load_checkpoint()
    resumed.update_search_space(SPACE)
    assert (tmp_path / CHECKPOINT_FILE).is_file()
    assert resumed.generate_parameters(10) == proposed[0]  # the unjudged proposal comes back first
    assert resumed.generate_parameters(11) != proposed[0]
    resumed.receive_trial_result(10, proposed[0], score(proposed[0]))
    assert [(o.arch, o.score) for o in resumed.searcher.history] == [(proposed[0], score(proposed[0]))]


@pytest.mark.parametrize("seed", [-1, 2**32, 2**64, 1.5, True])
def test_tuner_and_strategy_name_a_bad_seed(seed):
    with pytest.raises(UsageError, match=rf"AseNasTuner: classArg 'seed' must be an integer in 0\.\.4294967295, got {seed!r}"):
        AseNasTuner(seed=seed)
    with pytest.raises(UsageError, match=rf"AseNas seed must be an integer in 0\.\.4294967295, got {seed!r}"):
        AseNas(seed=seed)


# ------------------------------------------------------------------------------------------------- strategy

class Scripted(BenchmarkEvaluator):
    """Reports what ``metrics(sample)`` returns."""

    def __init__(self, space: SlimBenchmarkSpace, metrics: Any) -> None:
        super().__init__()
        self.space = space
        self.metrics = metrics

    def default_space(self) -> SlimBenchmarkSpace:  # type: ignore[override]
        return self.space

    def evaluate(self, sample: dict[str, Any]) -> Any:
        value = self.metrics(sample)
        nni.report_final_result(value)
        return value


def scripted_space(metrics: Any) -> BenchmarkModelSpace:
    mutables = [Categorical(list(range(4)), label=f"x{i}") for i in range(4)]
    return BenchmarkModelSpace(Scripted(SlimBenchmarkSpace({m.label: m for m in mutables}), metrics))


def test_strategy_survives_an_absurd_metric_and_resubmits_data_errors(caplog):
    seen: dict[tuple, int] = {}

    def metrics(sample: dict[str, Any]) -> Any:
        key = tuple(sorted(sample.items()))
        seen[key] = seen.get(key, 0) + 1
        if sample["x0"] == 0:
            return 10**400
        if sample["x1"] == 0 and seen[key] == 1:
            return DATA_ERROR  # the first time only: the data was fixed in between
        return float(sum(sample.values()))

    strategy = AseNas(seed=3)
    engine = SequentialExecutionEngine(max_model_count=30, continue_on_failure=True)
    with caplog.at_level(logging.WARNING):
        strategy(scripted_space(metrics), engine)
    told = {tuple(sorted(strategy._codec.to_sample(o.arch).items())): o.score for o in strategy.searcher.history}
    absurd = [key for key in told if dict(key)["x0"] == 0]
    retried = [key for key, count in seen.items() if count == 2]
    assert absurd and all(told[key] is None for key in absurd)
    assert retried and all(dict(key)["x1"] == 0 and told[key] == float(sum(dict(key).values())) for key in retried)
    assert "is too large for a float" in caplog.text and "stopped on its data, not its architecture" in caplog.text


def test_strategy_stops_submitting_after_data_errors_in_a_row(caplog):
    strategy = AseNas(seed=4)
    engine = SequentialExecutionEngine(max_model_count=30, continue_on_failure=True)
    with caplog.at_level(logging.ERROR):
        strategy(scripted_space(lambda sample: DATA_ERROR), engine)
    assert len(engine.list_models()) == 3
    assert "3 models in a row stopped on their data, not their architecture" in caplog.text
    assert strategy.searcher.history == []
    only = strategy._codec.to_arch(engine.list_models()[0].sample)  # the same model three times, kept for a resume
    assert strategy.state_dict()["ledger"]["resubmit"] == [[0, only]]


# ------------------------------------------------------------------------------------------ damaged states

@pytest.mark.parametrize("entry", ["n_queries", "trial_jobs", "ledger", "searcher"])
def test_tuner_load_state_dict_with_a_missing_entry_changes_nothing(entry):
    saved = make_tuner(seed=5)
    for pid in range(4):
        params = saved.generate_parameters(pid)
        saved.receive_trial_result(pid, params, score(params))
    state = saved.state_dict()
    del state[entry]
    target = make_tuner(seed=6)
    params = target.generate_parameters(0)
    target.receive_trial_result(0, params, score(params))
    before = (target.n_queries, [(o.arch, o.score) for o in target.searcher.history], target.state_dict()["ledger"])
    with pytest.raises(ValueError, match=f"the saved AseNasTuner state has no '{entry}' entry"):
        target.load_state_dict(state)
    assert (target.n_queries, [(o.arch, o.score) for o in target.searcher.history],
            target.state_dict()["ledger"]) == before


def test_strategy_load_state_dict_with_a_missing_entry_changes_nothing():
    space = scripted_space(lambda sample: float(sum(sample.values())))
    first = AseNas(seed=5)
    first(space, SequentialExecutionEngine(max_model_count=5))
    state = first.state_dict()
    del state["ledger"]
    second = AseNas(seed=6)
    second.initialize(space, SequentialExecutionEngine(max_model_count=3))
    before = second.searcher.state_dict()["next_id"], second.searcher.history
    with pytest.raises(ValueError, match="the saved AseNas state has no 'ledger' entry"):
        second.load_state_dict(state)
    assert (second.searcher.state_dict()["next_id"], second.searcher.history) == before == (0, [])

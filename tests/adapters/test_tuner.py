"""AseNasTuner driven the way NNI's dispatcher drives it, with the real NAS-Bench-201 table as the trial."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import nni
import pytest

from nni_asenas.adapters.tuner import CHECKPOINT_FILE, AseNasTuner, parse_search_space, read_metric
from nni_asenas.errors import UsageError
from nni_asenas.nasbench.nb201 import EDGES, OPS, load_table
from nni_asenas.trials.nasbench201 import evaluate

NB201_SPACE = {edge: {"_type": "choice", "_value": list(OPS)} for edge in EDGES}
SMALL_SPACE = {"a": {"_type": "choice", "_value": [1, 2, 3]}, "b": {"_type": "choice", "_value": ["x", "y", "z"]}}


def make_tuner(space: dict[str, Any] = NB201_SPACE, **kwargs: Any) -> AseNasTuner:
    tuner = AseNasTuner(**kwargs)
    tuner.update_search_space(space)
    return tuner


def metric(params: dict[str, Any], dataset: str = "cifar100") -> dict[str, float]:
    return evaluate(params, dataset)[1]


def key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def generate(tuner: AseNasTuner, ids: range) -> dict[int, dict[str, Any]]:
    return {pid: tuner.generate_parameters(pid) for pid in ids}


# ---------------------------------------------------------------------------------------------- search spaces


def test_parse_search_space_reads_the_committed_nasbench201_file() -> None:
    path = Path(__file__).resolve().parents[2] / "search_spaces" / "nasbench201.json"
    assert parse_search_space(json.loads(path.read_text())) == {edge: list(OPS) for edge in EDGES}


@pytest.mark.parametrize(
    ("space", "culprit"),
    [
        ({"lr": {"_type": "uniform", "_value": [0.1, 1.0]}}, "'lr' has type 'uniform'"),
        ({"op": {"_type": "choice", "_value": [{"_name": "conv", "k": {"_type": "choice", "_value": [3, 5]}}]}},
         "'op' is a nested choice"),
        ({"op": {"_type": "choice", "_value": []}}, "'op' needs a non-empty list"),
        ({"op": {"_type": "choice", "_value": [[1, 2], [3]]}}, "'op' has option \\[1, 2\\]"),
        ({"op": {"_type": "choice", "_value": ["a", "a"]}}, "'op' lists an option twice"),
        ({"op": ["a", "b"]}, "'op' needs '_type' and '_value'"),
        ([], "non-empty JSON object"),
    ],
)
def test_bad_search_spaces_name_the_parameter(space: Any, culprit: str) -> None:
    tuner = AseNasTuner()
    with pytest.raises(UsageError, match=culprit):
        tuner.update_search_space(space)
    assert tuner.searcher is None


@pytest.mark.parametrize(
    ("kwargs", "culprit"),
    [
        ({"k": 0}, "classArg k must"),
        ({"n_steps": 2.5}, "classArg n_steps must"),
        ({"steps": 2, "n_steps": 2}, "'n_steps' only"),
        ({"hidden_sise": 8}, "unknown ASE-NAS setting 'hidden_sise'"),
        ({"preset": "papr"}, "unknown preset 'papr'"),
        ({"seed": -1}, "'seed'"),
        ({"max_queries": 0}, "'max_queries'"),
        ({"budget_seconds": -5}, "'budget_seconds'"),
        ({"optimize_mode": "max"}, "'optimize_mode'"),
        ({"constraint": "os.path"}, "'module.path:function'"),
        ({"constraint": "no_such_module_xyz:f"}, "no_such_module_xyz"),
        ({"constraint_kwargs": {"x": 1}}, "without 'constraint'"),
        ({"initial_architectures": 5}, "'initial_architectures'"),
    ],
)
def test_bad_class_args_name_the_argument(kwargs: dict[str, Any], culprit: str) -> None:
    with pytest.raises(UsageError, match=culprit):
        AseNasTuner(**kwargs)


def test_read_metric_accepts_numbers_and_default_dicts() -> None:
    assert read_metric(71.5) == (71.5, None)
    assert read_metric({"default": 3, "simulated_seconds": 120.0}) == (3.0, 120.0)
    assert read_metric('{"default": 0.5}') == (0.5, None)  # NNI may hand over the JSON text
    for bad in ({"accuracy": 1.0}, {"default": "high"}, "n/a", None, float("nan"), True):
        assert read_metric(bad)[0] is None


# ---------------------------------------------------------------------------------------------- trials


def test_out_of_order_results_with_concurrency_four() -> None:
    tuner = make_tuner(seed=3)
    pending = generate(tuner, range(4))
    next_id = 4
    answered = []
    table = load_table()
    while next_id < 40:
        pid = max(pending)  # newest first: results in the reverse order of proposals
        params = pending.pop(pid)
        tuner.receive_trial_result(pid, params, metric(params), trial_job_id=f"job{pid}")
        tuner.trial_end(pid, True)
        answered.append(params)
        pending[next_id] = tuner.generate_parameters(next_id)
        next_id += 1
    history = tuner.searcher.history
    assert [obs.arch for obs in history] == answered
    assert [obs.score for obs in history] == [table.signal(arch, "cifar100") for arch in answered]
    assert tuner.searcher.best.score == max(obs.score for obs in history)
    assert tuner.n_queries == 36
    assert tuner.spent_seconds == pytest.approx(sum(table.cost_seconds(arch, "cifar100") for arch in answered))


def test_failed_trials_are_recorded_and_never_proposed_again() -> None:
    tuner = make_tuner(SMALL_SPACE, seed=0, k=2, n_steps=1)
    first = generate(tuner, range(3))
    tuner.trial_end(0, False)  # crashed: no metric at all
    tuner.receive_trial_result(1, first[1], {"accuracy": 0.9})  # no 'default': a failure, not a crash
    tuner.trial_end(1, True)
    tuner.receive_trial_result(2, first[2], {"default": 0.5})
    later = []
    pid = 3
    while True:
        try:
            params = tuner.generate_parameters(pid)
        except nni.NoMoreTrialError:
            break
        later.append(params)
        tuner.receive_trial_result(pid, params, {"default": float(params["a"])})
        pid += 1
    assert [obs.score for obs in tuner.searcher.history[:3]] == [None, None, 0.5]
    assert first[0] not in later and first[1] not in later
    assert len({key(p) for p in [*first.values(), *later]}) == 9  # the whole space, each architecture once


def test_a_success_without_final_result_fails_after_the_grace_period() -> None:
    tuner = make_tuner(seed=0)
    tuner.result_grace_seconds = 0.0
    params = generate(tuner, range(2))
    tuner.trial_end(0, True)  # ended, metric never came
    tuner.trial_end(1, True)  # the end event overtakes the metric (NNI uses two threads)
    tuner.receive_trial_result(1, params[1], metric(params[1]))
    tuner.generate_parameters(2)
    scores = {key(obs.arch): obs.score for obs in tuner.searcher.history}
    assert scores[key(params[0])] is None
    assert scores[key(params[1])] == load_table().signal(params[1], "cifar100")


def test_duplicates_are_never_proposed_even_while_pending_and_exhaustion_stops() -> None:
    tuner = make_tuner(SMALL_SPACE, seed=1, k=2, n_steps=2)
    proposed = generate(tuner, range(9))  # nothing answered yet
    assert len({key(p) for p in proposed.values()}) == 9
    with pytest.raises(nni.NoMoreTrialError, match="every valid architecture"):
        tuner.generate_parameters(9)


def test_stop_rule_max_queries_counts_running_trials() -> None:
    tuner = make_tuner(seed=0, max_queries=5)
    pending = generate(tuner, range(4))
    tuner.generate_parameters(4)
    with pytest.raises(nni.NoMoreTrialError, match="max_queries=5"):
        tuner.generate_parameters(5)
    for pid, params in pending.items():
        tuner.receive_trial_result(pid, params, metric(params))
    with pytest.raises(nni.NoMoreTrialError):
        tuner.generate_parameters(6)
    assert len(tuner.searcher.history) == 4


def test_a_random_start_over_half_of_max_queries_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="nni_asenas.adapters.tuner"):
        make_tuner(max_queries=60, n_initial=40)
    assert "n_initial 40 makes 40 of the 60 queries random before the policy starts" in caplog.text
    assert "(n_initial 15)" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="nni_asenas.adapters.tuner"):
        make_tuner(max_queries=60, n_initial=20)
    assert "n_initial" not in caplog.text


def test_stop_rule_budget_seconds_uses_simulated_seconds() -> None:
    table = load_table()
    tuner = make_tuner(seed=2, budget_seconds=2000)
    spent, pid = 0.0, 0
    while True:
        try:
            params = tuner.generate_parameters(pid)
        except nni.NoMoreTrialError as exc:
            assert "budget_seconds=2000" in str(exc)
            break
        assert spent < 2000  # a query starts only while budget is left
        tuner.receive_trial_result(pid, params, metric(params))
        spent += table.cost_seconds(params, "cifar100")
        pid += 1
    assert spent >= 2000 and tuner.spent_seconds == pytest.approx(spent)


def test_stop_rule_budget_seconds_falls_back_to_wall_time(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr("nni_asenas.adapters.tuner.time.monotonic", lambda: clock[0])
    tuner = make_tuner(seed=0, budget_seconds=25)
    for pid in range(3):
        params = tuner.generate_parameters(pid)
        clock[0] += 10.0
        tuner.receive_trial_result(pid, params, 0.5)  # a plain float: no simulated_seconds
    assert tuner.spent_seconds == 30.0
    with pytest.raises(nni.NoMoreTrialError):
        tuner.generate_parameters(3)


def test_minimize_prefers_the_lowest_metric() -> None:
    tuner = make_tuner(SMALL_SPACE, seed=0, optimize_mode="minimize")
    params = generate(tuner, range(3))
    for pid, p in params.items():
        tuner.receive_trial_result(pid, p, float(pid))
    assert tuner.searcher.best.arch == params[0]


# ---------------------------------------------------------------------------------------------- imports, starts


def test_import_data_is_reused_and_never_proposed_again() -> None:
    table = load_table()
    best_arch = table.arch_dict(table.optimum("cifar100", "signal")[0])
    imported = [best_arch] + [table.arch_dict(i) for i in (0, 1, 2, 3)]
    data = [{"parameter": arch, "value": json.dumps(metric(arch))} for arch in imported]
    tuner = AseNasTuner(seed=0, max_queries=8)
    tuner.import_data(data[:2])  # before the search space: kept until it arrives
    tuner.update_search_space(NB201_SPACE)
    tuner.import_data(data[2:] + [{"parameter": {"0_1": "conv_9x9"}, "value": 1.0}, {"value": 2.0}])
    assert tuner.n_queries == 5
    assert tuner.searcher.best.arch == best_arch
    assert best_arch in [obs.arch for obs in tuner.searcher.candidates]
    proposed = []
    with pytest.raises(nni.NoMoreTrialError):
        for pid in range(10):
            proposed.append(tuner.generate_parameters(pid))
    assert len(proposed) == 3  # max_queries counts the imports
    assert not {key(p) for p in proposed} & {key(a) for a in imported}


def test_initial_architectures_from_dicts_arch_strings_and_result_json(tmp_path: Path) -> None:
    table = load_table()
    resnet = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|"
    result = tmp_path / "result.json"
    result.write_text(json.dumps({"candidates": [resnet, table.arch_str(6111)]}))
    for initial, expected in (
        ([table.arch_dict(6111), resnet], [table.arch_dict(6111), table.arch_dict(resnet)]),
        (str(result), [table.arch_dict(resnet), table.arch_dict(6111)]),
    ):
        tuner = make_tuner(seed=0, initial_architectures=initial)
        assert list(generate(tuner, range(2)).values()) == expected


def test_bad_initial_architectures_name_the_culprit(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="initial architecture '\\|bad~0\\|'"):
        make_tuner(initial_architectures=["|bad~0|"])
    with pytest.raises(UsageError, match="NAS-Bench-201 arch string"):
        make_tuner(SMALL_SPACE, initial_architectures=[load_table().arch_str(0)])
    with pytest.raises(UsageError, match="'a'"):
        make_tuner(SMALL_SPACE, initial_architectures=[{"a": 7, "b": "x"}])
    (tmp_path / "r.json").write_text("{}")
    with pytest.raises(UsageError, match="no 'candidates' list"):
        AseNasTuner(initial_architectures=str(tmp_path / "r.json"))


def test_constraint_import_string_with_kwargs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_rules.py").write_text(
        "def no_op(params, edge, op):\n    return params[edge] != op\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    tuner = make_tuner(seed=0, constraint="my_rules:no_op", constraint_kwargs={"edge": "0_1", "op": "none"})
    proposed = []
    for pid in range(30):
        proposed.append(tuner.generate_parameters(pid))
        tuner.receive_trial_result(pid, proposed[-1], metric(proposed[-1]))
    assert all(p["0_1"] != "none" for p in proposed)


def test_changed_search_space_keeps_results_that_still_fit() -> None:
    tuner = make_tuner(SMALL_SPACE, seed=0)
    params = generate(tuner, range(3))
    tuner.receive_trial_result(0, params[0], 1.0)
    wider = {**SMALL_SPACE, "a": {"_type": "choice", "_value": [1, 2, 3, 4]}}
    tuner.update_search_space(wider)
    tuner.receive_trial_result(1, params[1], 2.0)  # proposed under the old space, answered under the new one
    assert [(obs.arch, obs.score) for obs in tuner.searcher.history] == [(params[0], 1.0), (params[1], 2.0)]
    assert tuner.n_queries == 2


# ---------------------------------------------------------------------------------------------- resume


def test_checkpoint_resume_continues_the_exact_search(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNI_CHECKPOINT_DIRECTORY", str(tmp_path))
    original = make_tuner(seed=5)
    params = generate(original, range(6))
    for pid in (0, 1, 2, 3):
        original.receive_trial_result(pid, params[pid], metric(params[pid]), trial_job_id=f"job{pid}")
    params[6] = original.generate_parameters(6)
    assert (tmp_path / CHECKPOINT_FILE).is_file()  # the experiment stops here: 4, 5 and 6 are still running

    resumed = AseNasTuner(seed=5)
    resumed.load_checkpoint()  # NNI calls this before anything else when resuming
    resumed.update_search_space(NB201_SPACE)
    # NNI's listing may pair a recorded trial with another trial's parameters (microsoft/nni#5726): skipped
    resumed.import_data([{"parameter": params[5], "value": metric(params[0]), "trialJobId": "job0"}])
    assert resumed.n_queries == 4
    # the running trials are re-run by NNI and arrive as imports; the original gets the same results directly
    for pid in (5, 6, 4):
        resumed.import_data([{"parameter": params[pid], "value": metric(params[pid])}])
        original.receive_trial_result(pid, params[pid], metric(params[pid]))
    assert [obs.arch for obs in resumed.searcher.history] == [obs.arch for obs in original.searcher.history]
    for pid in range(7, 13):
        expected, got = original.generate_parameters(pid), resumed.generate_parameters(pid)
        assert got == expected
        original.receive_trial_result(pid, expected, metric(expected))
        resumed.receive_trial_result(pid, got, metric(got))
    assert resumed.searcher.best == original.searcher.best


def test_a_crash_resume_through_nnis_dispatcher_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a crash: a re-run trial reporting before NNI lists it reaches the tuner, new parameter ids continue past
    every earlier one, and a proposal NNI never started is proposed again (nni_asenas.nni_tools.dispatcher)."""
    from nni.runtime import msg_dispatcher

    monkeypatch.setenv("NNI_CHECKPOINT_DIRECTORY", str(tmp_path))
    monkeypatch.setattr(msg_dispatcher, "_trial_params", {})
    monkeypatch.setattr(msg_dispatcher, "_next_parameter_id", 0)
    monkeypatch.setattr(msg_dispatcher.MsgDispatcher, "handle_add_customized_trial",
                        msg_dispatcher.MsgDispatcher.handle_add_customized_trial)
    original = make_tuner(seed=3)
    params = generate(original, range(6))
    for pid in range(4):
        original.receive_trial_result(pid, params[pid], metric(params[pid]), trial_job_id=f"job{pid}")
    # the crash: 4 was running, 5 was proposed but never started

    resumed = AseNasTuner(seed=3)
    dispatcher = msg_dispatcher.MsgDispatcher("ws://_unittest_", resumed)
    resumed.load_checkpoint()
    assert msg_dispatcher._next_parameter_id == 6
    resumed.update_search_space(NB201_SPACE)  # what the dispatcher's Initialize does
    # NNI re-runs 4 at once: its metric arrives before the manager lists the re-run trials
    dispatcher.handle_report_metric_data({"parameter_id": 4, "type": "FINAL", "trial_job_id": "job4",
                                          "value": nni.dump(metric(params[4]))})
    assert resumed.n_queries == 5 and resumed.searcher.history[-1].arch == params[4]
    early = dispatcher.tuner.generate_parameters(msg_dispatcher._create_parameter_id())  # a request before the list
    dispatcher.handle_add_customized_trial([{"parameter_id": 4, "parameter_source": "resumed",
                                             "parameters": params[4], "parameter_index": 0}])
    assert msg_dispatcher._next_parameter_id == 7  # not back to 5
    assert resumed.generate_parameters(msg_dispatcher._create_parameter_id()) == params[5]  # 5 again, first
    assert early not in (params[4], params[5])
    unanswered = resumed.state_dict()["ledger"]["unanswered"]  # both running now, nothing else awaited
    assert sorted(key(arch) for _, arch in unanswered) == sorted([key(early), key(params[5])])


def test_without_checkpoint_a_resume_imports_earlier_trials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNI_CHECKPOINT_DIRECTORY", str(tmp_path))
    tuner = AseNasTuner(seed=0)
    tuner.load_checkpoint()
    tuner.update_search_space(NB201_SPACE)
    earlier = [load_table().arch_dict(i) for i in range(5)]
    tuner.import_data([{"parameter": arch, "value": metric(arch)} for arch in earlier])
    assert tuner.n_queries == 5
    proposed = generate(tuner, range(20))
    assert not {key(p) for p in proposed.values()} & {key(a) for a in earlier}


# ---------------------------------------------------------------------------------------------- threads


def test_dispatcher_threads_can_call_concurrently() -> None:
    tuner = make_tuner(seed=0)
    proposed: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(offset: int) -> None:
        try:
            for i in range(15):
                pid = offset * 1000 + i
                params = tuner.generate_parameters(pid)
                with lock:
                    proposed.append(params)
                tuner.receive_trial_result(pid, params, metric(params))
                tuner.trial_end(pid, True)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert len(proposed) == 60 and len({key(p) for p in proposed}) == 60
    assert tuner.n_queries == 60 and len(tuner.searcher.history) == 60


def test_a_version_1_checkpoint_of_0_2_continues_its_search() -> None:
    """A tuner state of nni-asenas 0.2.0 (tests/data/states-v1.pt: two trials running, one proposal to retry after
    a data error) resumes: the running proposals' re-run results are paired back, the retry comes first, and the
    search goes on with new architectures (ranked by this release's model, so not the ones 0.2.0 went on with)."""
    import v1_states

    from nni_asenas.adapters.tuner import upgrade_state

    saved = v1_states.load()["tuner"]
    assert saved["state"]["version"] == 1
    upgraded = upgrade_state(saved["state"])
    assert upgraded["version"] == 3 and "running" not in upgraded and "retry" not in upgraded
    assert upgraded["ledger"]["unanswered"] == [[pid, arch] for pid, arch in saved["state"]["running"]]
    tuner = AseNasTuner(**v1_states.TUNER_SETTINGS)
    tuner.update_search_space(v1_states.NNI_SPACE)
    tuner.load_state_dict(saved["state"])
    tuner.import_data([{"parameter": p, "value": v1_states.score(p)} for p in saved["running"]])
    continued = []
    for pid in range(100, 100 + len(saved["next"])):
        params = tuner.generate_parameters(pid)
        continued.append(params)
        tuner.receive_trial_result(pid, params, v1_states.score(params))
    assert continued[0] == saved["next"][0] and tuner.n_queries == saved["n_queries"]
    assert len({json.dumps(params, sort_keys=True) for params in continued}) == len(continued)
    assert tuner.state_dict()["version"] == 3
    with pytest.raises(ValueError, match="unsupported AseNasTuner state version 4"):
        tuner.load_state_dict({**saved["state"], "version": 4})


def test_the_deprecated_steps_class_arg_warns_from_the_callers_line() -> None:
    with pytest.warns(DeprecationWarning, match="classArg 'steps' is deprecated: call it 'n_steps'") as caught:
        tuner = AseNasTuner(steps=2)
    assert tuner.config.n_steps == 2 and caught[0].filename == __file__


def test_the_canonical_class_arg_runs_one_network_once() -> None:
    """experiments/imagenet-mobilenet.yml's space: with classArg canonical, 1000 trials are 1000 networks."""
    from nni_asenas.imagenet.space import canonical_arch

    space = json.loads((Path(__file__).resolve().parents[2] / "search_spaces" / "mobilenet.json").read_text())
    tuner = make_tuner(space, seed=0, canonical="nni_asenas.imagenet.space:canonical_arch")
    seen = set()
    for pid in range(1000):
        params = tuner.generate_parameters(pid)
        assert canonical_arch(params) == params
        key = json.dumps(params, sort_keys=True)
        assert key not in seen
        seen.add(key)
        tuner.receive_trial_result(pid, params, float(sum(params.values())))
    with pytest.raises(UsageError, match="AseNasTuner: classArg 'canonical' must read 'module.path:function'"):
        AseNasTuner(canonical="canonical_arch")
    with pytest.raises(UsageError, match="AseNasTuner: cannot import canonical 'nni_asenas.imagenet.space:nope'"):
        AseNasTuner(canonical="nni_asenas.imagenet.space:nope")

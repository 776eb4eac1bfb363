"""The trial ledger the strategy and the tuner share: results, data errors, grace periods, interruptions, resumes."""

from __future__ import annotations

import pytest

from nni_asenas.adapters.ledger import MAX_DATA_ERRORS_IN_A_ROW, TrialLedger


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def arch(i: int) -> dict[str, int]:
    return {"x": i}


def test_results_close_trials_and_end_the_data_error_streak() -> None:
    ledger: TrialLedger[int] = TrialLedger()
    for key in range(3):
        ledger.submit(key, proposal_id=10 + key, arch=arch(key))
    assert ledger.record_data_error(0, "unreadable images").proposal_id == 10
    assert ledger.record_data_error(1, "unreadable images") is not None
    assert ledger.data_errors == ("unreadable images",) * 2 and not ledger.stopped_by_data
    assert ledger.record_result(2).proposal_id == 12 and ledger.data_errors == ()
    assert ledger.record_result(2) is None  # answered already
    assert [ledger.take_resubmission(), ledger.take_resubmission(), ledger.take_resubmission()] == [
        (10, arch(0)), (11, arch(1)), None]
    for key in range(3, 3 + MAX_DATA_ERRORS_IN_A_ROW):
        ledger.submit(key, proposal_id=key, arch=arch(key))
        ledger.record_data_error(key, f"error {key}", resubmit=key != 3)
    assert ledger.stopped_by_data and ledger.data_errors[-1] == "error 5"
    assert [ledger.take_resubmission() for _ in range(3)] == [(4, arch(4)), (5, arch(5)), None]
    with pytest.raises(ValueError, match="max_data_errors_in_a_row must be an integer >= 1"):
        TrialLedger(max_data_errors_in_a_row=0)


def test_a_token_tells_a_reused_key_from_the_trial_it_was() -> None:
    ledger: TrialLedger[int] = TrialLedger()
    model, other = object(), object()
    ledger.submit(7, 0, arch(0), token=model)
    assert ledger.trial(7, other) is None and ledger.record_result(7, other) is None
    assert not ledger.run_ended(7, other) and ledger.running == 1
    assert ledger.run_ended(7, model) and ledger.running == 0 and not ledger.run_ended(7, model)
    assert ledger.record_result(7, model).token is model


def test_trials_that_end_without_a_result_fail_after_their_grace() -> None:
    clock = Clock()
    ledger: TrialLedger[int] = TrialLedger(clock=clock)
    for key, pid in ((0, 5), (1, 3), (2, 4)):
        ledger.submit(key, pid, arch(pid))
    ledger.run_ended(0)
    clock.now += 10
    ledger.run_ended(1)
    assert ledger.expire(grace_seconds=20) == []  # trial 0 ended 10 s ago
    clock.now += 15
    assert [(key, trial.proposal_id) for key, trial in ledger.expire(grace_seconds=20)] == [(0, 5)]
    clock.now += 10
    ledger.run_ended(2)
    assert [(key, trial.proposal_id) for key, trial in ledger.expire(grace_seconds=20)] == [(1, 3)]
    assert ledger.running == 0 and [(key, t.proposal_id) for key, t in ledger.expire()] == [(2, 4)]  # no wait
    assert ledger.open_trials == []


def test_expired_trials_come_in_proposal_order() -> None:
    ledger: TrialLedger[int] = TrialLedger()
    for key, pid in ((0, 5), (1, 3), (2, 4)):
        ledger.submit(key, pid, arch(pid))
        ledger.run_ended(key)
    assert [trial.proposal_id for _, trial in ledger.expire()] == [3, 4, 5]


def test_interrupted_and_unanswered_proposals_survive_a_resume() -> None:
    ledger: TrialLedger[int] = TrialLedger()
    ledger.submit(0, 4, arch(4), token="old searcher")
    ledger.submit(1, 2, arch(2), token="searcher")
    ledger.submit(2, 3, arch(3), token="searcher")
    ledger.run_ended(2)
    ledger.park(2)  # interrupted
    ledger.submit(3, 9, arch(9))
    ledger.record_data_error(3, "bad data")
    state = ledger.state_dict(keep=lambda trial: trial.token != "old searcher")
    assert state == {"version": 1, "unanswered": [[2, arch(2)], [3, arch(3)]], "resubmit": [[9, arch(9)]]}

    strategy: TrialLedger[int] = TrialLedger()
    strategy.load_state_dict(state, resubmit_unanswered=True)
    assert [strategy.take_resubmission() for _ in range(4)] == [(2, arch(2)), (3, arch(3)), (9, arch(9)), None]
    tuner: TrialLedger[int] = TrialLedger()
    tuner.load_state_dict(state, resubmit_unanswered=False)
    assert tuner.awaited == [2, 3] and tuner.take_resubmission() == (9, arch(9))
    assert tuner.claim(arch(3)) == 3 and tuner.claim(arch(3)) is None and tuner.awaited == [2]
    assert tuner.state_dict()["unanswered"] == [[2, arch(2)]]
    tuner.forget_awaited()
    assert tuner.unanswered() == [] and tuner.data_errors == ()


@pytest.mark.parametrize(("state", "message"), [
    ({"version": 2, "unanswered": [], "resubmit": []}, "unsupported trial ledger state version 2"),
    ([], "a saved trial ledger state is a dict, got list"),
    ({"version": 1, "unanswered": []}, "has no 'resubmit' entry"),
    ({"version": 1, "unanswered": [[1]], "resubmit": []}, "is damaged"),
])
def test_a_damaged_state_changes_nothing(state: object, message: str) -> None:
    ledger: TrialLedger[int] = TrialLedger()
    ledger.submit(0, 1, arch(1))
    with pytest.raises(ValueError, match=message):
        ledger.load_state_dict(state, resubmit_unanswered=True)  # type: ignore[arg-type]
    assert [trial.proposal_id for trial in ledger.open_trials] == [1]

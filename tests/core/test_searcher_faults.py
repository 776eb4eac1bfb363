"""AseNasSearcher's tell / observe / load_state_dict check first and change nothing when they raise."""

from __future__ import annotations

import copy
import itertools
import pickle

import pytest
import torch

from nni_asenas.core.searcher import AseNasSearcher

SPACE = {f"d{i}": list(range(3)) for i in range(4)}  # 81 architectures
INVALID_SCORES = [
    ("abc", "score must be a number or None, got 'abc'"),
    ([0.5], r"score must be a number or None, got \[0.5\]"),
    (b"0.5", "score must be a number or None, got b'0.5'"),
    (10**400, r"score \(an int of about 401 digits\) is too large for a float"),
    (-(10**5000), r"score \(an int of about 5001 digits\) is too large for a float"),
]
SCORE_IDS = ["text", "list", "bytes", "10**400", "-10**5000"]


def searched(n: int = 6, seed: int = 0) -> AseNasSearcher:
    """A searcher past its random start, with a proposal pending."""
    searcher = AseNasSearcher(SPACE, k=2, seed=seed, n_initial=2)
    for _ in range(n):
        proposal = searcher.ask()
        assert proposal is not None
        searcher.tell(proposal.id, sum(proposal.arch.values()) / 8)
    return searcher


def snapshot(searcher: AseNasSearcher) -> bytes:
    """Everything the searcher holds, comparable byte for byte."""
    state = searcher.state_dict()
    tensors = {name: value.tolist() for name, value in state.pop("policy").items()}
    optimizer = state.pop("optimizer")
    return pickle.dumps((state, tensors, repr(optimizer)))


@pytest.mark.parametrize("score, message", INVALID_SCORES, ids=SCORE_IDS)
def test_tell_with_an_invalid_score_changes_nothing_and_can_be_retried(score, message):
    searcher = searched()
    proposal = searcher.ask()
    before = snapshot(searcher)
    for _ in range(2):  # a retried bad tell is refused the same way
        with pytest.raises(ValueError, match=message):
            searcher.tell(proposal.id, score)
        assert snapshot(searcher) == before
    assert searcher.is_pending(proposal.arch)

    searcher.tell(proposal.id, 0.75)  # the retry with a good score is recorded once
    assert [o.id for o in searcher.history].count(proposal.id) == 1
    assert searcher.history[-1].score == 0.75 and searcher.n_pending == 0
    with pytest.raises(ValueError, match="already told"):
        searcher.tell(proposal.id, 0.75)


def test_non_finite_floats_are_failures_not_errors():
    searcher = searched()
    for score in (float("nan"), float("inf"), 1e400):  # 1e400 is a float literal: inf
        proposal = searcher.ask()
        searcher.tell(proposal.id, score)
        assert searcher.history[-1].score is None


@pytest.mark.parametrize("score, message", INVALID_SCORES, ids=SCORE_IDS)
def test_observe_with_an_invalid_score_changes_nothing(score, message):
    searcher = searched()
    arch = next(a for a in (dict(zip(SPACE, values)) for values in itertools.product(range(3), repeat=len(SPACE)))
                if not any(o.arch == a for o in searcher.history))
    before = snapshot(searcher)
    with pytest.raises(ValueError, match=message):
        searcher.observe(arch, score)
    assert snapshot(searcher) == before

    observed = searcher.observe(arch, 0.9)  # the good score is kept, the architecture is not blocked as failed
    assert observed.score == 0.9 and searcher.history[-1] == observed


def test_observe_with_a_foreign_architecture_changes_nothing():
    searcher = searched()
    before = snapshot(searcher)
    with pytest.raises(ValueError, match="observed architecture"):
        searcher.observe({"d0": 7, "d1": 0, "d2": 0, "d3": 0}, 0.5)
    assert snapshot(searcher) == before


@pytest.mark.parametrize("entry", ["slots", "records", "policy", "optimizer", "rng", "stats", "history",
                                   "initial_queue"])
def test_load_state_dict_with_a_missing_entry_leaves_the_searcher_untouched(entry):
    saved = searched(n=8, seed=1).state_dict()
    del saved[entry]
    target = searched(n=4, seed=2)
    before = snapshot(target)
    with pytest.raises(ValueError, match=f"the saved search state has no '{entry}' entry"):
        target.load_state_dict(saved)
    assert snapshot(target) == before


def damage_policy(state: dict) -> None:
    name = next(iter(state["policy"]))
    state["policy"][name] = torch.zeros(1)


def damage_optimizer(state: dict) -> None:
    state["optimizer"]["param_groups"] = []


def damage_rng(state: dict) -> None:
    state["rng"] = {"bit_generator": "MT19937", "state": {}}


def damage_record(state: dict) -> None:
    state["records"][0]["colour"] = "red"


def damage_slots(state: dict) -> None:
    state["slots"] = [999]


@pytest.mark.parametrize("damage", [damage_policy, damage_optimizer, damage_rng, damage_record, damage_slots])
def test_load_state_dict_with_a_damaged_entry_leaves_the_searcher_untouched(damage):
    saved = copy.deepcopy(searched(n=8, seed=1).state_dict())
    damage(saved)
    target = searched(n=4, seed=2)
    before = snapshot(target)
    with pytest.raises(ValueError, match="the saved search state"):
        target.load_state_dict(saved)
    assert snapshot(target) == before
    # and it still searches as if nothing had happened
    twin = searched(n=4, seed=2)
    assert target.ask().arch == twin.ask().arch


def test_load_state_dict_of_a_good_state_still_continues_exactly():
    source = searched(n=8, seed=3)
    target = AseNasSearcher(SPACE, k=2, seed=9)
    target.load_state_dict(source.state_dict())
    assert snapshot(target) == snapshot(source)
    assert target.ask().arch == source.ask().arch

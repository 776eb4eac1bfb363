import io
import math

import numpy as np
import pytest
import torch

from nni_asenas.core.searcher import AseNasSearcher

SPACE = {"a": [0, 1, 2], "b": ["x", "y", "z"], "c": [True, False]}  # 18 architectures
BIG = {f"d{i}": list(range(4)) for i in range(6)}  # 4096 architectures


def score_of(arch):
    """A smooth synthetic objective on BIG: best at all 3s."""
    return sum(arch.values()) / 18.0


def drive(searcher, n, objective=score_of):
    proposals = []
    for _ in range(n):
        p = searcher.ask()
        if p is None:
            break
        proposals.append(p)
        searcher.tell(p.id, objective(p.arch))
    return proposals


def key(arch):
    return tuple(sorted(arch.items()))


def test_starts_with_k_random_then_searches_from_the_candidates():
    s = AseNasSearcher(BIG, k=3, seed=0, n_initial=0)
    proposals = drive(s, 20)
    assert [p.kind for p in proposals[:3]] == ["random"] * 3
    assert all(p.kind in ("search", "fallback", "restart") for p in proposals[3:])
    candidate_ids = {p.id for p in proposals[:3]}
    first = proposals[3]
    assert first.parent in candidate_ids
    parent = next(p for p in proposals if p.id == first.parent)
    assert sum(parent.arch[label] != first.arch[label] for label in BIG) <= s.config.n_steps  # within its subspace


def test_the_random_start_fills_n_initial_then_keeps_the_best_k():
    s = AseNasSearcher(BIG, k=3, seed=0, n_initial=12)
    proposals = drive(s, 20)
    assert [p.kind for p in proposals[:12]] == ["random"] * 12
    assert all(p.kind in ("search", "fallback", "restart") for p in proposals[12:])
    start = sorted(proposals[:12], key=lambda p: score_of(p.arch), reverse=True)
    assert proposals[12].parent in {p.id for p in start[:3]}  # the candidate set began as the best 3 of the start


def test_initial_and_observed_architectures_count_toward_the_random_start():
    start = [{f"d{i}": 3 for i in range(6)}, {f"d{i}": 2 for i in range(6)}]
    s = AseNasSearcher(BIG, k=2, seed=1, n_initial=5, initial_architectures=start)
    s.observe({f"d{i}": 1 for i in range(6)}, 0.1)
    kinds = [p.kind for p in drive(s, 4)]
    assert kinds[:2] == ["initial", "initial"] and kinds[2:4] == ["random", "random"]
    assert s.ask().kind in ("search", "fallback", "restart")  # 2 given + 1 observed + 2 random = 5


def test_candidate_update_rule():
    s = AseNasSearcher(BIG, k=2, seed=1, n_initial=0)
    a, b = s.ask(), s.ask()
    s.tell(a.id, 0.5)
    s.tell(b.id, 0.2)
    assert [c.id for c in s.candidates] == [a.id, b.id]
    child = s.ask()
    assert child.kind == "search" and child.parent in (a.id, b.id)
    parent_score = 0.5 if child.parent == a.id else 0.2
    slot = [c.id for c in s.candidates].index(child.parent)
    s.tell(child.id, parent_score - 0.1)  # worse than its centre: the subspace stays
    assert [c.id for c in s.candidates][slot] == child.parent
    child2 = s.ask()
    slot2 = [c.id for c in s.candidates].index(child2.parent)
    s.tell(child2.id, 0.9)  # better: it replaces its centre (a new object; the old centre is unchanged)
    assert s.candidates[slot2].id == child2.id and s.candidates[slot2].score == 0.9
    assert s.best.id == child2.id
    assert len(s.candidates) == 2


def test_never_proposes_a_duplicate_and_stops_when_the_space_is_exhausted():
    s = AseNasSearcher(SPACE, k=3, seed=2)
    proposals = drive(s, 100, objective=lambda arch: arch["a"] + (arch["b"] == "z"))
    assert len(proposals) == 18
    assert len({key(p.arch) for p in proposals}) == 18
    assert s.ask() is None
    assert s.best.score == 3


def test_results_told_out_of_order():
    s = AseNasSearcher(BIG, k=3, seed=3)
    drive(s, 5)
    pending = [s.ask() for _ in range(6)]
    assert s.n_pending == 6 and len({key(p.arch) for p in pending}) == 6
    for p in pending:
        assert s.is_pending(p.arch)
    for p in reversed(pending):
        s.tell(p.id, score_of(p.arch))
    assert s.n_pending == 0
    assert [o.id for o in s.history[-6:]] == [p.id for p in reversed(pending)]
    drive(s, 5)


def test_pending_proposals_are_rescored_under_the_current_parameters():
    s = AseNasSearcher(BIG, k=3, seed=4, n_initial=0)
    drive(s, 3)
    first, second = s.ask(), s.ask()
    before = [p.detach().clone() for p in s._policy.parameters()]
    s.tell(second.id, 1.0)
    s.tell(first.id, 0.0)  # sampled before `second`'s update: replayed, not the stale graph
    after = list(s._policy.parameters())
    assert any(not torch.equal(x, y) for x, y in zip(before, after))


@pytest.mark.parametrize("bad", [None, float("nan"), float("inf")])
def test_a_failed_proposal_is_never_proposed_again(bad):
    s = AseNasSearcher(SPACE, k=2, seed=5)
    failed = s.ask()
    s.tell(failed.id, bad)
    assert s.history[0].score is None and s.best is None
    rest = drive(s, 50, objective=lambda arch: arch["a"])
    assert key(failed.arch) not in {key(p.arch) for p in rest}
    assert len(rest) == 17  # everything else, once


def test_failures_during_the_search_do_not_stop_it():
    s = AseNasSearcher(BIG, k=3, seed=6)
    outcomes = drive(s, 60, objective=lambda arch: None if arch["d0"] == 0 else score_of(arch))
    assert len(outcomes) == 60
    assert s.best.score == max(o.score for o in s.history if o.score is not None)
    assert all(c.arch["d0"] != 0 for c in s.candidates)


def test_constraint_rejections_are_never_proposed():
    calls = []

    def valid(arch):
        calls.append(arch)
        return arch["d0"] + arch["d1"] <= 3

    s = AseNasSearcher(BIG, k=3, seed=7, constraint=valid)
    proposals = drive(s, 80)
    assert len(proposals) == 80
    assert all(p.arch["d0"] + p.arch["d1"] <= 3 for p in proposals)
    assert any(a["d0"] + a["d1"] > 3 for a in calls)  # the constraint did reject some draws
    # a result that violates the constraint does not enter the candidate set
    s.observe({**{f"d{i}": 3 for i in range(6)}}, 99.0)
    assert all(c.score != 99.0 for c in s.candidates)


def test_initial_architectures_come_first():
    start = [{f"d{i}": 3 for i in range(6)}, {f"d{i}": 2 for i in range(6)}]
    s = AseNasSearcher(BIG, k=3, seed=8, initial_architectures=start)
    proposals = drive(s, 4)
    assert [p.arch for p in proposals[:2]] == start and [p.kind for p in proposals[:3]] == ["initial", "initial", "random"]


def test_observe_fills_the_candidate_set():
    s = AseNasSearcher(BIG, k=2, seed=9, n_initial=4)  # the observed results are the whole random start
    for value in range(4):
        s.observe({f"d{i}": value for i in range(6)}, float(value))
    assert sorted(c.score for c in s.candidates) == [2.0, 3.0]
    assert s.ask().kind == "search"


def test_same_seed_same_search_other_seed_other_search():
    runs = [[key(p.arch) for p in drive(AseNasSearcher(BIG, seed=seed, n_initial=8), 40)] for seed in (11, 11, 12)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_scores_in_any_unit_give_the_same_search():
    # x128 is exact in binary floating point, so the standardised rewards are bitwise equal
    a = [key(p.arch) for p in drive(AseNasSearcher(BIG, seed=13, n_initial=8), 40)]
    b = [key(p.arch) for p in drive(AseNasSearcher(BIG, seed=13, n_initial=8), 40, objective=lambda x: 128 * score_of(x))]
    assert a == b


def test_state_dict_round_trip_continues_the_exact_search():
    reference = AseNasSearcher(BIG, seed=14, n_initial=10)
    drive(reference, 25)
    pending = [reference.ask() for _ in range(2)]
    buffer = io.BytesIO()
    torch.save(reference.state_dict(), buffer)
    # the fitted hyperparameters travel with the state: between refits a resumed search reuses the same ones
    assert 10 < reference.state_dict()["model"]["fitted_at"] <= 25

    def finish(s):
        for p in pending:
            s.tell(p.id, score_of(p.arch))
        return ([(p.id, key(p.arch), p.kind) for p in drive(s, 25)], [(c.id, c.score) for c in s.candidates],
                s.state_dict()["model"])

    expected = finish(reference)
    restored = AseNasSearcher(BIG, seed=999, n_initial=10)  # a different seed: everything must come from the state
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    restored.load_state_dict(saved)
    assert restored.state_dict()["model"] == saved["model"]
    assert finish(restored) == expected


def test_a_state_saved_before_n_initial_existed_resumes_its_search_without_a_random_start():
    old = AseNasSearcher(BIG, k=3, seed=2, n_initial=0)
    drive(old, 5)
    state = {**old.state_dict(), "version": 1}  # such states were version 1
    del state["config"]["n_initial"]
    restored = AseNasSearcher(BIG, k=3, seed=2)
    restored.load_state_dict(state)
    assert restored.config.n_initial == 0
    assert restored.ask().kind in ("search", "fallback", "restart")


def test_a_version_2_state_goes_on_with_the_nearest_neighbour_fallback():
    old = AseNasSearcher(BIG, k=3, seed=2, n_initial=6)
    drive(old, 10)
    state = {**old.state_dict(), "version": 2}
    del state["config"]["fallback_radius"], state["config"]["climb_radius"]
    restored = AseNasSearcher(BIG, k=3, seed=2)
    restored.load_state_dict(state)
    assert restored.config.fallback_radius == 0 and restored.state_dict()["version"] == 4
    assert restored.config.climb_radius == 0
    assert restored.state_dict()["model"] == old.state_dict()["model"]  # a version-2 model is kept
    assert drive(restored, 5)


def test_a_version_3_state_goes_on_proposing_the_models_pick_as_drawn():
    old = AseNasSearcher(BIG, k=3, seed=2, n_initial=6, max_redraws=2)
    drive(old, 10)
    state = {**old.state_dict(), "version": 3}
    del state["config"]["climb_radius"]
    restored = AseNasSearcher(BIG, k=3, seed=2)
    restored.load_state_dict(state)
    assert restored.config.climb_radius == 0 and restored.config.fallback_radius == 3
    assert restored.state_dict()["version"] == 4 and drive(restored, 5)


def test_state_dict_refuses_a_model_of_another_shape():
    searcher = AseNasSearcher(BIG, seed=0, n_initial=4)
    drive(searcher, 8)
    state = searcher.state_dict()
    state["model"] = {**state["model"], "weights": state["model"]["weights"][:-1]}
    with pytest.raises(ValueError, match="model has another number of decisions"):
        AseNasSearcher(BIG, seed=0, n_initial=4).load_state_dict(state)


def test_state_dict_refuses_another_space():
    state = AseNasSearcher(BIG, seed=0).state_dict()
    with pytest.raises(ValueError, match="different search space"):
        AseNasSearcher(SPACE, seed=0).load_state_dict(state)


def test_usage_errors_name_the_culprit():
    s = AseNasSearcher(SPACE, seed=0)
    with pytest.raises(ValueError, match="unknown proposal id 42"):
        s.tell(42, 1.0)
    p = s.ask()
    s.tell(p.id, 1.0)
    with pytest.raises(ValueError, match=f"proposal {p.id} was already told"):
        s.tell(p.id, 1.0)
    with pytest.raises(ValueError, match="score must be a number"):
        s.tell(s.ask().id, "high")
    with pytest.raises(ValueError, match=r"k must be an integer in 1\.\.1000, got 0"):
        AseNasSearcher(SPACE, k=0)
    with pytest.raises(ValueError, match="initial architecture: decision 'b' has no option 'w'"):
        AseNasSearcher(SPACE, initial_architectures=[{"a": 0, "b": "w", "c": True}])


def test_search_beats_random_sampling_on_the_real_table():
    """On NAS-Bench-201 CIFAR-10 with 100 queries, ASE-NAS finds better 12-epoch accuracies than random search."""
    from nni_asenas.nasbench.nb201 import load_table

    table = load_table()
    signal = table.signal_array("cifar10")
    asenas, rand = [], []
    for seed in range(4):
        s = AseNasSearcher(table.decisions(), seed=seed)
        drive(s, 100, objective=lambda arch: signal[table.index(arch)] / 100)
        asenas.append(s.best.score * 100)
        rand.append(signal[np.random.default_rng(seed).choice(len(table), 100, replace=False)].max())
    assert np.mean(asenas) > np.mean(rand)
    assert math.isclose(max(asenas), max(asenas))


def test_a_constraint_that_admits_almost_nothing_gives_a_clear_error(monkeypatch):
    import nni_asenas.core.searcher as module

    monkeypatch.setattr(module, "MAX_REJECTIONS_IN_A_ROW", 500)
    huge = {f"d{i}": list(range(3)) for i in range(40)}  # 3**40 architectures: no walk can cover them
    s = AseNasSearcher(huge, seed=0, constraint=lambda arch: False)
    with pytest.raises(RuntimeError, match="rejected 500 architectures in a row"):
        s.ask()


def test_a_tight_constraint_that_random_draws_meet_is_searched_without_an_error(monkeypatch):
    """About 1 random architecture in 1,600 is within the limit: walks and edits near the limit meet long runs of
    rejections, which are not the constraint admitting almost nothing (they stopped such searches before)."""
    import nni_asenas.core.searcher as module

    monkeypatch.setattr(module, "MAX_REJECTIONS_IN_A_ROW", 2000)
    space = {f"d{i}": list(range(4)) for i in range(30)}
    s = AseNasSearcher(space, seed=1, constraint=lambda arch: sum(arch.values()) <= 25)
    for _ in range(120):
        proposal = s.ask()
        assert sum(proposal.arch.values()) <= 25
        s.tell(proposal.id, -sum((v - 1.5) ** 2 for v in proposal.arch.values()))
    assert len(s.history) == 120


def test_near_a_limit_rejected_edits_are_repaired_into_moves_along_it():
    """Every score gain here needs more of the budget: one-edit moves from a centre at the limit are all rejected,
    so the model also ranks each rejected draw's admissible one-edit repairs (two edits from the centre)."""
    space = {f"d{i}": list(range(4)) for i in range(12)}
    weights = [1.0 + 0.25 * i for i in range(12)]

    def score(arch):
        return sum(w * v for w, v in zip(weights, arch.values()))

    s = AseNasSearcher(space, seed=0, n_initial=10, constraint=lambda arch: sum(arch.values()) <= 12)
    by_id = {}
    two_edit_steps = 0
    for _ in range(80):
        proposal = s.ask()
        assert sum(proposal.arch.values()) <= 12
        by_id[proposal.id] = proposal.arch
        if proposal.kind == "search":
            parent = by_id[proposal.parent]
            two_edit_steps += sum(parent[k] != proposal.arch[k] for k in space) == 2
        s.tell(proposal.id, score(proposal.arch))
    assert two_edit_steps > 0
    # the optimum puts the 12 units on the four heaviest decisions (40.5); one-edit moves alone end near 33-37
    assert s.best.score >= 39.5


def test_a_strict_constraint_still_finds_its_few_architectures():
    # 1 architecture in 4096 is valid: random draws miss it, the nearest-first walk finds it
    target = {f"d{i}": 3 for i in range(6)}
    s = AseNasSearcher(BIG, seed=0, constraint=lambda arch: arch == target)
    assert s.ask().arch == target
    assert s.ask() is None


def test_the_surrogate_picks_the_draw_it_rates_highest(monkeypatch):
    s = AseNasSearcher(BIG, seed=3, n_initial=10)
    drive(s, 10)
    seen = []
    original = AseNasSearcher._rate

    def spy(self, children):
        ratings = original(self, children)
        seen.append((list(children), ratings))
        return ratings

    monkeypatch.setattr(AseNasSearcher, "_rate", spy)
    for _ in range(5):
        p = s.ask()
        if p.kind != "search":
            continue
        children, ratings = seen[-1]
        code = tuple(p.arch[label] for label in BIG)
        assert code == children[int(np.argmax(ratings))]
        s.tell(p.id, score_of(p.arch))
    assert seen and all(len(children) > 1 for children, _ in seen)


def test_the_paper_preset_proposes_the_first_usable_draw_and_never_restarts(monkeypatch):
    def refuse(self, children):
        raise AssertionError("the paper preset has no surrogate")

    monkeypatch.setattr(AseNasSearcher, "_rate", refuse)
    s = AseNasSearcher(SPACE, "paper", k=2, seed=0)
    assert s.config.surrogate == "none" and s.config.restart_pool == 0 and s.config.n_steps == 4
    kinds = {p.kind for p in drive(s, 18, objective=lambda arch: len(key(arch)[1][1]) + arch["a"])}
    assert "restart" not in kinds and len(s.history) == 18


def test_a_spent_candidate_other_than_the_best_restarts_elsewhere():
    s = AseNasSearcher(BIG, k=3, seed=4, n_steps=1)
    proposals = drive(s, 200)
    restarts = [p for p in proposals if p.kind == "restart"]
    assert restarts
    first = restarts[0]
    before = {key(p.arch) for p in proposals[: proposals.index(first)]}
    centre = next(p for p in proposals if p.id == first.parent)
    ring = [{**centre.arch, label: option} for label in BIG for option in BIG[label] if option != centre.arch[label]]
    assert all(key(arch) in before for arch in ring)  # every one-edit neighbour of the centre was known
    assert sum(centre.arch[label] != first.arch[label] for label in BIG) > 1  # it starts somewhere new


def test_a_restart_takes_over_its_slot_whatever_its_score():
    s = AseNasSearcher(BIG, k=2, seed=5, n_steps=1)
    proposals = drive(s, 3)
    while True:
        p = s.ask()
        if p.kind == "restart":
            break
        s.tell(p.id, score_of(p.arch))
    assert p.parent in [c.id for c in s.candidates] and p.parent != s.best.id
    slot = [c.id for c in s.candidates].index(p.parent)
    s.tell(p.id, -1.0)  # worse than everything
    assert s.candidates[slot].id == p.id
    assert proposals  # the warm-up ran


def distance(a, b):
    return sum(a[label] != b[label] for label in a)


def fallbacks_of(searcher, n):
    """(proposal, its subspace's centre, every architecture known before it) for the fallbacks of a search."""
    proposals, found = [], []
    for _ in range(n):
        p = searcher.ask()
        if p is None:
            break
        if p.kind == "fallback":
            centre = next(q for q in proposals if q.id == p.parent)
            found.append((p, centre, {key(q.arch) for q in proposals}))
        proposals.append(p)
        searcher.tell(p.id, score_of(p.arch))
    return found


def test_a_spent_subspace_widens_and_the_model_picks_the_fallback(monkeypatch):
    """All draws known: the fallback is the unvisited architecture the model rates highest among random ones at
    every distance 1..``fallback_radius`` from the centre (the nearest ring alone is usually spent by then)."""
    pools = []
    original = AseNasSearcher._widened_subspace

    def spy(self, centre, radius):
        pool = original(self, centre, radius)
        pools.append((centre, pool, self._rate(pool)))
        return pool

    monkeypatch.setattr(AseNasSearcher, "_widened_subspace", spy)
    s = AseNasSearcher(BIG, k=2, seed=6, n_steps=1, max_redraws=2, n_initial=4, fallback_radius=3)
    found = fallbacks_of(s, 150)
    assert len(found) >= 3 and len(pools) == len(found)
    for (p, centre, known), (centre_code, pool, ratings) in zip(found, pools):
        assert centre_code == tuple(centre.arch[label] for label in BIG)
        assert {2, 3} <= {sum(a != b for a, b in zip(code, centre_code)) for code in pool} <= {1, 2, 3}
        assert len(set(pool)) == len(pool) and not {code for code in pool} & {tuple(k[1] for k in arch) for arch in known}
        assert tuple(p.arch[label] for label in BIG) == pool[int(np.argmax(ratings))]
        assert 1 <= distance(p.arch, centre.arch) <= 3 and key(p.arch) not in known


def test_fallback_radius_0_keeps_the_nearest_unvisited_neighbour():
    s = AseNasSearcher(BIG, k=2, seed=6, n_steps=1, max_redraws=2, n_initial=4, fallback_radius=0)
    found = fallbacks_of(s, 150)
    assert found
    for p, centre, known in found:
        ring = [{**centre.arch, label: option} for label in BIG for option in BIG[label]
                if option != centre.arch[label]]
        nearest = 1 if any(key(arch) not in known for arch in ring) else 2
        assert distance(p.arch, centre.arch) == nearest


def test_a_widened_fallback_respects_the_constraint():
    def allowed(arch):
        return arch["d0"] != 3 and arch["d1"] != 3

    s = AseNasSearcher(BIG, k=2, seed=6, n_steps=1, max_redraws=2, n_initial=4, fallback_radius=4,
                       constraint=allowed)
    found = fallbacks_of(s, 120)
    assert found and all(allowed(p.arch) for p, _, _ in found)


def climbs_of(monkeypatch, searcher, n, objective=score_of):
    """(pick, centre, radius, climbed, known before, the model's ratings of pick and climbed) for every climb of a
    search, and its proposals."""
    climbs = []
    original = AseNasSearcher._climb

    def spy(self, code, centre, radius):
        known = set(self._by_code)
        climbed = original(self, code, centre, radius)
        climbs.append((code, centre, radius, climbed, known, *self._rate([code, climbed])))
        return climbed

    monkeypatch.setattr(AseNasSearcher, "_climb", spy)
    return climbs, drive(searcher, n, objective)


def test_where_the_draws_cannot_cover_the_ring_the_models_pick_climbs_inside_the_subspace(monkeypatch):
    """BIG's one-edit ring holds 18 architectures, more than 2 draws: the model's pick moves by single edits to a
    higher-rated unvisited architecture, at most the trust radius (``climb_radius`` or more) edits from the centre,
    and that is proposed."""
    s = AseNasSearcher(BIG, k=2, seed=3, max_redraws=2, n_initial=6, climb_radius=2)
    climbs, proposals = climbs_of(monkeypatch, s, 60)
    searched = [p for p in proposals if p.kind == "search"]
    assert len(climbs) == len(searched) >= 20
    moved = 0
    for (pick, centre, radius, climbed, known, pick_rating, climbed_rating), p in zip(climbs, searched):
        assert tuple(p.arch[label] for label in BIG) == climbed and climbed not in known
        assert 2 <= radius <= 4 and sum(a != b for a, b in zip(climbed, centre)) <= radius
        assert tuple(p.arch[label] for label in BIG) != centre
        if climbed != pick:
            moved += 1
            assert climbed_rating > pick_rating
    assert moved >= len(climbs) // 4


def test_the_climb_stops_where_the_model_rates_no_single_edit_higher(monkeypatch):
    """Unless it used all ``climb_radius`` steps, the climb ends where no unvisited single edit within the radius is
    rated higher (no constraint here, so every such edit is admissible)."""
    ends = []
    original = AseNasSearcher._climb

    def spy(self, code, centre, radius):
        climbed = original(self, code, centre, radius)
        ring = [climbed[:i] + (o,) + climbed[i + 1:] for i in range(6) for o in range(4) if o != climbed[i]]
        ring = [c for c in ring if c not in self._by_code and sum(a != b for a, b in zip(c, centre)) <= radius]
        ratings = self._rate([climbed, *ring])
        ends.append((sum(a != b for a, b in zip(climbed, code)), radius, ratings[0], max(ratings[1:], default=-np.inf)))
        return climbed

    monkeypatch.setattr(AseNasSearcher, "_climb", spy)
    drive(AseNasSearcher(BIG, k=2, seed=3, max_redraws=2, n_initial=6, climb_radius=6), 40)
    stopped = [(rating, best_step) for steps, radius, rating, best_step in ends if steps < radius]
    assert len(stopped) >= 20
    assert all(best_step <= rating for rating, best_step in stopped)


def test_the_trust_radius_grows_by_one_per_improvement_in_a_row_up_to_twice_climb_radius(monkeypatch):
    """A centre reached by n improvements in a row (each beat the candidate whose subspace gave it) is climbed from
    within ``climb_radius + n`` edits, at most twice ``climb_radius``; a random or restarted centre, ``climb_radius``."""
    s = AseNasSearcher(BIG, k=2, seed=3, max_redraws=2, n_initial=6, climb_radius=2)
    climbs, _ = climbs_of(monkeypatch, s, 80)

    def improvements(rid):
        n, record = 0, s._records[rid]
        while record.kind in ("search", "fallback") and s._records[record.parent].score < record.score:
            n, record = n + 1, s._records[record.parent]
        return n

    radii = []
    for _, centre, radius, *_ in climbs:
        radii.append(radius)
        assert radius == min(2 + improvements(s._by_code[centre]), 4)
    assert min(radii) == 2 and max(radii) == 4


def test_the_climb_respects_the_constraint():
    def allowed(arch):
        return arch["d0"] + arch["d1"] <= 3

    s = AseNasSearcher(BIG, k=2, seed=3, max_redraws=2, n_initial=6, climb_radius=3, constraint=allowed)
    proposals = drive(s, 60)
    assert all(allowed(p.arch) for p in proposals)


@pytest.mark.parametrize("settings", [{"max_redraws": 32}, {"max_redraws": 2, "climb_radius": 0},
                                      {"max_redraws": 2, "surrogate": "none"}])
def test_no_climb_where_the_draws_cover_the_ring_or_it_is_turned_off(monkeypatch, settings):
    """18 <= 32 draws (as NAS-Bench-201's 24), climb_radius 0 and no model: the pick is proposed as drawn."""
    calls = []
    monkeypatch.setattr(AseNasSearcher, "_climb", lambda self, code, centre, radius: calls.append(code) or code)
    drive(AseNasSearcher(BIG, k=2, seed=3, n_initial=6, **settings), 40)
    assert calls == []


def test_default_search_finds_the_optimum_of_a_smooth_objective():
    for seed in range(3):
        s = AseNasSearcher(BIG, seed=seed)
        drive(s, 80)
        assert s.best.arch == {label: 3 for label in BIG}


def test_a_version_1_state_of_0_2_continues_its_search():
    """States of nni-asenas 0.2.0 (tests/data/states-v1.pt), also in the older version-1 shapes (no n_initial in the
    config, the seed inside it), load with their results, candidates, policy and seed, and continue with this
    release's model of the scores (0.2 ranked with a fixed kernel, so the proposals after them differ from 0.2's):
    new architectures only, the same ones on every load, as version-3 states."""
    import copy

    import v1_states

    saved = v1_states.load()
    without_n_initial = copy.deepcopy(saved["searcher_n_initial_0"])
    del without_n_initial["state"]["config"]["n_initial"]
    seed_in_config = copy.deepcopy(saved["searcher"])
    seed_in_config["state"]["config"]["seed"] = seed_in_config["state"].pop("seed")
    for case in (saved["searcher"], saved["searcher_n_initial_0"], without_n_initial, seed_in_config):
        assert case["state"]["version"] == 1
        runs = []
        for _ in range(2):
            restored = AseNasSearcher(v1_states.SPACE, seed=999, k=2, hidden_size=8)
            restored.load_state_dict(case["state"])
            seen = {tuple(r["code"]) for r in case["state"]["records"].values()}
            assert restored.seed == 5 and len(restored.state_dict()["records"]) == len(seen)
            restored.tell(restored.state_dict()["next_id"] - 1, v1_states.score(case["pending"]))
            continued = []
            for _ in range(len(case["next"])):
                proposal = restored.ask()
                continued.append(proposal.arch)
                restored.tell(proposal.id, v1_states.score(proposal.arch))
            codes = [tuple(r["code"]) for r in restored.state_dict()["records"].values()]
            assert len(set(codes)) == len(codes)  # nothing proposed twice
            assert restored.state_dict()["version"] == 4
            assert restored.config.fallback_radius == 0  # saved before the widened fallback: the old one goes on
            assert restored.config.climb_radius == 0
            runs.append(continued)
        assert runs[0] == runs[1]


def test_upgrade_state_names_what_is_missing():
    from nni_asenas.core.searcher import upgrade_state

    state = AseNasSearcher(SPACE, seed=0).state_dict()
    assert upgrade_state(state) == state
    incomplete = {**state, "config": {k: v for k, v in state["config"].items() if k != "n_initial"}}
    with pytest.raises(ValueError, match="config has no 'n_initial' setting"):  # version 3 keeps every setting
        AseNasSearcher(SPACE, seed=0).load_state_dict(incomplete)
    for damaged, message in (({**state, "version": 7}, "unsupported searcher state version 7"),
                             ({"version": 1}, "no 'config' entry"),
                             ({"version": 1, "config": {"k": 3}}, "no 'seed' entry"),
                             ([], "a saved searcher state is a dict")):
        with pytest.raises(ValueError, match=message):
            upgrade_state(damaged)


def test_with_a_canonical_form_one_network_is_proposed_once():
    """The MobileNet-like space: kernel and expand labels of blocks beyond a stage's depth do not change the
    network. With ``canonical``, 1000 proposals are 1000 different networks, each in canonical form."""
    from nni_asenas.imagenet.space import canonical_arch, decisions

    searcher = AseNasSearcher(decisions(), seed=0, canonical=canonical_arch)
    seen = set()
    for step in range(1000):
        proposal = searcher.ask()
        assert proposal is not None
        assert canonical_arch(proposal.arch) == proposal.arch
        key = tuple(sorted(proposal.arch.items()))
        assert key not in seen, f"proposal {step} repeats a network"
        seen.add(key)
        searcher.tell(proposal.id, sum(proposal.arch.values()) + (step % 7) / 10)
    plain = AseNasSearcher(decisions(), seed=0)  # without it, equivalent label sets are different architectures
    proposals = [plain.ask() for _ in range(20)]
    assert any(canonical_arch(p.arch) != p.arch for p in proposals if p is not None)


def test_canonical_forms_are_remembered_in_a_bounded_memo(monkeypatch):
    """``canonical`` is asked once per architecture while the memo has room; a memo emptied when full (here at 50
    entries) never holds more, and the search proposes exactly what it proposes with room for everything."""
    from nni_asenas.core import searcher as searcher_module

    def canonical(arch):  # the last two decisions do not matter when d0 is 0
        return {**arch, "d4": 0, "d5": 0} if arch["d0"] == 0 else dict(arch)

    def search(memo_size):
        monkeypatch.setattr(searcher_module, "CANON_MEMO_SIZE", memo_size)
        asked = []
        s = AseNasSearcher(BIG, k=2, seed=3, max_redraws=2, n_initial=6,
                           canonical=lambda arch: asked.append(tuple(arch.values())) or canonical(arch))
        sizes = []
        proposals = []
        for _ in range(60):
            p = s.ask()
            proposals.append(p.arch)
            s.tell(p.id, score_of(p.arch))
            sizes.append(len(s._canon_memo))
        return proposals, asked, max(sizes)

    roomy, asked, _ = search(10**6)
    assert len(asked) == len(set(asked)) > 100
    bounded, asked_bounded, largest = search(50)
    assert bounded == roomy and largest <= 50 and len(asked_bounded) > len(asked)


def test_a_canonical_form_merges_observed_and_initial_architectures():
    space = {"a": [0, 1, 2], "b": ["x", "y"]}

    def canonical(arch):  # "b" does not matter when "a" is 0
        return {**arch, "b": "x"} if arch["a"] == 0 else dict(arch)

    searcher = AseNasSearcher(space, k=2, n_initial=0, seed=1, canonical=canonical,
                              initial_architectures=[{"a": 0, "b": "y"}])
    first = searcher.ask()
    assert first.arch == {"a": 0, "b": "x"}
    searcher.tell(first.id, 1.0)
    assert searcher.observe({"a": 0, "b": "y"}, 5.0).id == first.id  # the same network: its first result stays
    archs = [first.arch]
    while (proposal := searcher.ask()) is not None:
        archs.append(proposal.arch)
        searcher.tell(proposal.id, float(proposal.arch["a"]))
    assert len(archs) == 5 and len({tuple(a.items()) for a in archs}) == 5  # 6 label sets, 5 networks

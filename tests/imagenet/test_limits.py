"""Efficiency limits as constraints: exact MAdds per resolution, Note10 latency, and limits no network meets."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from nni_asenas.errors import UsageError
from nni_asenas.imagenet.limits import latency_constraint, madds, madds_constraint, min_latency, min_madds
from nni_asenas.imagenet.ofa_latency import OfaLatencyTable
from nni_asenas.imagenet.ofa_space import RESOLUTIONS, SlotCosts, decisions_with_resolution, smallest_arch
from nni_asenas.imagenet.space import count_madds, decisions


def random_archs(n: int, seed: int) -> list[dict[str, int]]:
    rng = random.Random(seed)
    space = decisions_with_resolution()
    return [{label: rng.choice(options) for label, options in space.items()} for _ in range(n)]


def blocks_of(arch: dict[str, int]) -> dict[str, int]:
    return {label: value for label, value in arch.items() if label != "resolution"}


def test_madds_equal_the_exact_counter_at_every_resolution():
    for arch in random_archs(300, seed=0) + [smallest_arch(None)]:
        assert madds(arch, resolution=None) == count_madds(blocks_of(arch), resolution=arch["resolution"])
        assert madds(blocks_of(arch)) == count_madds(blocks_of(arch))
        assert madds(blocks_of(arch), resolution=236) == count_madds(blocks_of(arch), resolution=236)


def test_madds_constraint_uses_each_architectures_resolution():
    archs = random_archs(200, seed=1)
    limit = 350e6
    within = madds_constraint(limit, resolution=None)
    fixed = madds_constraint(limit)
    verdicts = [within(arch) for arch in archs]
    assert verdicts == [count_madds(blocks_of(arch), resolution=arch["resolution"]) <= limit for arch in archs]
    assert 0 < sum(verdicts) < len(archs)
    assert [fixed(blocks_of(arch)) for arch in archs] == [count_madds(blocks_of(arch)) <= limit for arch in archs]
    with pytest.raises(UsageError, match="missing decision 'resolution'"):
        within(blocks_of(archs[0]))


def test_a_madds_limit_below_the_smallest_network_is_one_line():
    smallest_224 = count_madds(smallest_arch(224))
    smallest_160 = count_madds(smallest_arch(224), resolution=160)
    assert min_madds() == (smallest_224, smallest_arch(224), 224)
    assert min_madds(None) == (smallest_160, smallest_arch(None), 160)
    assert madds_constraint(smallest_224)(smallest_arch(224))  # the limit itself is possible
    with pytest.raises(UsageError) as info:
        madds_constraint(smallest_224 - 1)
    assert str(info.value) == (f"MAdds limit {(smallest_224 - 1) / 1e6:g} M is below the smallest network of the "
                               f"space: {smallest_224 / 1e6:.2f} M (depth 2, kernel 3, expand 3 everywhere, at 224 px)")
    madds_constraint(smallest_160, resolution=None)  # possible at 160 px, though not at 224
    with pytest.raises(UsageError, match=f"{smallest_160 / 1e6:.2f} M .* at 160 px"):
        madds_constraint(smallest_160 - 1, resolution=None)
    for bad in (0, -5e6, float("nan"), float("inf"), "600e6", True):
        with pytest.raises(UsageError, match="the MAdds limit must be a positive number"):
            madds_constraint(bad)  # type: ignore[arg-type]


def test_slot_cost_minimum_is_exact_where_the_smallest_network_is_not_the_cheapest():
    rng = random.Random(3)
    slots = [[0.0] + [rng.uniform(-1.0, 2.0) for _ in range(9)] for _ in range(20)]  # negative terms: depth can win
    costs = SlotCosts([1.0], slots, [2.0])
    least, arch = costs.minimum()
    assert costs.total(arch) == least
    assert arch != smallest_arch(224)
    assert all(costs.total(blocks_of(other)) >= least for other in random_archs(3000, seed=4))
    # a global minimum is a local one: no change of a single decision lowers it
    for label, options in decisions().items():
        for option in options:
            assert costs.total(dict(arch, **{label: option})) >= least


# ------------------------------------------------------------------------------------ latency (OFA's tables)

@pytest.fixture(scope="module")
def note10(ofa_files: Path) -> Path:
    return ofa_files / "note10"


def test_latency_constraint_and_a_limit_below_the_fastest_network(note10: Path):
    decision = OfaLatencyTable(note10, resolution=None)
    fastest, arch, size = min_latency(decision)
    # on OFA's Note10 tables the fastest network is the smallest, at 160 px
    assert (arch, size) == (smallest_arch(None), 160) and fastest == decision(smallest_arch(None))
    for resolution in RESOLUTIONS:
        fixed = OfaLatencyTable(note10, resolution=resolution)
        assert min_latency(fixed)[:2] == (fixed(smallest_arch(224)), smallest_arch(224))
    within = latency_constraint(decision, 25.0)
    archs = random_archs(200, seed=2)
    verdicts = [within(arch) for arch in archs]
    assert verdicts == [decision(arch) <= 25.0 for arch in archs] and 0 < sum(verdicts) < len(archs)
    assert latency_constraint(decision, fastest)(smallest_arch(None))
    with pytest.raises(UsageError) as info:
        latency_constraint(decision, 9.0)
    assert str(info.value) == (f"latency limit 9 ms is below the fastest network of the space in {note10}: "
                               f"{fastest:.2f} ms (depth 2, kernel 3, expand 3 everywhere, at 160 px)")
    at_224 = OfaLatencyTable(note10)
    with pytest.raises(UsageError, match=f"{at_224(smallest_arch(224)):.2f} ms .* at 224 px"):
        latency_constraint(at_224, 12.0)
    with pytest.raises(UsageError, match=r"the latency limit \(ms\) must be a positive number"):
        latency_constraint(at_224, 0)

"""NNI simplified spaces -> searcher decisions, and architectures <-> NNI samples."""

from __future__ import annotations

import itertools

import pytest
from nni.mutable import Categorical, CategoricalMultiple, ExpressionConstraint, Numerical

from nni_asenas.errors import UsageError
from nni_asenas.nni_tools.space_codec import SpaceCodec


def _space(*mutables):
    return {m.label: m for m in mutables}


def test_each_mutable_kind_becomes_decisions():
    a = Categorical(["x", "y", "z"], label="a")
    b = CategoricalMultiple([1, 2, 3], n_chosen=1, label="b")
    c = CategoricalMultiple([4, 5, 6], n_chosen=None, label="c")
    d = CategoricalMultiple(["p", "q", "r", "s"], n_chosen=2, label="d")
    codec = SpaceCodec(_space(a, b, c, d, ExpressionConstraint(a != "x", label="not_x")))
    assert codec.decisions == {
        "a": ["x", "y", "z"],
        "b": [1, 2, 3],
        "c[0]": [False, True],
        "c[1]": [False, True],
        "c[2]": [False, True],
        "d": list(itertools.combinations(["p", "q", "r", "s"], 2)),
    }
    assert codec.labels == ["a", "b", "c", "d"]


def test_arch_and_sample_round_trip_and_freeze():
    a = Categorical(["x", "y"], label="a")
    b = CategoricalMultiple([1, 2, 3], n_chosen=1, label="b")
    c = CategoricalMultiple([4, 5, 6], n_chosen=None, label="c")
    d = CategoricalMultiple(["p", "q", "r"], n_chosen=2, label="d")
    space = _space(a, b, c, d)
    codec = SpaceCodec(space)
    arch = {"a": "y", "b": 3, "c[0]": True, "c[1]": False, "c[2]": True, "d": ("p", "r")}
    sample = codec.to_sample(arch)
    assert sample == {"a": "y", "b": [3], "c": [4, 6], "d": ["p", "r"]}
    for label, mutable in space.items():
        assert mutable.freeze(sample) == sample[label]  # NNI accepts every value
    assert codec.to_arch(sample) == arch
    assert codec.to_arch({**sample, "d": ["r", "p"], "c": [6, 4]}) == arch  # order inside a subset is irrelevant
    assert codec.to_arch({**sample, "extra/annotation": 1}) == arch


@pytest.mark.parametrize(
    "sample, message",
    [
        ({"b": [1]}, "lacks label 'a'"),
        ({"a": "w", "b": [1]}, "a='w' is not one of"),
        ({"a": "x", "b": [7]}, "b holds 7"),
        ({"a": "x", "b": [1, 2]}, "must hold 1 distinct"),
    ],
)
def test_bad_samples_are_named(sample, message):
    codec = SpaceCodec(_space(Categorical(["x", "y"], label="a"), CategoricalMultiple([1, 2], n_chosen=1, label="b")))
    with pytest.raises(UsageError, match=message):
        codec.to_arch(sample)


def test_numerical_is_refused_with_its_label():
    space = _space(Categorical([1, 2], label="ok"), Numerical(0.0, 1.0, label="dropout_rate"))
    with pytest.raises(UsageError, match="'dropout_rate' \\(Numerical\\) cannot be searched"):
        SpaceCodec(space)


def test_huge_subset_choice_is_refused():
    values = list(range(40))
    with pytest.raises(UsageError, match="'wide'.*subsets"):
        SpaceCodec(_space(CategoricalMultiple(values, n_chosen=10, label="wide")))
    SpaceCodec(_space(CategoricalMultiple(values, n_chosen=2, label="pairs")))  # 780 subsets: fine


def test_space_without_choices_is_refused():
    with pytest.raises(UsageError, match="no categorical choice"):
        SpaceCodec({})

"""The MobileNet-like route every evaluator shares: limits as the searcher's constraint, errors naming parameters."""

from __future__ import annotations

from typing import Any, Mapping

import pytest

from nni_asenas.errors import UsageError
from nni_asenas.imagenet import space as mobilenet
from nni_asenas.imagenet.space_search import run_mobilenet_search


def depth_score(arch: Mapping[str, Any]) -> float:
    return float(sum(arch[f"s{i}_depth"] for i in range(1, 6)))


def shallow_first_stage(arch: Mapping[str, Any]) -> bool:
    return arch["s1_depth"] == 2


def test_any_constraint_beside_the_madds_limit_is_never_violated() -> None:
    scored: list[Mapping[str, Any]] = []

    def evaluate(arch: Mapping[str, Any]) -> float:
        scored.append(arch)
        return depth_score(arch)

    result = run_mobilenet_search(evaluate, max_queries=15, evaluator={"kind": "formula"}, seed=2, n_initial=5,
                                  max_madds=500e6, constraint=shallow_first_stage)
    assert result["queries"] == len(scored) == 15 and result["evaluator"] == {"kind": "formula"}
    assert all(shallow_first_stage(arch) and mobilenet.count_madds(arch) <= 500e6 for arch in scored)
    assert all(arch == mobilenet.canonical_arch(arch) for arch in scored)  # evaluate sees canonical architectures
    assert result["best"]["top1"] == max(entry["top1"] for entry in result["trajectory"])


def test_bad_arguments_name_the_parameter() -> None:
    start = {label: options[-1] for label, options in mobilenet.decisions().items()}
    cases = [
        ({"max_queries": 0}, "max_queries must be >= 1"),
        ({"max_madds": -1.0}, "max_madds must be a positive number"),
        ({"max_madds": 1e6}, "max_madds 1.0 M is below the smallest network"),
        ({"initial_architectures": [start], "max_madds": None, "constraint": shallow_first_stage},
         "initial architecture outside the constraint"),
        ({"initial_architectures": [{"s1_depth": 9}]}, "initial architecture {'s1_depth': 9}"),
    ]
    for overrides, message in cases:
        arguments: dict[str, Any] = {"max_queries": 3, "evaluator": {"kind": "formula"}, **overrides}
        with pytest.raises(UsageError, match=message):
            run_mobilenet_search(depth_score, **arguments)
    with pytest.raises(ValueError, match="evaluator needs a 'kind'"):
        run_mobilenet_search(depth_score, max_queries=3, evaluator={})

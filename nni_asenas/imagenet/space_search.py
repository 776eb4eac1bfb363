"""ASE-NAS over the MobileNet-like space with any evaluator, under a MAdds limit and any other constraint.

:func:`run_mobilenet_search` is the route the supernet search (:mod:`nni_asenas.imagenet.supernet_search`) and the
predictor search (:mod:`nni_asenas.imagenet.predictor_search`) share: it builds the searcher over the space's
decisions with the limits as its ``constraint`` (an over-limit architecture is never proposed, let alone
evaluated), runs the search loop (:func:`nni_asenas.search.run_search`) with ``evaluate(arch) -> top-1 percent`` and
returns the ``result.json`` document (schema: :mod:`nni_asenas.search.result`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping

from nni_asenas.config import AseNasConfig, resolve_config
from nni_asenas.errors import UsageError
from nni_asenas.imagenet import limits
from nni_asenas.imagenet import space as mobilenet
from nni_asenas.imagenet.ofa_space import (
    RESOLUTION_LABEL,
    RESOLUTIONS,
    canonical_arch_with_resolution,
    decisions_with_resolution,
    split_resolution,
)
from nni_asenas.search.initial import read_initial_architectures
from nni_asenas.search.loop import Query, run_search

__all__ = ["SPACE", "run_mobilenet_search"]

SPACE = "mobilenet"


def run_mobilenet_search(
    evaluate: Callable[[dict[str, int]], float],
    *,
    max_queries: int,
    evaluator: Mapping[str, Any],
    seed: int = 0,
    max_madds: float | None = mobilenet.MAX_MADDS,
    madds_resolution: int | None = mobilenet.RESOLUTION,
    width_mult: float = mobilenet.WIDTH_MULT,
    num_classes: int = mobilenet.NUM_CLASSES,
    constraint: Callable[[dict[str, int]], bool] | None = None,
    initial_architectures: Iterable[Any] = (),
    config: AseNasConfig | str | None = None,
    on_query: Callable[[dict[str, Any]], None] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Search ``max_queries`` architectures of the MobileNet-like space; ``evaluate(arch)`` returns top-1 in percent
    (higher is better) of a canonical architecture (:func:`~nni_asenas.imagenet.space.canonical_arch`).

    ``max_madds`` (None: no limit) counts at ``madds_resolution`` px for networks of ``width_mult`` and
    ``num_classes``; ``constraint(arch) -> bool`` adds any other limit (latency, ...). ``madds_resolution=None``
    makes the input resolution one more decision, as in OFA's search (``"resolution"``, one of OFA's sizes:
    :func:`~nni_asenas.imagenet.ofa_space.decisions_with_resolution`): every architecture that ``evaluate`` and
    ``constraint`` get, and the trajectory and candidates hold, carries it; MAdds count at each one's own
    resolution; ``best`` is the network (``arch``) and its ``resolution``. ``evaluator`` describes the
    evaluator in the result (its ``kind`` and facts). ``initial_architectures`` are architectures or files of them
    (:mod:`nni_asenas.search.initial`). An evaluation that raises ``RuntimeError`` or ``ValueError`` is a failed
    query and the search goes on. ``on_query`` gets each trajectory entry.
    """
    if isinstance(max_queries, bool) or not isinstance(max_queries, int) or max_queries < 1:
        raise UsageError(f"max_queries must be >= 1, got {max_queries}")
    if max_madds is not None and not (max_madds > 0 and math.isfinite(max_madds)):
        raise UsageError(f"max_madds must be a positive number, got {max_madds!r}")
    if "kind" not in evaluator:
        raise ValueError("evaluator needs a 'kind' (what scores the architectures)")

    canonical: Callable[[Mapping[str, Any]], dict[str, int]]
    if madds_resolution is None:
        space, canonical = decisions_with_resolution(), canonical_arch_with_resolution
    else:
        space, canonical = mobilenet.decisions(), mobilenet.canonical_arch

    tables = (width_mult, num_classes) == (mobilenet.WIDTH_MULT, mobilenet.NUM_CLASSES)

    def madds(arch: Mapping[str, Any]) -> int:
        network, size = split_resolution(arch, madds_resolution, None if madds_resolution is not None else RESOLUTIONS)
        # the same count from per-block tables (tests/imagenet/test_limits.py), many times faster: the constraint
        # is asked for thousands of networks in a long search
        if tables:
            return limits.madds(network, resolution=size)
        return mobilenet.count_madds(network, width_mult=width_mult, num_classes=num_classes, resolution=size)

    smallest = {label: options[0] for label, options in space.items()}  # at the least resolution where searched
    if max_madds is not None and madds(smallest) > max_madds:
        at = smallest.get(RESOLUTION_LABEL, madds_resolution)
        raise UsageError(f"max_madds {max_madds / 1e6:.1f} M is below the smallest network of the space "
                         f"({madds(smallest) / 1e6:.1f} M MAdds at {at} px)")
    initial = read_initial_architectures(initial_architectures, canonical)
    for arch in initial:
        if max_madds is not None and madds(arch) > max_madds:
            raise UsageError(f"initial architecture over the MAdds limit: {madds(arch) / 1e6:.1f} M > "
                             f"{max_madds / 1e6:.1f} M")
        if constraint is not None and not constraint(arch):
            raise UsageError(f"initial architecture outside the constraint: {arch}")

    def allowed(arch: dict[str, Any]) -> bool:
        return (max_madds is None or madds(arch) <= max_madds) and (
            constraint is None or constraint(canonical(arch)))

    config = resolve_config(config, **settings)
    from nni_asenas.core.searcher import AseNasSearcher  # torch and the policy: after the checks

    # canonical: labels of blocks beyond a stage's depth do not change the network, so one network is one query
    searcher = AseNasSearcher(space, config, initial_architectures=initial, seed=seed,
                              constraint=None if max_madds is None and constraint is None else allowed,
                              canonical=canonical)
    trajectory: list[dict[str, Any]] = []

    def record(query: Query) -> None:
        arch = canonical(query.arch)
        trajectory.append({"query": query.number, "arch": arch, "top1": query.value, "madds": madds(arch),
                           "kind": query.proposal.kind, "best_top1": query.best_value, "seconds": query.seconds})
        if on_query is not None:
            on_query(trajectory[-1])

    search = run_search(searcher, lambda arch: evaluate(canonical(arch)), max_queries=max_queries,
                        on_query=record, score_unit=100.0)
    best = None
    if search.best is not None:
        arch = canonical(search.best.arch)
        network, size = split_resolution(arch, madds_resolution, None if madds_resolution is not None else RESOLUTIONS)
        best = {"arch": dict(network), "top1": search.best.value, "madds": madds(arch),
                "params": mobilenet.count_params(network, width_mult=width_mult, num_classes=num_classes)}
        if madds_resolution is None:
            best["resolution"] = size
    return search.document(
        strategy="asenas+" if initial else "asenas", space=SPACE, seed=seed,
        settings={**config.to_dict(), "initial_architectures": initial}, best=best,
        candidates=[canonical(obs.arch) for obs in search.candidates], trajectory=trajectory,
        max_madds=max_madds, madds_resolution=madds_resolution, evaluator=dict(evaluator),
    )

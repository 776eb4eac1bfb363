"""Efficiency limits as searcher constraints (``arch -> bool``): MAdds, and latency from OFA's tables.

Each builder first checks that the limit is possible: a limit below the cheapest network of the space is a
one-line UsageError naming that network's value, so a search never starts on a limit no architecture meets.
The MAdds are the package's exact count (:func:`~nni_asenas.imagenet.space.count_madds`), computed here from
per-block terms so that a check costs microseconds; they depend on the resolution, which is fixed
(``resolution=224``) or a decision of the architecture (``resolution=None``, the ``"resolution"`` label of
:func:`~nni_asenas.imagenet.ofa_space.decisions_with_resolution`).
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any, Callable, Mapping

from ..errors import UsageError
from .ofa_latency import OfaLatencyTable
from .ofa_space import RESOLUTION_LABEL, RESOLUTIONS, SlotCosts, check_resolution, choice_archs, split_resolution
from .predictor import N_CHOICES, N_SLOTS
from .space import RESOLUTION, STAGES, depth_label, layer_shapes

__all__ = ["latency_constraint", "madds", "madds_constraint", "min_latency", "min_madds"]

Constraint = Callable[[dict[str, Any]], bool]


@functools.cache
def _madds_costs(resolution: int) -> SlotCosts:
    slots = [[0] * N_CHOICES for _ in range(N_SLOTS)]
    head: list[int] = []
    tail: list[int] = []
    for choice, arch in choice_archs():
        per_block: dict[int, int] = {}
        outside: list[tuple[str, int]] = []
        for layer in layer_shapes(arch, resolution=resolution):
            if layer.name.startswith("blocks."):
                block = int(layer.name.split(".")[1])
                per_block[block] = per_block.get(block, 0) + layer.madds
            else:
                outside.append((layer.name, layer.madds))
        for slot in range(N_SLOTS):
            slots[slot][choice] = per_block[slot + 1]  # block 0 is the fixed first block
        head = [madds for name, madds in outside if name == "stem"] + [per_block[0]]
        tail = [madds for name, madds in outside if name != "stem"]
    return SlotCosts(head, slots, tail)


def _resolutions(resolution: int | None) -> tuple[int, ...]:
    return RESOLUTIONS if resolution is None else (check_resolution(resolution, None),)


def madds(arch: Mapping[str, Any], *, resolution: int | None = RESOLUTION) -> int:
    """MAdds of the architecture at its resolution: ``count_madds(arch, resolution=...)``, from per-block tables.

    ``resolution``: fixed (any positive integer), or None when ``arch`` carries ``"resolution"``.
    """
    blocks, size = split_resolution(arch, resolution, RESOLUTIONS if resolution is None else None)
    return int(_madds_costs(check_resolution(size, None)).total(blocks))


def _check_limit(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
        raise UsageError(f"{what} must be a positive number, got {value!r}")
    return float(value)


def _describe(arch: Mapping[str, Any], size: int) -> str:
    depths = [arch[depth_label(stage)] for stage in range(1, len(STAGES) + 1)]
    kernels = sorted({value for label, value in arch.items() if label.endswith("_kernel")})
    expands = sorted({value for label, value in arch.items() if label.endswith("_expand")})
    if depths == [2] * 5 and kernels == [3] and expands == [3]:
        return f"depth 2, kernel 3, expand 3 everywhere, at {size} px"
    return f"{json.dumps(dict(arch))} at {size} px"


def min_madds(resolution: int | None = RESOLUTION) -> tuple[int, dict[str, int], int]:
    """The least MAdds of any architecture, that architecture (the smallest network) and its resolution (160 px
    where the resolution is a decision; then the architecture carries ``"resolution"``)."""
    size = min(_resolutions(resolution), key=lambda size: _madds_costs(size).minimum()[0])
    value, arch = _madds_costs(size).minimum()
    return value, arch if resolution is not None else {**arch, RESOLUTION_LABEL: size}, size


def madds_constraint(max_madds: float, *, resolution: int | None = RESOLUTION) -> Constraint:
    """``arch -> MAdds <= max_madds`` (at the fixed resolution, or the architecture's own where it is None)."""
    limit = _check_limit(max_madds, "the MAdds limit")
    least, arch, size = min_madds(resolution)
    if least > limit:
        raise UsageError(f"MAdds limit {limit / 1e6:g} M is below the smallest network of the space: "
                         f"{least / 1e6:.2f} M ({_describe(arch, size)})")

    def within_madds_limit(arch: dict[str, Any]) -> bool:
        return madds(arch, resolution=resolution) <= limit

    return within_madds_limit


def min_latency(table: OfaLatencyTable) -> tuple[float, dict[str, int], int]:
    """The least latency (ms) of any architecture in ``table``'s resolutions, that architecture and its resolution
    (the architecture carries ``"resolution"`` where the table's resolution is a decision)."""
    size = min(table.resolutions, key=lambda size: table.slot_costs(size).minimum()[0])
    value, arch = table.slot_costs(size).minimum()
    return value, arch if table.resolution is not None else {**arch, RESOLUTION_LABEL: size}, size


def latency_constraint(table: OfaLatencyTable, max_latency_ms: float) -> Constraint:
    """``arch -> latency <= max_latency_ms``, the latency from ``table`` (OFA's Note10 tables, ms)."""
    limit = _check_limit(max_latency_ms, "the latency limit (ms)")
    least, arch, size = min_latency(table)
    if least > limit:
        raise UsageError(f"latency limit {limit:g} ms is below the fastest network of the space in "
                         f"{table.folder}: {least:.2f} ms ({_describe(arch, size)})")

    def within_latency_limit(arch: dict[str, Any]) -> bool:
        return table.latency(arch) <= limit

    return within_latency_limit

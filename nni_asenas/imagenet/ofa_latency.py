"""Latency of a MobileNet-like network from OFA's per-layer lookup tables (OFA's Note10 tables).

OFA measured every layer its w1.2 MobileNetV3 space can contain on a Samsung Note10, one table per input
resolution (``{resolution}_lookup_table.yaml``: layer key -> ``mean`` / ``std`` / ``count`` in ms). A network's
latency is the sum of the means of its layers, as OFA's ``LatencyEstimator.predict_network_latency_given_spec``
adds them:

* ``Conv``: the stem, ``input:{r}x{r}x3-output:{s}x{s}x24``;
* ``expanded_conv``: every block, the fixed first block included, keyed by input and output maps (side x side x
  channels), ``expand`` (the hidden channels), ``kernel``, ``stride``, ``idskip`` (residual), ``se`` and ``hs``
  (hard-swish);
* ``Conv_1`` (the 1x1 head conv), ``AvgPool2D``, ``Conv_2`` (the feature-mix layer), ``Logits`` (the classifier).

Squeeze-excite, activations and the BatchNorms are inside the keys, not separate entries. The channels are the
package's own (``make_divisible(c * 1.2, 8)``), which are OFA's. Every key any architecture can need is looked
up when a table is read, so a table that lacks one is an error before any search, and a latency afterwards is
20 additions (:class:`~nni_asenas.imagenet.ofa_space.SlotCosts`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from ..errors import UsageError
from .ofa_space import (
    RESOLUTIONS,
    PlacedBlock,
    SlotCosts,
    check_resolution,
    choice_archs,
    placed_blocks,
    split_resolution,
)
from .predictor import N_CHOICES, N_SLOTS
from .space import NUM_CLASSES, RESOLUTION, BlockSpec, network_plan

__all__ = ["OfaLatencyTable", "expanded_conv_key", "layer_key", "table_file"]


def _shape(*sizes: int) -> str:
    return "x".join(str(size) for size in sizes)


def layer_key(layer_type: str, input_shape: Sequence[int], output_shape: Sequence[int]) -> str:
    """A table key of a layer without block options, e.g. ``Conv-input:224x224x3-output:112x112x24``."""
    return f"{layer_type}-input:{_shape(*input_shape)}-output:{_shape(*output_shape)}"


def expanded_conv_key(block: PlacedBlock) -> str:
    """The table key of one inverted-residual block (OFA's ``expanded_conv`` entries)."""
    spec: BlockSpec = block.spec
    return (layer_key("expanded_conv", (block.in_size, block.in_size, spec.in_channels),
                      (block.out_size, block.out_size, spec.out_channels))
            + f"-expand:{spec.hidden_channels}-kernel:{spec.kernel}-stride:{spec.stride}"
            f"-idskip:{int(spec.residual)}-se:{int(bool(spec.se_channels))}-hs:{int(spec.activation == 'hswish')}")


def table_file(folder: str | Path, resolution: int) -> Path:
    """Where OFA's table for ``resolution`` lies in ``folder``: ``{resolution}_lookup_table.yaml``."""
    return Path(folder) / f"{resolution}_lookup_table.yaml"


def _read_table(path: Path) -> Mapping[str, Any]:
    if not path.is_file():
        raise UsageError(f"latency table {path} does not exist")
    try:
        table = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"latency table {path}: not readable YAML ({first_line})") from None
    if not isinstance(table, Mapping) or not table:
        raise UsageError(f"latency table {path}: expected a mapping layer key -> {{mean: ms, ...}}")
    return table


def _mean(table: Mapping[str, Any], key: str, path: Path) -> float:
    entry = table.get(key)
    if entry is None:
        raise UsageError(f"latency table {path} has no entry {key!r}")
    mean = entry.get("mean") if isinstance(entry, Mapping) else None
    if isinstance(mean, bool) or not isinstance(mean, (int, float)) or not math.isfinite(mean) or mean < 0:
        raise UsageError(f"latency table {path}: entry {key!r} has no finite non-negative 'mean' (ms)")
    return float(mean)


def _slot_costs(table: Mapping[str, Any], path: Path, resolution: int) -> SlotCosts:
    slots = [[0.0] * N_CHOICES for _ in range(N_SLOTS)]
    head: list[float] = []
    tail: list[float] = []
    for choice, arch in choice_archs():
        blocks = placed_blocks(arch, resolution)
        for slot, block in enumerate(blocks[1:]):
            slots[slot][choice] = _mean(table, expanded_conv_key(block), path)
        if not head:
            plan = network_plan(arch)
            first = blocks[0]
            side, last = blocks[-1].out_size, blocks[-1].spec.out_channels
            head = [_mean(table, layer_key("Conv", (resolution, resolution, 3),
                                           (first.in_size, first.in_size, plan.stem_channels)), path),
                    _mean(table, expanded_conv_key(first), path)]
            tail_keys = [
                layer_key("Conv_1", (side, side, last), (side, side, plan.head_channels)),
                layer_key("AvgPool2D", (side, side, plan.head_channels), (1, 1, plan.head_channels)),
                layer_key("Conv_2", (1, 1, plan.head_channels), (1, 1, plan.feature_channels)),
                layer_key("Logits", (1, 1, plan.feature_channels), (NUM_CLASSES,)),
            ]
            tail = [_mean(table, key, path) for key in tail_keys]
    return SlotCosts(head, slots, tail)


class OfaLatencyTable:
    """Latency in ms of MobileNet-like networks from OFA's lookup tables in ``folder`` (one file per resolution).

    ``resolution``: the fixed input resolution (224 by default; only its table is read), or None to make it a
    decision of the architecture (``"resolution"``; every table of :data:`~nni_asenas.imagenet.ofa_space.RESOLUTIONS`
    is read). ``table(arch)`` is the latency in ms. A missing file or a table without a key that some
    architecture needs is a one-line UsageError naming the file and the key, when the table is read.
    """

    def __init__(self, folder: str | Path, *, resolution: int | None = RESOLUTION) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise UsageError(f"latency tables: {self.folder} is not a folder")
        self.resolution = None if resolution is None else check_resolution(resolution)
        self.resolutions: tuple[int, ...] = RESOLUTIONS if self.resolution is None else (self.resolution,)
        self._costs: dict[int, SlotCosts] = {}
        for size in self.resolutions:
            path = table_file(self.folder, size)
            self._costs[size] = _slot_costs(_read_table(path), path, size)

    def __repr__(self) -> str:
        resolution = "decision" if self.resolution is None else self.resolution
        return f"{type(self).__name__}(folder={str(self.folder)!r}, resolution={resolution!r})"

    def slot_costs(self, resolution: int) -> SlotCosts:
        """The table at ``resolution`` as additive per-block terms (ms)."""
        if resolution not in self._costs:
            raise UsageError(f"resolution {resolution!r} is not one of this table's {list(self.resolutions)}")
        return self._costs[resolution]

    def latency(self, arch: Mapping[str, Any]) -> float:
        """Latency of the architecture (ms), OFA's sum of per-layer means."""
        blocks, size = split_resolution(arch, self.resolution, self.resolutions)
        return float(self._costs[size].total(blocks))

    __call__ = latency

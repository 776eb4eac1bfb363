"""OFA's search space on top of the MobileNet-like space: the input resolution as one more decision, OFA's
specialised networks as architectures, and per-block additive costs that make a limit check cost microseconds.

OFA's tutorial searches ``ofa_mbv3_d234_e346_k357_w1.2`` (the package's MobileNet-like space) together with the
image size, one of :data:`RESOLUTIONS`. Here an architecture of that extended space is a MobileNet-like
architecture with one more label, ``"resolution"`` (:func:`decisions_with_resolution`). Everything that scores or
limits an architecture (the OFA predictor, the latency tables, the MAdds limit) takes ``resolution``: an int fixes
the resolution (architectures without the label, e.g. from :func:`~nni_asenas.imagenet.space.decisions`), ``None``
makes it a decision that every architecture carries (:func:`split_resolution`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from ..errors import UsageError
from .ofa import OFA_NET_ID
from .predictor import N_CHOICES, N_SLOTS, _choice_indices
from .space import (
    DEPTHS,
    EXPAND_RATIOS,
    KERNELS,
    MAX_DEPTH,
    NUM_CLASSES,
    RESOLUTION,
    STAGES,
    BlockSpec,
    canonical_arch,
    decisions,
    depth_label,
    expand_label,
    kernel_label,
    layer_shapes,
    make_divisible,
    network_plan,
)

__all__ = [
    "RESOLUTIONS", "RESOLUTION_LABEL", "PlacedBlock", "SlotCosts", "arch_from_net_config",
    "canonical_arch_with_resolution", "check_resolution", "choice_archs", "decisions_with_resolution",
    "placed_blocks", "read_specialized", "smallest_arch", "split_resolution",
]

RESOLUTIONS = (160, 176, 192, 208, 224)
RESOLUTION_LABEL = "resolution"


def decisions_with_resolution() -> dict[str, list[int]]:
    """:func:`~nni_asenas.imagenet.space.decisions` plus ``"resolution"`` (:data:`RESOLUTIONS`): OFA's space."""
    return {**decisions(), RESOLUTION_LABEL: list(RESOLUTIONS)}


def check_resolution(resolution: Any, allowed: Sequence[int] | None = RESOLUTIONS) -> int:
    """``resolution`` as an int, or a one-line UsageError; ``allowed=None`` accepts any positive integer."""
    if isinstance(resolution, float) and resolution.is_integer():
        resolution = int(resolution)
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise UsageError(f"resolution must be a positive integer, got {resolution!r}")
    if allowed is not None and resolution not in allowed:
        raise UsageError(f"resolution {resolution} is not one of OFA's {list(allowed)}")
    return resolution


def split_resolution(arch: Mapping[str, Any], resolution: int | None,
                     allowed: Sequence[int] | None = RESOLUTIONS) -> tuple[Mapping[str, Any], int]:
    """``(the MobileNet-like part of arch, its resolution)``; the first part is not validated here.

    ``resolution=None``: the resolution is a decision, read from ``arch["resolution"]`` (required). An int: the
    fixed resolution; an ``arch["resolution"]`` equal to it is accepted, any other value is an error.
    """
    if not isinstance(arch, Mapping):
        raise UsageError(f"architecture must be a mapping label -> option, got {type(arch).__name__}")
    if RESOLUTION_LABEL not in arch:
        if resolution is None:
            raise UsageError(f"architecture: missing decision {RESOLUTION_LABEL!r} (one of {list(RESOLUTIONS)})")
        return arch, resolution
    value = arch[RESOLUTION_LABEL]
    rest = {label: option for label, option in arch.items() if label != RESOLUTION_LABEL}
    if resolution is None:
        try:
            return rest, check_resolution(value, allowed)
        except UsageError as exc:
            raise UsageError(f"architecture: {RESOLUTION_LABEL}={value!r}: {exc}") from None
    if value != resolution:
        raise UsageError(f"architecture: {RESOLUTION_LABEL}={value!r}, but the resolution is fixed at {resolution} "
                         f"px here (make it a decision to search it)")
    return rest, resolution


def canonical_arch_with_resolution(arch: Mapping[str, Any]) -> dict[str, int]:
    """An architecture of :func:`decisions_with_resolution` in canonical form (absent blocks' labels reset)."""
    rest, resolution = split_resolution(arch, None)
    return {**canonical_arch(rest), RESOLUTION_LABEL: resolution}


def smallest_arch(resolution: int | None = RESOLUTION) -> dict[str, int]:
    """The smallest network: depth 2, kernel 3 and expand 3 everywhere; at 160 px where resolution is a decision."""
    arch = canonical_arch({label: min(options) for label, options in decisions().items()})
    return arch if resolution is not None else {**arch, RESOLUTION_LABEL: min(RESOLUTIONS)}


# ---------------------------------------------------------------------------------- per-block additive costs

def choice_archs() -> Iterator[tuple[int, dict[str, int]]]:
    """For each (kernel, expand) pair: its one-hot index (1-9, as in the package's encoding) and the architecture
    of depth 4 with that pair in every block; together they hold every block any architecture can have."""
    for kernel_index, kernel in enumerate(KERNELS):
        for expand_index, expand in enumerate(EXPAND_RATIOS):
            arch = {label: max(DEPTHS) if label.endswith("_depth") else kernel if label.endswith("_kernel")
                    else expand for label in decisions()}
            yield 1 + len(EXPAND_RATIOS) * kernel_index + expand_index, arch


@dataclass(frozen=True)
class PlacedBlock:
    """A block of a network with the side of its input and output feature maps."""

    spec: BlockSpec
    in_size: int
    out_size: int


def placed_blocks(arch: Mapping[str, Any], resolution: int) -> list[PlacedBlock]:
    """Every block of the network (the fixed first block included) at a square input of ``resolution`` px."""
    layers = layer_shapes(arch, resolution=resolution)
    size = layers[0].out_size  # the stem
    depthwise_sizes = [layer.out_size for layer in layers if layer.name.endswith(".depthwise")]
    blocks = []
    for spec, out_size in zip(network_plan(arch).blocks, depthwise_sizes):
        blocks.append(PlacedBlock(spec, size, out_size))
        size = out_size
    return blocks


class SlotCosts:
    """A cost that is a sum of fixed terms and one term per existing block, the term set by the block's slot
    (stage x position) and its (kernel, expand): MAdds, or the latency of a per-layer table.

    ``head`` terms are added first, then the blocks' terms slot by slot, then the ``tail`` terms, in this order
    (so that a float total equals the one of a plain left-to-right sum over the layers). ``slots[i][c]`` is the
    term of slot ``i`` (0-19) with choice ``c`` (1-9, see :func:`choice_archs`).
    """

    def __init__(self, head: Sequence[float], slots: Sequence[Sequence[float]], tail: Sequence[float]) -> None:
        if len(slots) != N_SLOTS or any(len(row) != N_CHOICES for row in slots):
            raise ValueError(f"slots must be {N_SLOTS} rows of {N_CHOICES} terms")
        self._head = tuple(head)
        self._slots = tuple(tuple(row) for row in slots)
        self._tail = tuple(tail)

    def total(self, arch: Mapping[str, Any]) -> Any:
        """The cost of a MobileNet-like architecture (UsageError if it is not one)."""
        total: Any = 0
        for term in self._head:
            total += term
        for row, choice in zip(self._slots, _choice_indices(arch)):
            if choice:
                total += row[choice]
        for term in self._tail:
            total += term
        return total

    def minimum(self) -> tuple[Any, dict[str, int]]:
        """The least cost any architecture has, and an architecture with it (exact: the cost is additive)."""
        arch: dict[str, int] = {}
        for stage in range(1, len(STAGES) + 1):
            rows = self._slots[MAX_DEPTH * (stage - 1):MAX_DEPTH * stage]
            cheapest = [min(range(1, N_CHOICES), key=row.__getitem__) for row in rows]
            depth = min(DEPTHS, key=lambda d: sum(row[choice] for row, choice in zip(rows[:d], cheapest)))
            arch[depth_label(stage)] = depth
            for block in range(depth):
                kernel_index, expand_index = divmod(cheapest[block] - 1, len(EXPAND_RATIOS))
                arch[kernel_label(stage, block)] = KERNELS[kernel_index]
                arch[expand_label(stage, block)] = EXPAND_RATIOS[expand_index]
        arch = canonical_arch(arch)
        return self.total(arch), arch


# ---------------------------------------------------------------------------------- OFA's specialised networks

_ACTIVATION_NAMES = {"relu": "relu", "hswish": "h_swish"}


def _unfit(source: str, reason: str) -> UsageError:
    return UsageError(f"{source}: {reason}; not a network of {OFA_NET_ID}")


def _layer(config: Mapping[str, Any], name: str, source: str) -> Mapping[str, Any]:
    layer = config.get(name)
    if not isinstance(layer, Mapping):
        raise _unfit(source, f"no {name!r} layer")
    return layer


def _compare(got: Mapping[str, Any], expected: Mapping[str, Any], where: str, source: str) -> None:
    for field, value in expected.items():
        if got.get(field) != value:
            raise _unfit(source, f"{where} has {field}={got.get(field)!r}, the space has {value!r}")


def arch_from_net_config(config: Mapping[str, Any], source: str = "net.config") -> dict[str, int]:
    """The MobileNet-like architecture of an OFA ``net.config`` (a specialised network's JSON layer list).

    Every layer is checked against the package's network of that architecture (channels, kernels, strides,
    expand ratios, activations, squeeze-excite, shortcuts, head); a network of another space (OFA's w1.0
    MobileNetV3 nets, ProxylessNAS nets) is a one-line UsageError naming the first layer that does not fit.
    """
    if not isinstance(config, Mapping):
        raise UsageError(f"{source}: expected a JSON object, got {type(config).__name__}")
    if config.get("name") != "MobileNetV3":
        raise _unfit(source, f"a {config.get('name')!r} network")
    blocks = config.get("blocks")
    if not isinstance(blocks, list) or len(blocks) < 2:
        raise _unfit(source, "no list of blocks")
    convs = []
    for index, block in enumerate(blocks):
        conv = block.get("mobile_inverted_conv") if isinstance(block, Mapping) else None
        if not isinstance(conv, Mapping):
            raise _unfit(source, f"blocks.{index} is not a mobile inverted residual block")
        convs.append(conv)
    stages: list[list[Mapping[str, Any]]] = []  # runs of equal output width after the fixed first block
    for conv in convs[1:]:
        if stages and conv.get("out_channels") == stages[-1][-1].get("out_channels"):
            stages[-1].append(conv)
        else:
            stages.append([conv])
    if len(stages) != len(STAGES):
        raise _unfit(source, f"{len(stages)} stages of equal width, the space has {len(STAGES)}")
    params: dict[str, Any] = {}
    for stage, stage_convs in enumerate(stages, start=1):
        if len(stage_convs) not in DEPTHS:
            raise _unfit(source, f"stage {stage} has {len(stage_convs)} blocks, the space allows {list(DEPTHS)}")
        params[depth_label(stage)] = len(stage_convs)
        for block, conv in enumerate(stage_convs):
            params[kernel_label(stage, block)] = conv.get("kernel_size")
            params[expand_label(stage, block)] = conv.get("expand_ratio")
    try:
        arch = canonical_arch(params)
    except UsageError as exc:
        raise _unfit(source, str(exc)) from None
    plan = network_plan(arch)
    _compare(_layer(config, "first_conv", source), {"in_channels": 3, "out_channels": plan.stem_channels,
                                                     "kernel_size": 3, "stride": 2}, "first_conv", source)
    for index, (block, conv, spec) in enumerate(zip(blocks, convs, plan.blocks)):
        mid = conv.get("mid_channels")
        if mid is None and isinstance(conv.get("expand_ratio"), (int, float)):
            mid = make_divisible(round(conv["in_channels"] * conv["expand_ratio"]))
        expected: dict[str, Any] = {"in_channels": spec.in_channels, "out_channels": spec.out_channels,
                                    "kernel_size": spec.kernel, "stride": spec.stride,
                                    "act_func": _ACTIVATION_NAMES[spec.activation], "use_se": bool(spec.se_channels)}
        _compare(conv, expected, f"blocks.{index}", source)
        if spec.expand and mid != spec.hidden_channels:
            raise _unfit(source, f"blocks.{index} has mid_channels={mid!r}, the space has {spec.hidden_channels}")
        if not spec.expand and conv.get("expand_ratio") != 1:
            raise _unfit(source, f"blocks.{index} has expand_ratio={conv.get('expand_ratio')!r}, the space has 1")
        if (block.get("shortcut") is not None) != spec.residual:
            raise _unfit(source, f"blocks.{index} {'lacks' if spec.residual else 'has'} a shortcut")
    last = plan.blocks[-1].out_channels
    _compare(_layer(config, "final_expand_layer", source), {"in_channels": last, "out_channels": plan.head_channels},
             "final_expand_layer", source)
    _compare(_layer(config, "feature_mix_layer", source),
             {"in_channels": plan.head_channels, "out_channels": plan.feature_channels}, "feature_mix_layer", source)
    _compare(_layer(config, "classifier", source), {"in_features": plan.feature_channels,
                                                     "out_features": NUM_CLASSES}, "classifier", source)
    return arch


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise UsageError(f"{path} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not readable JSON ({type(exc).__name__})") from None


def read_specialized(folder: str | Path) -> tuple[dict[str, int], int]:
    """``(architecture, image size)`` of an OFA specialised network: ``folder/net.config`` and ``folder/run.config``.

    The image size is OFA's, which may lie outside :data:`RESOLUTIONS` (e.g. 236 for ``flops@595M``).
    """
    folder = Path(folder)
    arch = arch_from_net_config(_read_json(folder / "net.config"), str(folder / "net.config"))
    run_config = _read_json(folder / "run.config")
    image_size = run_config.get("image_size") if isinstance(run_config, Mapping) else None
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise UsageError(f"{folder / 'run.config'}: image_size must be a positive integer, got {image_size!r}")
    return arch, image_size

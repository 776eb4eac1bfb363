"""The MobileNet-like space of ASE-NAS's ImageNet experiment: MobileNetV3-style blocks, width multiplier 1.2.

Decisions (45, all categorical; labels are plain, without ``/``)::

    s{i}_depth           (2, 3, 4)   number of blocks in searchable stage i = 1..5
    s{i}_b{j}_kernel     (3, 5, 7)   depthwise kernel of block j = 0..3 of stage i
    s{i}_b{j}_expand     (3, 4, 6)   expand ratio of block j of stage i

Blocks at or beyond a stage's chosen depth do not exist. Their kernel/expand decisions still exist (every
architecture is one option per decision, which is what the searchers encode), but the network, the MAdds and
parameter counters and the constraint ignore them; :func:`canonical_arch` resets them to their first option so
that two samples that build the same network compare equal. NNI's hub spaces handle ``Repeat`` depths the same way.

The network (channels are ``make_divisible(c * width_mult, 8)``)::

    stem     3x3 conv stride 2 -> 16, BN, hard-swish
    block 0  3x3 depthwise + BN + ReLU, 1x1 16 -> 16 + BN, residual (fixed, as MobileNetV3-Large's first block)
    stages   widths 24, 40, 80, 112, 160; strides 2, 2, 2, 1, 2; squeeze-excite in stages 2, 4, 5;
             ReLU in stages 1-2 and hard-swish in 3-5 (where MobileNetV3-Large has them). Each block:
             1x1 expand + BN + act, kxk depthwise (stride on a stage's first block) + BN + act,
             [SE: mean pool, 1x1 conv + ReLU, 1x1 conv + hard-sigmoid on make_divisible(hidden / 4, 8) channels],
             1x1 project + BN; residual when the stride is 1 and the width unchanged
    head     1x1 conv -> 960 + BN + hard-swish, global mean pool, linear -> 1280 + hard-swish, dropout,
             linear -> classes

MAdds are the multiply-accumulates of every conv and linear weight (biases, BN, activations, pooling, SE
scaling and residual additions are not counted: the MobileNet papers' convention). Parameters are exact
(``sum(p.numel() for p in MobileNetLike(...).parameters())``). Both are pure functions of the decisions.

The NNI model space, :class:`MobileNetLikeSpace`, is defined in :mod:`nni_asenas.imagenet.nni_space` and
re-exported here on first use, because importing ``nni.nas`` takes seconds and everything else here works
without it (the engine-free searcher and the tuner only need :func:`decisions` and :func:`within_madds`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from nni_asenas.errors import UsageError

__all__ = [
    "BlockSpec", "LayerShape", "MobileNetLike", "canonical_arch", "canonical_key", "count_madds",
    "count_params", "decisions", "layer_shapes", "make_divisible", "network_plan", "search_space_json",
    "validate_arch", "within_madds",
]

DEPTHS = (2, 3, 4)
KERNELS = (3, 5, 7)
EXPAND_RATIOS = (3, 4, 6)
WIDTH_MULT = 1.2
NUM_CLASSES = 1000
MAX_MADDS = 600e6
RESOLUTION = 224


@dataclass(frozen=True)
class _Stage:
    width: int
    stride: int
    squeeze_excite: bool
    activation: str


STEM_WIDTH = 16
FIRST_BLOCK_WIDTH = 16
STAGES = (
    _Stage(24, 2, False, "relu"),
    _Stage(40, 2, True, "relu"),
    _Stage(80, 2, False, "hswish"),
    _Stage(112, 1, True, "hswish"),
    _Stage(160, 2, True, "hswish"),
)
HEAD_WIDTH = 960
FEATURE_WIDTH = 1280
MAX_DEPTH = max(DEPTHS)


def depth_label(stage: int) -> str:
    return f"s{stage}_depth"


def kernel_label(stage: int, block: int) -> str:
    return f"s{stage}_b{block}_kernel"


def expand_label(stage: int, block: int) -> str:
    return f"s{stage}_b{block}_expand"


def decisions() -> dict[str, list[int]]:
    """Label -> ordered options of every decision, in a fixed order (stage by stage, depth first)."""
    space: dict[str, list[int]] = {}
    for stage in range(1, len(STAGES) + 1):
        space[depth_label(stage)] = list(DEPTHS)
        for block in range(MAX_DEPTH):
            space[kernel_label(stage, block)] = list(KERNELS)
            space[expand_label(stage, block)] = list(EXPAND_RATIOS)
    return space


def search_space_json() -> dict[str, dict[str, Any]]:
    """The space in NNI's search-space JSON format (``search_spaces/mobilenet.json`` is generated from this)."""
    return {label: {"_type": "choice", "_value": options} for label, options in decisions().items()}


def _stage_and_block(label: str) -> tuple[int, int | None]:
    """``'s3_b1_kernel'`` -> ``(3, 1)``; ``'s3_depth'`` -> ``(3, None)``."""
    stage_text, block_text = label.split("_")[:2]
    return int(stage_text[1:]), None if block_text == "depth" else int(block_text[1:])


# read-only tables of the space: canonical_arch runs for every architecture a search considers (thousands per
# proposal where a spent subspace widens), so labels are parsed once, not per call
_SPACE = decisions()
_POSITIONS = {label: _stage_and_block(label) for label in _SPACE}
_DEPTH_LABELS = {stage: depth_label(stage) for stage in range(1, len(STAGES) + 1)}
_OPTION_SETS = {label: frozenset(options) for label, options in _SPACE.items()}
_OPTION_SET_LIST = list(_OPTION_SETS.values())
# per decision: its label, the depth label of its stage (None for a depth), its block (0 for a depth), its first option
_CANONICAL_LAYOUT = [(label, None if block is None else _DEPTH_LABELS[stage], block or 0, _SPACE[label][0])
                     for label, (stage, block) in _POSITIONS.items()]


def _is_used(label: str, depths: Mapping[int, int]) -> bool:
    stage, block = _POSITIONS[label]
    return block is None or block < depths[stage]


def validate_arch(params: Mapping[str, Any]) -> dict[str, int]:
    """Check an architecture (label -> option) and return it complete, in :func:`decisions` order.

    Every depth and every decision of an existing block is required; decisions of blocks beyond a stage's depth
    may be left out (they get their first option). Unknown labels and options outside the space are errors.
    """
    if not isinstance(params, Mapping):
        raise UsageError(f"architecture must be a mapping label -> option, got {type(params).__name__}")
    space = _SPACE
    unknown = sorted(str(label) for label in params if label not in space)
    if unknown:
        raise UsageError(f"architecture: unknown decision {unknown[0]!r} (the MobileNet-like space has labels "
                         f"like 's1_depth', 's1_b0_kernel', 's1_b0_expand' for stages 1-{len(STAGES)})")
    values: dict[str, int] = {}
    for label, value in params.items():
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value not in space[label]:
            raise UsageError(f"architecture: {label}={value!r} is not one of {space[label]}")
        values[label] = value
    for label in _DEPTH_LABELS.values():
        if label not in values:
            raise UsageError(f"architecture: missing decision {label!r}")
    depths = {stage: values[label] for stage, label in _DEPTH_LABELS.items()}
    arch: dict[str, int] = {}
    for label, options in space.items():
        if label not in values and _is_used(label, depths):
            stage = _POSITIONS[label][0]
            raise UsageError(f"architecture: missing decision {label!r} (stage {stage} has depth {depths[stage]})")
        arch[label] = values.get(label, options[0])
    return arch


def canonical_arch(params: Mapping[str, Any]) -> dict[str, int]:
    """:func:`validate_arch`, with the decisions of non-existent blocks reset to their first option."""
    if type(params) is dict and params.keys() == _SPACE.keys() and all(
            type(value) is int and value in options for value, options in zip(map(params.__getitem__, _SPACE), _OPTION_SET_LIST)):
        arch: Mapping[str, int] = params  # complete and valid already: what a searcher passes
    else:
        arch = validate_arch(params)
    return {label: arch[label] if depth is None or block < arch[depth] else first
            for label, depth, block, first in _CANONICAL_LAYOUT}


def canonical_key(arch: Mapping[str, Any]) -> str:
    """Cache key of an architecture: its canonical form (decisions of absent blocks ignored)."""
    return json.dumps(sorted(canonical_arch(arch).items()))


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor``, never more than 10 % below ``value`` (MobileNet rule)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


@dataclass(frozen=True)
class BlockSpec:
    """One inverted-residual block. ``hidden_channels == in_channels`` and ``expand`` False: no 1x1 expansion."""

    in_channels: int
    out_channels: int
    hidden_channels: int
    kernel: int
    stride: int
    se_channels: int  # 0: no squeeze-excite
    activation: str  # "relu" or "hswish"
    expand: bool

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


@dataclass(frozen=True)
class _Plan:
    stem_channels: int
    blocks: tuple[BlockSpec, ...]
    head_channels: int
    feature_channels: int


def _check_width(width_mult: float) -> float:
    if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)) or not width_mult > 0:
        raise UsageError(f"width_mult must be a positive number, got {width_mult!r}")
    return float(width_mult)


def network_plan(params: Mapping[str, Any], width_mult: float = WIDTH_MULT) -> _Plan:
    """Channels, kernels and strides of every block of the architecture (existing blocks only)."""
    arch = validate_arch(params)
    width_mult = _check_width(width_mult)
    stem = make_divisible(STEM_WIDTH * width_mult)
    first = make_divisible(FIRST_BLOCK_WIDTH * width_mult)
    blocks = [BlockSpec(stem, first, stem, 3, 1, 0, "relu", False)]
    channels = first
    for stage_index, stage in enumerate(STAGES, start=1):
        out = make_divisible(stage.width * width_mult)
        for block in range(arch[depth_label(stage_index)]):
            hidden = make_divisible(channels * arch[expand_label(stage_index, block)])
            se = make_divisible(hidden / 4) if stage.squeeze_excite else 0
            blocks.append(BlockSpec(channels, out, hidden, arch[kernel_label(stage_index, block)],
                                    stage.stride if block == 0 else 1, se, stage.activation, True))
            channels = out
    return _Plan(stem, tuple(blocks), make_divisible(HEAD_WIDTH * width_mult),
                 make_divisible(FEATURE_WIDTH * width_mult))


@dataclass(frozen=True)
class LayerShape:
    """A conv (or a linear layer, as a 1x1 conv on a 1x1 map) with the spatial size of its output."""

    name: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    groups: int
    bias: bool
    batch_norm: bool
    out_size: int

    @property
    def madds(self) -> int:
        return self.out_size ** 2 * self.out_channels * (self.in_channels // self.groups) * self.kernel ** 2

    @property
    def params(self) -> int:
        weights = self.out_channels * (self.in_channels // self.groups) * self.kernel ** 2
        return weights + self.out_channels * (int(self.bias) + 2 * int(self.batch_norm))


def _conv_out(size: int, kernel: int, stride: int) -> int:
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def layer_shapes(params: Mapping[str, Any], *, width_mult: float = WIDTH_MULT, num_classes: int = NUM_CLASSES,
                 resolution: int = RESOLUTION) -> list[LayerShape]:
    """Every conv and linear layer of the network, in forward order, at a square input of ``resolution`` px."""
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise UsageError(f"resolution must be a positive integer, got {resolution!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise UsageError(f"num_classes must be a positive integer, got {num_classes!r}")
    plan = network_plan(params, width_mult)
    size = _conv_out(resolution, 3, 2)
    layers = [LayerShape("stem", 3, plan.stem_channels, 3, 2, 1, False, True, size)]
    for index, block in enumerate(plan.blocks):
        name = f"blocks.{index}"
        if block.expand:
            layers.append(LayerShape(f"{name}.expand", block.in_channels, block.hidden_channels, 1, 1, 1, False, True,
                                     size))
        size = _conv_out(size, block.kernel, block.stride)
        layers.append(LayerShape(f"{name}.depthwise", block.hidden_channels, block.hidden_channels, block.kernel,
                                 block.stride, block.hidden_channels, False, True, size))
        if block.se_channels:
            layers.append(LayerShape(f"{name}.se.reduce", block.hidden_channels, block.se_channels, 1, 1, 1, True,
                                     False, 1))
            layers.append(LayerShape(f"{name}.se.expand", block.se_channels, block.hidden_channels, 1, 1, 1, True,
                                     False, 1))
        layers.append(LayerShape(f"{name}.project", block.hidden_channels, block.out_channels, 1, 1, 1, False, True,
                                 size))
    layers.append(LayerShape("head", plan.blocks[-1].out_channels, plan.head_channels, 1, 1, 1, False, True, size))
    layers.append(LayerShape("classifier.0", plan.head_channels, plan.feature_channels, 1, 1, 1, True, False, 1))
    layers.append(LayerShape("classifier.3", plan.feature_channels, num_classes, 1, 1, 1, True, False, 1))
    return layers


def count_madds(params: Mapping[str, Any], *, width_mult: float = WIDTH_MULT, num_classes: int = NUM_CLASSES,
                resolution: int = RESOLUTION) -> int:
    """Multiply-accumulates of one forward pass of one image (conv and linear weights)."""
    return sum(layer.madds for layer in layer_shapes(params, width_mult=width_mult, num_classes=num_classes,
                                                       resolution=resolution))


def count_params(params: Mapping[str, Any], *, width_mult: float = WIDTH_MULT,
                 num_classes: int = NUM_CLASSES) -> int:
    """Trainable parameters of the network (conv/linear weights and biases, BN scales and shifts)."""
    return sum(layer.params for layer in layer_shapes(params, width_mult=width_mult, num_classes=num_classes))


def within_madds(params: dict, max_madds: float = MAX_MADDS, resolution: int = RESOLUTION, *,
                 width_mult: float = WIDTH_MULT, num_classes: int = NUM_CLASSES) -> bool:
    """The MAdds constraint: True when the architecture needs at most ``max_madds`` at ``resolution`` px.

    This is the ``constraint`` that :class:`~nni_asenas.core.searcher.AseNasSearcher` and the tuner take
    (``nni_asenas.imagenet.space:within_madds``); an invalid architecture raises :class:`UsageError`.
    """
    return count_madds(params, width_mult=width_mult, num_classes=num_classes, resolution=resolution) <= max_madds


# ---------------------------------------------------------------------------------------------- the torch network

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "hswish": nn.Hardswish}


def _conv_bn(in_channels: int, out_channels: int, kernel: int, stride: int = 1, groups: int = 1,
             activation: str | None = None) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if activation is not None:
        layers.append(_ACTIVATIONS[activation](inplace=True))
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Channel gate: mean pool, 1x1 conv + ReLU, 1x1 conv + hard-sigmoid, multiply."""

    def __init__(self, channels: int, squeeze_channels: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze_channels, 1)
        self.act = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(squeeze_channels, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(scale))))


class InvertedResidual(nn.Module):
    """MobileNetV3 block built from a :class:`BlockSpec`."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if spec.expand:
            layers.append(_conv_bn(spec.in_channels, spec.hidden_channels, 1, activation=spec.activation))
        layers.append(_conv_bn(spec.hidden_channels, spec.hidden_channels, spec.kernel, spec.stride,
                               groups=spec.hidden_channels, activation=spec.activation))
        if spec.se_channels:
            layers.append(SqueezeExcite(spec.hidden_channels, spec.se_channels))
        layers.append(_conv_bn(spec.hidden_channels, spec.out_channels, 1))
        self.body = nn.Sequential(*layers)
        self.residual = spec.residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


class MobileNetLike(nn.Module):
    """One architecture of the space as a plain PyTorch network (no NNI needed).

    ``arch`` is label -> option (see :func:`validate_arch`); ``width_mult`` and ``num_classes`` default to the
    ImageNet setting of the paper (1.2, 1000).
    """

    def __init__(self, arch: Mapping[str, Any], *, width_mult: float = WIDTH_MULT, num_classes: int = NUM_CLASSES,
                 dropout: float = 0.2) -> None:
        super().__init__()
        if not 0 <= dropout < 1:
            raise UsageError(f"dropout must be in [0, 1), got {dropout!r}")
        layer_shapes(arch, width_mult=width_mult, num_classes=num_classes)  # validates everything, cheaply
        plan = network_plan(arch, width_mult)
        self.arch = canonical_arch(arch)
        self.width_mult = float(width_mult)
        self.num_classes = num_classes
        self.stem = _conv_bn(3, plan.stem_channels, 3, 2, activation="hswish")
        self.blocks = nn.Sequential(*(InvertedResidual(spec) for spec in plan.blocks))
        self.head = _conv_bn(plan.blocks[-1].out_channels, plan.head_channels, 1, activation="hswish")
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(plan.head_channels, plan.feature_channels),
            nn.Hardswish(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(plan.feature_channels, num_classes),
        )
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.head(self.blocks(self.stem(x))))
        return self.classifier(torch.flatten(x, 1))

    def extra_repr(self) -> str:
        depths = ", ".join(str(self.arch[depth_label(stage)]) for stage in range(1, len(STAGES) + 1))
        return f"depths=({depths}), width_mult={self.width_mult}, num_classes={self.num_classes}"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m nni_asenas.imagenet.space [PATH]``: write the NNI search-space JSON (stdout without PATH)."""
    args = list(sys.argv[1:] if argv is None else argv)
    text = json.dumps(search_space_json(), indent=2) + "\n"
    if not args:
        sys.stdout.write(text)
    else:
        with open(args[0], "w", encoding="utf-8") as handle:
            handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

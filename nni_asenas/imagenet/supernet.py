"""The MobileNet-like space as a weight-sharing supernet, built from NNI's mutable modules.

:class:`MobileNetSupernetSpace` is an NNI ``ModelSpace`` with the 45 decisions of
:func:`nni_asenas.imagenet.space.decisions` (same labels, same options) whose layers are NNI's mutable modules:
each searchable stage is a ``Repeat`` over ``s{i}_depth``, each block's convolutions and batch norms are
``MutableConv2d`` / ``MutableBatchNorm2d`` whose channels are expressions of ``s{i}_b{j}_expand`` and whose depthwise
kernel is ``s{i}_b{j}_kernel``. NNI's one-shot strategies therefore turn it into a supernet: ``RandomOneShot`` (or
:class:`~nni_asenas.nni_tools.compat.SeededRandomOneShot`) replaces 149 modules by ``MixedConv2d``,
``MixedBatchNorm2d`` and ``PathSamplingRepeat``, which share weights the OFA way:

* depth: a stage runs a prefix of its 4 blocks;
* kernel: a 3x3 or 5x5 depthwise kernel is the centre of the 7x7 one;
* expand ratio: a block's hidden channels (and its squeeze-excite channels) are a prefix of the widest block's.

:class:`MobileNetSupernet` holds such a mutated space and is what the supernet trainer and the sub-net evaluator
use: :meth:`~MobileNetSupernet.activate` makes every layer follow one architecture, ``forward`` runs it, and
:meth:`~MobileNetSupernet.extract` returns that architecture as the package's plain
:class:`~nni_asenas.imagenet.space.MobileNetLike` network with the inherited weights (identical outputs).
:class:`SubnetSampler` draws architectures from a seed (the same on every process), optionally under a MAdds limit.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Mapping, Union, cast

import nni
import numpy as np
import torch
from nni.mutable import MutableExpression
from nni.nas.nn.pytorch import ModelSpace, MutableBatchNorm2d, MutableConv2d, Repeat
from nni.nas.oneshot.pytorch.supermodule.base import BaseSuperNetModule
from nni.nas.oneshot.pytorch.supermodule.operation import MixedOperation
from torch import nn

from nni_asenas.config import check_seed
from nni_asenas.errors import UsageError
from nni_asenas.imagenet import space as mobilenet
from nni_asenas.nni_tools.compat import SeededRandomOneShot, activate_sample

__all__ = ["MobileNetSupernet", "MobileNetSupernetSpace", "SubnetSampler", "largest_arch", "smallest_arch"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "hswish": nn.Hardswish}
IntLike = Union[int, MutableExpression]


def _divisible8(value: IntLike) -> IntLike:
    """:func:`~nni_asenas.imagenet.space.make_divisible` of an integer (expression), in integer arithmetic."""
    rounded = MutableExpression.max(8, (value + 4) // 8 * 8)
    return MutableExpression.condition(rounded * 10 < value * 9, rounded + 8, rounded)


def _quarter_divisible8(value: IntLike) -> IntLike:
    """``make_divisible(value / 4, 8)`` of an integer (expression): the squeeze-excite width, in integers."""
    rounded = MutableExpression.max(8, (value + 16) // 32 * 8)
    return MutableExpression.condition(rounded * 40 < value * 9, rounded + 8, rounded)


def _conv_bn(in_channels: IntLike, out_channels: IntLike, kernel: IntLike, stride: int = 1,
             groups: IntLike = 1, activation: str | None = None) -> nn.Sequential:
    """Conv (no bias) + BN (+ activation), as :class:`MobileNetLike`'s layers, from NNI's mutable modules."""
    layers: list[nn.Module] = [
        MutableConv2d(in_channels=in_channels, out_channels=out_channels, kernel_size=kernel, stride=stride,
                      padding=kernel // 2, groups=groups, bias=False),
        MutableBatchNorm2d(num_features=out_channels),
    ]
    if activation is not None:
        layers.append(_ACTIVATIONS[activation](inplace=True))
    return nn.Sequential(*layers)


class _SqueezeExcite(nn.Module):
    """:class:`~nni_asenas.imagenet.space.SqueezeExcite` with mutable widths (same attribute names)."""

    def __init__(self, channels: IntLike, squeeze_channels: IntLike) -> None:
        super().__init__()
        self.reduce = MutableConv2d(in_channels=channels, out_channels=squeeze_channels, kernel_size=1)
        self.act = nn.ReLU(inplace=True)
        self.expand = MutableConv2d(in_channels=squeeze_channels, out_channels=channels, kernel_size=1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(scale))))


class _ElasticBlock(nn.Module):
    """:class:`~nni_asenas.imagenet.space.InvertedResidual` with a kernel and an expand-ratio choice.

    Submodule names equal the plain block's (``body.0`` expand, ``body.1`` depthwise, [``body.2`` SE], project), so
    that extraction copies layer by layer.
    """

    def __init__(self, stage: int, block: int, in_channels: int, out_channels: int, stride: int,
                 squeeze_excite: bool, activation: str) -> None:
        super().__init__()
        kernel = nni.choice(mobilenet.kernel_label(stage, block), list(mobilenet.KERNELS))
        expand = nni.choice(mobilenet.expand_label(stage, block), list(mobilenet.EXPAND_RATIOS))
        hidden = _divisible8(expand * in_channels)
        layers: list[nn.Module] = [
            _conv_bn(in_channels, hidden, 1, activation=activation),
            _conv_bn(hidden, hidden, kernel, stride, groups=hidden, activation=activation),
        ]
        if squeeze_excite:
            layers.append(_SqueezeExcite(hidden, _quarter_divisible8(hidden)))
        layers.append(_conv_bn(hidden, out_channels, 1))
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


def largest_arch() -> dict[str, int]:
    """Every decision at its last (largest) option: depth 4, kernel 7, expand 6 everywhere."""
    return {label: options[-1] for label, options in mobilenet.decisions().items()}


def smallest_arch() -> dict[str, int]:
    """Every decision at its first (smallest) option: depth 2, kernel 3, expand 3 everywhere."""
    return {label: options[0] for label, options in mobilenet.decisions().items()}


class MobileNetSupernetSpace(ModelSpace):
    """The MobileNet-like space from NNI mutable modules, ready for NNI's one-shot strategies.

    ``simplify()`` gives exactly the 45 decisions of :func:`~nni_asenas.imagenet.space.decisions`. Before a
    one-shot strategy mutates it, the space is a small default network (NNI builds mutable modules at their
    first option); after ``strategy.mutate_model(space)`` it is the weight-sharing supernet, which
    :class:`MobileNetSupernet` wraps. The fixed stem, first block, head and classifier are plain ``torch.nn``.
    """

    def __init__(self, *, width_mult: float = mobilenet.WIDTH_MULT, num_classes: int = mobilenet.NUM_CLASSES,
                 dropout: float = 0.2) -> None:
        super().__init__()
        if not 0 <= dropout < 1:
            raise UsageError(f"dropout must be in [0, 1), got {dropout!r}")
        plan = mobilenet.network_plan(largest_arch(), width_mult)
        mobilenet.layer_shapes(largest_arch(), width_mult=width_mult, num_classes=num_classes)  # validates both
        self.width_mult = float(width_mult)
        self.num_classes = num_classes
        self.dropout = dropout
        self.stem = mobilenet._conv_bn(3, plan.stem_channels, 3, 2, activation="hswish")
        self.first = mobilenet.InvertedResidual(plan.blocks[0])
        stages: list[nn.Module] = []
        channels = plan.blocks[0].out_channels
        for stage_index, stage in enumerate(mobilenet.STAGES, start=1):
            width = mobilenet.make_divisible(stage.width * width_mult)

            def build(block: int, stage_index: int = stage_index, stage: Any = stage, in_channels: int = channels,
                      width: int = width) -> nn.Module:
                return _ElasticBlock(stage_index, block, in_channels if block == 0 else width, width,
                                     stage.stride if block == 0 else 1, stage.squeeze_excite, stage.activation)

            stages.append(Repeat(build, depth=nni.choice(mobilenet.depth_label(stage_index), list(mobilenet.DEPTHS))))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.head = mobilenet._conv_bn(channels, plan.head_channels, 1, activation="hswish")
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(plan.head_channels, plan.feature_channels),
            nn.Hardswish(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(plan.feature_channels, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.head(self.stages(self.first(self.stem(x)))))
        return self.classifier(torch.flatten(x, 1))


def _has_own_state(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(recurse=False))


def _active_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors of ``module`` that the active sub-net uses (a slice of a mixed operation's, or all)."""
    if not isinstance(module, MixedOperation):
        return dict(module.state_dict())
    arguments = {name: module.forward_argument(name) for name in module.argument_list}
    state = {key: value for key, value in module.freeze_weight(**arguments).items() if value is not None}
    if isinstance(module, nn.BatchNorm2d) and module.num_batches_tracked is not None:
        state["num_batches_tracked"] = module.num_batches_tracked
    return state


class MobileNetSupernet(nn.Module):
    """A weight-sharing supernet of the MobileNet-like space (NNI mixed operations inside).

    ``MobileNetSupernet(width_mult=..., num_classes=...)`` builds :class:`MobileNetSupernetSpace` and converts it
    in place with :class:`~nni_asenas.nni_tools.compat.SeededRandomOneShot`'s mutation hooks (NNI's path-sampling
    mixed operations); ``MobileNetSupernet(space=trained_space)`` wraps a space that an NNI one-shot strategy
    already mutated (and perhaps trained). The largest architecture is active after construction.

    The state dict is the space's (keys ``space.*``); :meth:`config` and :meth:`from_config` rebuild it.
    """

    def __init__(self, *, width_mult: float = mobilenet.WIDTH_MULT, num_classes: int = mobilenet.NUM_CLASSES,
                 dropout: float = 0.2, space: MobileNetSupernetSpace | None = None) -> None:
        super().__init__()
        if space is None:
            space = MobileNetSupernetSpace(width_mult=width_mult, num_classes=num_classes, dropout=dropout)
        if not isinstance(space, MobileNetSupernetSpace):
            raise UsageError(f"space must be a MobileNetSupernetSpace, got {type(space).__name__}")
        if not any(isinstance(module, BaseSuperNetModule) for module in space.modules()):
            SeededRandomOneShot().mutate_model(space)
        self.space = space
        self.arch: dict[str, int] = {}
        self.activate(largest_arch())

    @property
    def width_mult(self) -> float:
        return self.space.width_mult

    @property
    def num_classes(self) -> int:
        return self.space.num_classes

    def config(self) -> dict[str, Any]:
        """The constructor keywords (stored in checkpoints)."""
        return {"width_mult": self.space.width_mult, "num_classes": self.space.num_classes,
                "dropout": self.space.dropout}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> MobileNetSupernet:
        return cls(width_mult=float(config["width_mult"]), num_classes=int(config["num_classes"]),
                   dropout=float(config["dropout"]))

    def activate(self, arch: Mapping[str, Any]) -> dict[str, int]:
        """Make ``arch`` the active sub-net (validated; returns it canonical)."""
        canonical = mobilenet.canonical_arch(arch)
        activate_sample(self.space, canonical)
        self.arch = canonical
        return canonical

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, self.space(x))

    def _layer_pairs(self, net: mobilenet.MobileNetLike, arch: Mapping[str, int]) -> Iterator[tuple[nn.Module,
                                                                                                      nn.Module]]:
        yield net.stem, self.space.stem
        yield net.blocks[0], self.space.first
        index = 1
        for stage_index, stage in enumerate(self.space.stages, start=1):
            for block in range(arch[mobilenet.depth_label(stage_index)]):
                yield net.blocks[index], cast(Repeat, stage).blocks[block]
                index += 1
        yield net.head, self.space.head
        yield net.classifier, self.space.classifier

    @torch.no_grad()
    def extract(self, arch: Mapping[str, Any]) -> mobilenet.MobileNetLike:
        """``arch`` as a plain :class:`MobileNetLike` with the supernet's weights and BN statistics.

        The returned network computes exactly what the supernet computes with ``arch`` active (same mode);
        it lives on the supernet's device, in float32 and contiguous memory format. ``arch`` stays active.
        """
        canonical = self.activate(arch)
        net = mobilenet.MobileNetLike(canonical, width_mult=self.width_mult, num_classes=self.num_classes,
                                      dropout=self.space.dropout)
        device = next(self.space.parameters()).device
        net.to(device)
        for target, source in self._layer_pairs(net, canonical):
            sources = dict(source.named_modules())
            for name, layer in target.named_modules():
                if _has_own_state(layer):
                    layer.load_state_dict({key: value.detach().clone()
                                           for key, value in _active_state(sources[name]).items()})
        net.train(self.training)
        return net

    def extra_repr(self) -> str:
        return f"width_mult={self.width_mult}, num_classes={self.num_classes}"


class SubnetSampler:
    """Architectures of the MobileNet-like space drawn from a seed: a pure function of (seed, step, index).

    Every process that asks for (step, index) gets the same architecture, so DDP ranks train the same sub-net and
    a resumed run continues the same sequence. With ``max_madds`` the random draws are restricted to networks of
    at most that many MAdds at ``resolution`` px (redrawn from the same stream, at most ``max_draws`` times).
    """

    def __init__(self, *, seed: int = 0, max_madds: float | None = None,
                 resolution: int = mobilenet.RESOLUTION, width_mult: float = mobilenet.WIDTH_MULT,
                 num_classes: int = mobilenet.NUM_CLASSES, max_draws: int = 1000) -> None:
        self.seed = check_seed(seed)
        if max_madds is not None and not (max_madds > 0 and math.isfinite(max_madds)):
            raise UsageError(f"max_madds must be a positive number, got {max_madds!r}")
        self.max_madds = max_madds
        self.resolution = resolution
        self.width_mult = width_mult
        self.num_classes = num_classes
        self.max_draws = max_draws
        self._decisions = mobilenet.decisions()
        if max_madds is not None and self.madds(smallest_arch()) > max_madds:
            raise UsageError(f"max_madds {max_madds / 1e6:.1f} M is below the smallest network of the space "
                             f"({self.madds(smallest_arch()) / 1e6:.1f} M MAdds at {resolution} px)")

    def madds(self, arch: Mapping[str, Any]) -> int:
        return mobilenet.count_madds(arch, width_mult=self.width_mult, num_classes=self.num_classes,
                                     resolution=self.resolution)

    def sample(self, step: int, index: int = 0) -> dict[str, int]:
        """The ``index``-th random architecture of training step ``step`` (canonical)."""
        rng = np.random.default_rng([self.seed, step, index])
        for _ in range(self.max_draws):
            arch = mobilenet.canonical_arch({label: options[int(rng.integers(len(options)))]
                                             for label, options in self._decisions.items()})
            if self.max_madds is None or self.madds(arch) <= self.max_madds:
                return arch
        raise UsageError(f"no architecture within {(self.max_madds or 0) / 1e6:.1f} M MAdds in {self.max_draws} "
                         "draws: raise the MAdds limit")

    def extra_repr(self) -> str:
        return f"seed={self.seed}, max_madds={self.max_madds}, resolution={self.resolution}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

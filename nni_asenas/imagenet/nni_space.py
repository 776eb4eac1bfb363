"""NNI model space of the MobileNet-like space (import through :mod:`nni_asenas.imagenet.space`).

Kept apart because ``nni.nas`` takes seconds to import; the decisions, counters and the network itself are in
:mod:`nni_asenas.imagenet.space`, which this module only wraps.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping

import nni
import torch
from nni.mutable import Categorical, Constraint, ConstraintViolation, LabeledMutable, Mutable, ensure_frozen
from nni.mutable.exception import SampleValidationError
from nni.nas.nn.pytorch import ModelSpace
from nni.nas.space import model_context

from nni_asenas.imagenet import space as mobilenet

__all__ = ["MAddsConstraint", "MobileNetLikeSpace"]


class MAddsConstraint(Constraint):
    """Rejects samples of the space whose network needs more than ``max_madds`` at ``resolution`` px."""

    def __init__(self, choices: Mapping[str, Categorical], *, max_madds: float, resolution: int, width_mult: float,
                 num_classes: int, label: str = "max_madds") -> None:
        self.label = label
        self.choices = dict(choices)
        self.max_madds = max_madds
        self.resolution = resolution
        self.width_mult = width_mult
        self.num_classes = num_classes

    def leaf_mutables(self, is_leaf: Callable[[Mutable], bool]) -> Iterable[LabeledMutable]:
        for choice in self.choices.values():
            yield from choice.leaf_mutables(is_leaf)
        yield self

    def check_contains(self, sample: dict) -> SampleValidationError | None:
        for label, choice in self.choices.items():
            error = choice.check_contains(sample)
            if error is not None:
                error.paths.append(label)
                return error
        arch = {label: sample[label] for label in self.choices}
        madds = mobilenet.count_madds(arch, width_mult=self.width_mult, num_classes=self.num_classes,
                                      resolution=self.resolution)
        if madds > self.max_madds:
            return ConstraintViolation(f"{madds / 1e6:.1f} M MAdds at {self.resolution} px exceeds the limit "
                                       f"{self.max_madds / 1e6:.1f} M")
        return None

    def equals(self, other: object) -> bool:
        return (isinstance(other, MAddsConstraint) and self.label == other.label
                and (self.max_madds, self.resolution, self.width_mult, self.num_classes)
                == (other.max_madds, other.resolution, other.width_mult, other.num_classes)
                and self.choices.keys() == other.choices.keys()
                and all(self.choices[key].equals(other.choices[key]) for key in self.choices))

    def extra_repr(self) -> str:
        return f"max_madds={self.max_madds:g}, resolution={self.resolution}, label={self.label!r}"


class MobileNetLikeSpace(ModelSpace):
    """The MobileNet-like space as an NNI ``ModelSpace`` of plain categorical choices.

    ``space.simplify()`` gives the 45 decisions of :func:`~nni_asenas.imagenet.space.decisions` (same labels and
    options) and, unless ``max_madds`` is None, the ``max_madds`` constraint: ``space.freeze(sample)`` raises
    ``ConstraintViolation`` for an over-budget sample. A frozen space is a :class:`MobileNetLike` network
    (attribute ``net``); decisions of blocks beyond a stage's depth are accepted and ignored.
    """

    def __init__(self, *, width_mult: float = mobilenet.WIDTH_MULT, num_classes: int = mobilenet.NUM_CLASSES,
                 dropout: float = 0.2, max_madds: float | None = mobilenet.MAX_MADDS,
                 resolution: int = mobilenet.RESOLUTION) -> None:
        super().__init__()
        choices = {label: self.add_mutable(nni.choice(label, options))
                   for label, options in mobilenet.decisions().items()}
        if max_madds is not None:
            self.add_mutable(MAddsConstraint(choices, max_madds=max_madds, resolution=resolution,
                                             width_mult=width_mult, num_classes=num_classes))
        arch = {label: ensure_frozen(choice, strict=False) for label, choice in choices.items()}
        self.net = mobilenet.MobileNetLike(arch, width_mult=width_mult, num_classes=num_classes, dropout=dropout)

    def freeze(self, sample: dict) -> MobileNetLikeSpace:
        """Validate ``sample`` (unknown options, the MAdds constraint) and build that network."""
        self.validate(sample)
        with model_context(sample):
            return self.__class__(*self.trace_args, **self.trace_kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

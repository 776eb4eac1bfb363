"""Settings of the ImageNet training programs: one frozen, validated object per run.

:class:`TrainSettings` (one architecture, :func:`nni_asenas.imagenet.train.run`) and :class:`SupernetSettings` (the
weight-sharing supernet, :func:`nni_asenas.imagenet.supernet_train.run`) share :class:`RunSettings`: data, schedule,
optimiser and hardware. Every value is checked when the object is made; a bad one is a one-line
:class:`~nni_asenas.errors.UsageError` that names the setting (``batch_size must be at least 1, got 0``). The programs
(``python -m nni_asenas.trials.imagenet`` / ``.supernet``) build these from their flags, take their defaults from
here, and name the flag instead (``--batch-size``). ``args.yaml`` of a run holds :func:`dataclasses.asdict` of them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from nni_asenas.config import check_seed
from nni_asenas.errors import UsageError
from nni_asenas.imagenet import space as mobilenet

__all__ = ["CHOICES", "MAX_BAD_IMAGES_FRACTION", "RunSettings", "SupernetSettings", "TrainSettings", "parse_randaugment"]

#: Default of ``max_bad_images_fraction``: a pass over a set may meet this share of unreadable images (about 1,300 of
#: ImageNet's 1.28 M training images) before the run stops with a :class:`DataError`.
MAX_BAD_IMAGES_FRACTION = 0.001


def parse_randaugment(text: str) -> tuple[int, int]:
    try:
        ops, magnitude = (int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"randaugment expects N,M (two integers, e.g. 2,9), got {text!r}") from None
    if ops < 1 or not 0 <= magnitude <= 30:
        raise UsageError(f"randaugment {text}: N must be >= 1 and M in [0, 30]")
    return ops, magnitude


# (low, low included, high, high included); None: unbounded above
_Range = tuple[float, bool, "float | None", bool]


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """What both training programs read: data, schedule, optimiser, hardware (see the programs' ``--help``)."""

    data: str  # dataset root with train/<class>/ (and val/<class>/)
    output: str | None = None  # output directory (None: $NNI_OUTPUT_DIR, else the program's default)
    resume: str | None = None  # a checkpoint path, "auto" (OUTPUT/last.pth when it exists) or None
    # schedule and optimiser
    epochs: int = 300
    batch_size: int = 256  # images per process and step
    opt: str = "sgd"  # "sgd" (Nesterov momentum) or "rmsprop"
    lr: float | None = None  # peak learning rate (None: lr_base x global batch / 256)
    lr_base: float | None = None  # peak learning rate per 256 images (None: 0.1 sgd, 0.016 rmsprop)
    min_lr: float = 0.0
    warmup_epochs: float = 5.0
    momentum: float = 0.9
    weight_decay: float = 4e-5  # on conv/linear weights, not on BatchNorm or biases
    label_smoothing: float = 0.1
    dropout: float = 0.2
    # data
    img_size: int = 224
    crop_pct: float = 0.875
    interpolation: str = "bilinear"  # or "bicubic"
    randaugment: str | None = None  # "N,M"
    train_subset: float = 1.0  # a class-balanced fraction of the training images
    val_subset: float = 1.0  # a fraction (<= 1) or a number of evaluation images
    holdout: float = 0.0  # evaluate on images held out of ROOT/train (a fraction or a count) instead of ROOT/val
    data_seed: int = 0  # seed of subsets and the hold-out split
    max_bad_images_fraction: float = MAX_BAD_IMAGES_FRACTION
    workers: int | None = None  # data-loader processes per GPU (None: CPUs / local processes)
    prefetch_factor: int = 4
    # model and hardware
    width_mult: float = mobilenet.WIDTH_MULT
    max_madds: float = mobilenet.MAX_MADDS  # at madds_resolution; 0: no limit
    madds_resolution: int = mobilenet.RESOLUTION
    device: str = "auto"  # "auto", "cuda" or "cpu"
    amp: str = "auto"  # "auto", "bf16", "fp16" or "off"
    channels_last: bool | None = None  # None: on for CUDA
    seed: int = 0
    log_interval: int = 50  # steps between progress lines

    def __post_init__(self) -> None:
        if not isinstance(self.data, str) or not self.data:
            raise UsageError(f"data must be a dataset folder, got {self.data!r}")
        for name, options in CHOICES.items():
            if hasattr(self, name) and getattr(self, name) not in options:
                raise UsageError(f"{name} must be one of {', '.join(options)}, got {getattr(self, name)!r}")
        for name in self._positive_ints():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"{name} must be at least 1, got {value!r}")
        for name in ("workers",):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise UsageError(f"{name} must be >= 0, got {value!r}")
        for name, (low, low_in, high, high_in) in self._ranges().items():
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value < low or (value == low and not low_in) \
                    or (high is not None and (value > high or (value == high and not high_in))):
                bounds = f"{'[' if low_in else '('}{low:g}, " + (f"{high:g}{']' if high_in else ')'}"
                                                                  if high is not None else "inf)")
                shown = f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else repr(value)
                raise UsageError(f"{name} must be in {bounds}, got {shown}")
        check_seed(self.seed, "seed")
        check_seed(self.data_seed, "data_seed")
        if self.randaugment is not None:
            parse_randaugment(self.randaugment)

    def _positive_ints(self) -> tuple[str, ...]:
        return ("epochs", "batch_size", "img_size", "log_interval", "prefetch_factor", "madds_resolution")

    def _ranges(self) -> dict[str, _Range]:
        return {
            "lr": (0.0, False, None, False),
            "lr_base": (0.0, False, None, False),
            "width_mult": (0.0, False, None, False),
            "train_subset": (0.0, False, 1.0, True),
            "val_subset": (0.0, False, None, False),
            "crop_pct": (0.0, False, 1.0, True),
            "min_lr": (0.0, True, None, False),
            "warmup_epochs": (0.0, True, None, False),
            "weight_decay": (0.0, True, None, False),
            "max_madds": (0.0, True, None, False),
            "holdout": (0.0, True, None, False),
            "momentum": (0.0, True, 1.0, False),
            "label_smoothing": (0.0, True, 1.0, False),
            "dropout": (0.0, True, 1.0, False),
            "max_bad_images_fraction": (0.0, True, 1.0, False),
        }

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain values (what ``args.yaml`` records under ``args``)."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}

    def replace(self, **changes: Any) -> Any:
        """A copy with ``changes``, checked again."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, kw_only=True)
class TrainSettings(RunSettings):
    """One architecture trained and evaluated (``python -m nni_asenas.trials.imagenet``)."""

    arch: str | None = None  # architecture JSON file (None: the NNI trial parameters)
    ema_decay: float = 0.9998  # weight EMA decay per step; 0 disables the EMA
    compile: bool = False  # torch.compile the model
    sync_bn: bool = False  # synchronise BatchNorm statistics across processes
    init_from: str | None = None  # a supernet checkpoint to start this architecture's weights from

    def _ranges(self) -> dict[str, _Range]:
        return {**super()._ranges(), "ema_decay": (0.0, True, 1.0, False)}


@dataclass(frozen=True, kw_only=True)
class SupernetSettings(RunSettings):
    """The weight-sharing supernet trained (``python -m nni_asenas.trials.supernet``)."""

    epochs: int = 120
    weight_decay: float = 3e-5
    max_madds: float = 0.0  # random sub-nets within this many MAdds at madds_resolution (0: the whole space)
    sampling: str = "sandwich"  # or "uniform"
    random_subnets: int = 2  # random sub-nets per step in the sandwich rule
    distill: bool = True  # sandwich: train the other sub-nets on the largest's predictions
    calib_images: int = 2000  # training images that recalibrate BatchNorm before each per-epoch score

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.random_subnets, bool) or not isinstance(self.random_subnets, int) or self.random_subnets < 0:
            raise UsageError(f"random_subnets must be >= 0, got {self.random_subnets!r}")

    def _positive_ints(self) -> tuple[str, ...]:
        return (*super()._positive_ints(), "calib_images")


#: The allowed values of each choice setting (the programs' ``choices``).
CHOICES: dict[str, tuple[str, ...]] = {
    "opt": ("sgd", "rmsprop"),
    "interpolation": ("bilinear", "bicubic"),
    "device": ("auto", "cuda", "cpu"),
    "amp": ("auto", "bf16", "fp16", "off"),
    "sampling": ("sandwich", "uniform"),
}

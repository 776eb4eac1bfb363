"""What the two ImageNet training programs share: their common flags (defaults read from the settings classes, the
one source) and the ``main`` skeleton (flags -> settings -> run, one line and exit 2 on bad input)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, Callable, Sequence, TypeVar

from nni_asenas.errors import DataError, UsageError, flag_errors
from nni_asenas.imagenet.settings import CHOICES, RunSettings

__all__ = ["add_data_flags", "add_hardware_flags", "add_schedule_flags", "flags_of", "parse_flags", "run_program", "settings_from"]

S = TypeVar("S", bound=RunSettings)


def _default(settings: type[RunSettings], name: str) -> Any:
    return {field.name: field.default for field in dataclasses.fields(settings)}[name]


def add_schedule_flags(group: Any, settings: type[RunSettings], *, ema: bool = False) -> None:
    """Schedule and optimiser flags; ``ema`` adds ``--ema-decay`` after ``--label-smoothing``."""
    d = lambda name: _default(settings, name)  # noqa: E731
    group.add_argument("--epochs", type=int, default=d("epochs"))
    group.add_argument("--batch-size", type=int, default=d("batch_size"), help="images per process and step")
    group.add_argument("--opt", choices=CHOICES["opt"], default=d("opt"),
                       help="SGD with Nesterov momentum, or RMSProp")
    group.add_argument("--lr", type=float, help="peak learning rate (default: --lr-base scaled by global batch / 256)")
    group.add_argument("--lr-base", type=float,
                       help="peak learning rate per 256 images (default: 0.1 sgd, 0.016 rmsprop)")
    group.add_argument("--min-lr", type=float, default=d("min_lr"), help="learning rate at the end of the cosine")
    group.add_argument("--warmup-epochs", type=float, default=d("warmup_epochs"),
                       help="linear warm-up length (may be fractional)")
    group.add_argument("--momentum", type=float, default=d("momentum"))
    group.add_argument("--weight-decay", type=float, default=d("weight_decay"),
                       help="on conv/linear weights (not on BN or biases)")
    group.add_argument("--label-smoothing", type=float, default=d("label_smoothing"))
    if ema:
        group.add_argument("--ema-decay", type=float, default=d("ema_decay"),
                           help="weight EMA decay per step; 0 disables the EMA")
    group.add_argument("--dropout", type=float, default=d("dropout"))


def add_data_flags(group: Any, settings: type[RunSettings], *, holdout_help: str, bad_images_help: str,
                   extra: Callable[[Any], None] | None = None) -> None:
    """Data flags; ``extra(group)`` adds the program's own after ``--holdout``."""
    d = lambda name: _default(settings, name)  # noqa: E731
    group.add_argument("--img-size", type=int, default=d("img_size"), help="training and evaluation crop")
    group.add_argument("--crop-pct", type=float, default=d("crop_pct"),
                       help="evaluation: resize to img-size / crop-pct, crop")
    group.add_argument("--interpolation", choices=CHOICES["interpolation"], default=d("interpolation"))
    group.add_argument("--randaugment", metavar="N,M", help="RandAugment with N ops of magnitude M, e.g. 2,9 (off)")
    group.add_argument("--train-subset", type=float, default=d("train_subset"), metavar="FRACTION",
                       help="train on this class-balanced fraction of the training images")
    group.add_argument("--val-subset", type=float, default=d("val_subset"), metavar="FRACTION_OR_COUNT",
                       help="evaluate on a class-balanced subset: a fraction (<= 1) or a number of images")
    group.add_argument("--holdout", type=float, default=d("holdout"), metavar="FRACTION_OR_COUNT", help=holdout_help)
    if extra is not None:
        extra(group)
    group.add_argument("--data-seed", type=int, default=d("data_seed"), help="seed of subsets and the hold-out split")
    group.add_argument("--max-bad-images-fraction", type=float, default=d("max_bad_images_fraction"),
                       metavar="FRACTION", help=bad_images_help)
    group.add_argument("--workers", type=int, help="data-loader processes per GPU (default: CPUs / local processes)")
    group.add_argument("--prefetch-factor", type=int, default=d("prefetch_factor"))


def add_hardware_flags(group: Any, settings: type[RunSettings], *,
                       extra: Callable[[Any], None] | None = None) -> None:
    """Device, precision and memory-format flags; ``extra(group)`` adds the program's own before ``--seed``."""
    d = lambda name: _default(settings, name)  # noqa: E731
    group.add_argument("--device", choices=CHOICES["device"], default=d("device"))
    group.add_argument("--amp", choices=CHOICES["amp"], default=d("amp"),
                       help="autocast precision (auto: bf16 on GPUs that have it, else fp16; off on CPU)")
    group.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                       help="NHWC memory format (default: on for CUDA)")
    if extra is not None:
        extra(group)
    group.add_argument("--seed", type=int, default=d("seed"))
    group.add_argument("--log-interval", type=int, default=d("log_interval"), help="steps between progress lines")


def flags_of(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each setting's flag (``batch_size`` -> ``--batch-size``): how a library error's parameter is shown."""
    return {action.dest: next(flag for flag in action.option_strings if flag.startswith("--"))
            for action in parser._actions if action.dest != "help" and any(flag.startswith("--")
                                                                          for flag in action.option_strings)}


def settings_from(namespace: argparse.Namespace, settings: type[S]) -> S:
    """``settings`` made from the parsed flags (checked: a bad value is a :class:`UsageError` naming the setting)."""
    values = vars(namespace)
    return settings(**{field.name: values[field.name] for field in dataclasses.fields(settings)})


def parse_flags(parser: argparse.ArgumentParser, settings: type[S], argv: Sequence[str] | None) -> S:
    """The ``settings`` the command line ``argv`` gives (a bad value is a :class:`UsageError` naming its flag)."""
    namespace = parser.parse_args(argv)
    with flag_errors(flags_of(parser)):
        return settings_from(namespace, settings)


def run_program(program: str, parser: argparse.ArgumentParser, settings: type[S], run: Callable[[S], Any],
                argv: Sequence[str] | None) -> int:
    """Parse ``argv`` into ``settings`` and ``run`` them. Bad input (a flag's value, a file, the data) is one line on
    stderr naming the flag, exit 2; an interrupt is exit 130."""
    try:
        chosen = parse_flags(parser, settings, argv)
        with flag_errors(flags_of(parser)):  # the library's errors name settings; the user typed flags
            run(chosen)
    except DataError as exc:
        print(f"{program}: data error: {exc}", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"{program}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{program}: interrupted", file=sys.stderr)
        return 130
    return 0

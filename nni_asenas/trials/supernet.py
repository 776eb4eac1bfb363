"""``python -m nni_asenas.trials.supernet``: train the MobileNet-like weight-sharing supernet on ImageFolder data.

A stand-alone program, a ``torchrun`` program (NCCL / gloo) and an NNI trial (it reports the largest sub-net's
held-out top-1)::

    python -m nni_asenas.trials.supernet --data /data/imagenet --holdout 10000 --output runs/supernet
    torchrun --nproc_per_node=8 -m nni_asenas.trials.supernet --data /data/imagenet --holdout 10000 --output runs/supernet

The flags are the fields of :class:`~nni_asenas.imagenet.settings.SupernetSettings` (defaults from there); the run
is :func:`nni_asenas.imagenet.supernet_train.run`, which says how sub-nets are sampled and what it writes.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from nni_asenas.imagenet import space as mobilenet
from nni_asenas.imagenet.settings import CHOICES, SupernetSettings
from nni_asenas.imagenet.supernet_train import run
from nni_asenas.trials._program import (
    add_data_flags,
    add_hardware_flags,
    add_schedule_flags,
    parse_flags,
    run_program,
)

__all__ = ["build_parser", "parse_settings", "main", "run"]

PROGRAM = "nni_asenas.trials.supernet"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m {PROGRAM}",
                                description="Train the MobileNet-like weight-sharing supernet on ImageFolder data.")
    p.add_argument("--data", required=True, help="dataset root with train/<class>/ (and val/<class>/ without --holdout)")
    p.add_argument("--output", help="output directory (default: $NNI_OUTPUT_DIR, else ./output/supernet)")
    p.add_argument("--resume", nargs="?", const="auto", metavar="CHECKPOINT",
                   help="continue from CHECKPOINT, or with no value from OUTPUT/last.pth when it exists")
    g = p.add_argument_group("sub-net sampling")
    g.add_argument("--sampling", choices=CHOICES["sampling"], default=SupernetSettings.sampling,
                   help="sandwich: largest + smallest + random sub-nets per step; uniform: one random sub-net")
    g.add_argument("--random-subnets", type=int, default=SupernetSettings.random_subnets,
                   help="random sub-nets per step in the sandwich rule")
    g.add_argument("--distill", action=argparse.BooleanOptionalAction, default=SupernetSettings.distill,
                   help="sandwich: train the other sub-nets on the largest's predictions (in-place distillation)")
    g.add_argument("--max-madds", type=float, default=SupernetSettings.max_madds,
                   help="random sub-nets within this many MAdds at --madds-resolution (0: the whole space)")
    g.add_argument("--madds-resolution", type=int, default=mobilenet.RESOLUTION)
    add_schedule_flags(p.add_argument_group("schedule and optimiser"), SupernetSettings)

    def calibration(group: argparse._ArgumentGroup) -> None:
        group.add_argument("--calib-images", type=int, default=SupernetSettings.calib_images,
                           help="training images that recalibrate BatchNorm before each per-epoch score")

    add_data_flags(p.add_argument_group("data"), SupernetSettings,
                   holdout_help="keep these images of ROOT/train out of training, for the search to score sub-nets on",
                   bad_images_help="unreadable training images are skipped (logged, counted); stop with a data error "
                   "when an epoch meets more than this share of them (default: %(default)s)", extra=calibration)
    g = p.add_argument_group("model and hardware")
    g.add_argument("--width-mult", type=float, default=SupernetSettings.width_mult)
    add_hardware_flags(g, SupernetSettings)
    return p


def parse_settings(argv: Sequence[str] | None = None) -> SupernetSettings:
    """The settings the command line ``argv`` gives (a bad value is a :class:`UsageError` naming its flag)."""
    return parse_flags(build_parser(), SupernetSettings, argv)


def main(argv: Sequence[str] | None = None) -> int:
    return run_program(PROGRAM, build_parser(), SupernetSettings, run, argv)


if __name__ == "__main__":
    sys.exit(main())

"""``python -m nni_asenas.trials.imagenet``: train and evaluate one MobileNet-like architecture on ImageFolder data.

An NNI trial (the architecture from ``nni.get_next_parameter()``), a stand-alone program (``--arch FILE.json``) and a
``torchrun`` program (DDP: NCCL on GPUs, gloo on CPUs)::

    python -m nni_asenas.trials.imagenet --data /data/imagenet --arch arch.json --output runs/a1
    torchrun --nproc_per_node=8 -m nni_asenas.trials.imagenet --data /data/imagenet --arch arch.json --output runs/a1

Search mode is the same program with a short schedule on a subset: ``--epochs 5 --train-subset 0.2 --holdout 10000``.
The flags are the fields of :class:`~nni_asenas.imagenet.settings.TrainSettings` (defaults from there); the run is
:func:`nni_asenas.imagenet.train.run`, which says what it writes and reports.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from nni_asenas.imagenet import space as mobilenet
from nni_asenas.imagenet.engine import lr_at
from nni_asenas.imagenet.settings import TrainSettings
from nni_asenas.imagenet.train import run
from nni_asenas.trials._program import (
    add_data_flags,
    add_hardware_flags,
    add_schedule_flags,
    parse_flags,
    run_program,
)

__all__ = ["build_parser", "parse_settings", "lr_at", "main", "run"]

PROGRAM = "nni_asenas.trials.imagenet"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m {PROGRAM}",
                                description="Train one MobileNet-like architecture on ImageFolder data.")
    p.add_argument("--data", required=True, help="dataset root with train/<class>/ and val/<class>/ folders")
    p.add_argument("--arch", help="architecture JSON {label: option} (default: the NNI trial parameters)")
    p.add_argument("--output", help="output directory (default: $NNI_OUTPUT_DIR, else ./output/imagenet)")
    p.add_argument("--resume", nargs="?", const="auto", metavar="CHECKPOINT",
                   help="continue from CHECKPOINT, or with no value from OUTPUT/last.pth when it exists")
    add_schedule_flags(p.add_argument_group("schedule and optimiser"), TrainSettings, ema=True)
    add_data_flags(p.add_argument_group("data"), TrainSettings,
                   holdout_help="evaluate on images held out of ROOT/train instead of ROOT/val (search mode)",
                   bad_images_help="unreadable images are skipped (logged by path, counted); stop with a data error "
                   "when a pass over the training or evaluation set meets more than this share of them "
                   "(default: %(default)s)")

    def model_flags(g: argparse._ArgumentGroup) -> None:
        g.add_argument("--compile", action="store_true", help="torch.compile the model")
        g.add_argument("--sync-bn", action="store_true", help="synchronise BatchNorm statistics across processes")
        g.add_argument("--init-from", metavar="SUPERNET_CKPT",
                       help="start from this architecture's weights in a supernet checkpoint (python -m "
                       "nni_asenas.trials.supernet's last.pth, or OFA's released w1.2 weights): fine-tuning, "
                       "OFA-style, instead of a random start")

    g = p.add_argument_group("model and hardware")
    g.add_argument("--width-mult", type=float, default=TrainSettings.width_mult)
    g.add_argument("--max-madds", type=float, default=mobilenet.MAX_MADDS,
                   help="refuse architectures above this many MAdds at --madds-resolution (0: no limit)")
    g.add_argument("--madds-resolution", type=int, default=mobilenet.RESOLUTION)
    add_hardware_flags(g, TrainSettings, extra=model_flags)
    return p


def parse_settings(argv: Sequence[str] | None = None) -> TrainSettings:
    """The settings the command line ``argv`` gives (a bad value is a :class:`UsageError` naming its flag)."""
    return parse_flags(build_parser(), TrainSettings, argv)


def main(argv: Sequence[str] | None = None) -> int:
    return run_program(PROGRAM, build_parser(), TrainSettings, run, argv)


if __name__ == "__main__":
    sys.exit(main())

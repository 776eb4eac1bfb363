"""Files of a training run: atomic checkpoints, where to resume from, and the per-epoch ``summary.csv``."""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path
from typing import Any

import torch

from nni_asenas.errors import UsageError

__all__ = ["SUMMARY_FIELDS", "read_summary", "resume_path", "save_atomic", "write_summary"]

SUMMARY_FIELDS = ("epoch", "lr", "train_loss", "val_loss", "top1", "top5", "ema_top1", "ema_top5", "epoch_seconds",
                  "train_images_per_s")


def save_atomic(state: dict[str, Any], path: Path) -> None:
    partial = path.with_suffix(".tmp")
    torch.save(state, partial)
    os.replace(partial, path)


def resume_path(args: argparse.Namespace, output: Path) -> Path | None:
    if args.resume is None:
        if (output / "last.pth").exists():
            raise UsageError(f"--output {output} already holds a checkpoint (last.pth): pass --resume to continue it "
                             "or choose another --output")
        return None
    if args.resume == "auto":
        return output / "last.pth" if (output / "last.pth").exists() else None
    if not Path(args.resume).is_file():
        raise UsageError(f"--resume {args.resume}: no such checkpoint file")
    return Path(args.resume)


def write_summary(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: row.get(key, "") for key in SUMMARY_FIELDS})


def read_summary(path: Path, up_to_epoch: int) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return [row for row in csv.DictReader(handle) if int(row["epoch"]) <= up_to_epoch]

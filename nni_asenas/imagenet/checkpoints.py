"""Files of a training run: atomic checkpoints, where to resume from, and the per-epoch ``summary.csv``."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Sequence

import torch

from nni_asenas.errors import UsageError

__all__ = ["CHECKPOINT_KEYS", "SUMMARY_FIELDS", "load_checkpoint", "read_summary", "resume_path", "save_atomic",
           "write_summary"]

SUMMARY_FIELDS = ("epoch", "lr", "train_loss", "val_loss", "top1", "top5", "ema_top1", "ema_top5", "epoch_seconds",
                  "train_images_per_s")


#: What a checkpoint of this trial holds (``last.pth`` and ``best.pth`` alike).
CHECKPOINT_KEYS = ("epoch", "step", "model", "ema", "optimizer", "scaler", "best", "arch", "classes", "width_mult")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _read(path: Path) -> dict[str, Any]:
    """A checkpoint of this trial, or ValueError saying in one line why ``path`` is not one."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (truncated: RuntimeError/EOFError; not a torch file: UnpicklingError)
        raise ValueError(f"it cannot be read as a checkpoint ({_first_line(exc)})") from None
    if not isinstance(state, dict):
        raise ValueError(f"it holds a {type(state).__name__}, not a checkpoint of this trial")
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing:
        raise ValueError(f"it is not a checkpoint of this trial (no {missing[0]!r})")
    return state


def damaged_hint(path: Path) -> str:
    """Where to resume from instead of a damaged ``path``: its folder's ``best.pth`` when that one is readable."""
    best = path.with_name("best.pth")
    if best.resolve() == path.resolve() or not best.is_file():
        return "; there is no other checkpoint beside it (start again with another output)"
    try:
        state = _read(best)
    except ValueError:
        return f"; {best} is damaged too (start again with another output)"
    return f"; {best} (epoch {state['epoch']}) is readable: continue from it with resume {best}"


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by this trial. A truncated or foreign file is a one-line :class:`UsageError` that
    points to ``best.pth`` when it exists and is readable."""
    try:
        return _read(path)
    except ValueError as exc:
        raise UsageError(f"resume {path}: {exc}{damaged_hint(path)}") from None


def save_atomic(state: dict[str, Any], path: Path) -> None:
    partial = path.with_suffix(".tmp")
    torch.save(state, partial)
    os.replace(partial, path)


def resume_path(resume: str | None, output: Path) -> Path | None:
    """The checkpoint a run continues from: ``resume`` is a path, ``"auto"`` (``output/last.pth`` when it exists) or
    None (a fresh run, which must not overwrite a checkpoint already in ``output``)."""
    if resume is None:
        if (output / "last.pth").exists():
            raise UsageError(f"output {output} already holds a checkpoint (last.pth): pass resume to continue it "
                             "or choose another output")
        return None
    if resume == "auto":
        return output / "last.pth" if (output / "last.pth").exists() else None
    if not Path(resume).is_file():
        raise UsageError(f"resume {resume}: no such checkpoint file")
    return Path(resume)


def write_summary(path: Path, rows: list[dict[str, Any]], *, fields: Sequence[str] = SUMMARY_FIELDS) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields))
        writer.writeheader()
        for row in rows:
            writer.writerow({key: row.get(key, "") for key in fields})


def read_summary(path: Path, up_to_epoch: int) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return [row for row in csv.DictReader(handle) if int(row["epoch"]) <= up_to_epoch]

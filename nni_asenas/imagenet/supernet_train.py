"""Train the MobileNet-like weight-sharing supernet on ImageFolder data (one process, or DDP under torchrun).

The program is :mod:`nni_asenas.trials.supernet`::

    python -m nni_asenas.trials.supernet --data /data/imagenet --holdout 10000 --output runs/supernet
    torchrun --nproc_per_node=8 -m nni_asenas.trials.supernet --data /data/imagenet --holdout 10000 --output runs/supernet

It shares the ImageNet trial's pieces and conventions (:mod:`nni_asenas.imagenet.train`): the data pipeline
(seeded per image, so a resumed run sees the same crops), NCCL / gloo process groups, AMP, channels_last,
``args.yaml``, ``summary.csv``, ``log.txt``, atomic ``last.pth`` after every epoch, ``--resume`` with identical
state, ``results.json``, and NNI reports (rank 0 only).

Each optimiser step trains sub-nets of :class:`~nni_asenas.imagenet.supernet.MobileNetSupernet` on the same batch,
accumulating their gradients:

* ``--sampling sandwich`` (default): the largest network on the labels, the smallest and ``--random-subnets``
  random ones distilled in place from the largest's (detached) predictions (``--no-distill``: all on the labels);
* ``--sampling uniform``: one random sub-net on the labels (SPOS, NNI's ``RandomOneShot``).

The random sub-nets are a pure function of (``--seed``, step, index) (:class:`SubnetSampler`), so every rank trains
the same sub-nets; ``--max-madds`` restricts them to networks within that many MAdds. Processes do not use DDP's
wrapper (a supernet step runs several different graphs): gradients are averaged with one all-reduce per step, and
after every epoch the ranks check that they trained the same sub-nets and hold the same weights.

``--holdout N`` keeps N class-balanced images of ROOT/train out of training; the search scores sub-nets on them
(``nni-asenas search --space mobilenet --supernet OUTPUT/last.pth``), and ROOT/val stays unseen. After every epoch
the largest and smallest sub-nets are scored on that split (or on ROOT/val without ``--holdout``) after BatchNorm
recalibration on ``--calib-images`` training images, as the search will score them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import nni
import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

from nni_asenas.errors import UsageError
from nni_asenas.imagenet import space as mobilenet
from nni_asenas.imagenet.checkpoints import read_summary, resume_path, save_atomic, write_summary
from nni_asenas.imagenet.data import (
    MAX_BAD_IMAGES_FRACTION,
    BadImages,
    build_datasets,
    build_loaders,
    check_dataset,
    epoch_seed,
)
from nni_asenas.imagenet.engine import (
    ProcessEnv,
    build_optimizer,
    check_batch,
    finish_epoch,
    on_main,
    plan_run,
    running_loss,
    set_lr,
    setup_processes,
    share_buffers,
    synchronize,
)
from nni_asenas.imagenet.evaluator import SubnetEvaluator, image_folder_batches, normalize_uint8

__all__ = ["CHECKPOINT_KIND", "SUMMARY_FIELDS", "SupernetRun", "build_parser", "checkpoint_state", "load_supernet",
           "main", "run", "step_archs", "train_step"]

logger = logging.getLogger("nni_asenas.imagenet.supernet")

PROGRAM = "nni_asenas.trials.supernet"
CHECKPOINT_KIND = "nni-asenas-mobilenet-supernet"
SUMMARY_FIELDS = ("epoch", "lr", "train_loss", "largest_top1", "smallest_top1", "subnets", "epoch_seconds",
                  "train_images_per_s", "train_bad_images")


# ----------------------------------------------------------------------------------------------- command line

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m {PROGRAM}",
                                description="Train the MobileNet-like weight-sharing supernet on ImageFolder data.")
    p.add_argument("--data", required=True, help="dataset root with train/<class>/ (and val/<class>/ without --holdout)")
    p.add_argument("--output", help="output directory (default: $NNI_OUTPUT_DIR, else ./output/supernet)")
    p.add_argument("--resume", nargs="?", const="auto", metavar="CHECKPOINT",
                   help="continue from CHECKPOINT, or with no value from OUTPUT/last.pth when it exists")
    g = p.add_argument_group("sub-net sampling")
    g.add_argument("--sampling", choices=("sandwich", "uniform"), default="sandwich",
                   help="sandwich: largest + smallest + random sub-nets per step; uniform: one random sub-net")
    g.add_argument("--random-subnets", type=int, default=2, help="random sub-nets per step in the sandwich rule")
    g.add_argument("--distill", action=argparse.BooleanOptionalAction, default=True,
                   help="sandwich: train the other sub-nets on the largest's predictions (in-place distillation)")
    g.add_argument("--max-madds", type=float, default=0.0,
                   help="random sub-nets within this many MAdds at --madds-resolution (0: the whole space)")
    g.add_argument("--madds-resolution", type=int, default=mobilenet.RESOLUTION)
    g = p.add_argument_group("schedule and optimiser")
    g.add_argument("--epochs", type=int, default=120)
    g.add_argument("--batch-size", type=int, default=256, help="images per process and step")
    g.add_argument("--opt", choices=("sgd", "rmsprop"), default="sgd")
    g.add_argument("--lr", type=float, help="peak learning rate (default: --lr-base scaled by global batch / 256)")
    g.add_argument("--lr-base", type=float, help="peak learning rate per 256 images (default: 0.1 sgd, 0.016 rmsprop)")
    g.add_argument("--min-lr", type=float, default=0.0)
    g.add_argument("--warmup-epochs", type=float, default=5.0)
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--weight-decay", type=float, default=3e-5, help="on conv/linear weights (not on BN or biases)")
    g.add_argument("--label-smoothing", type=float, default=0.1)
    g.add_argument("--dropout", type=float, default=0.2)
    g = p.add_argument_group("data")
    g.add_argument("--img-size", type=int, default=224)
    g.add_argument("--crop-pct", type=float, default=0.875)
    g.add_argument("--interpolation", choices=("bilinear", "bicubic"), default="bilinear")
    g.add_argument("--randaugment", metavar="N,M", help="RandAugment with N ops of magnitude M (off)")
    g.add_argument("--train-subset", type=float, default=1.0, metavar="FRACTION")
    g.add_argument("--val-subset", type=float, default=1.0, metavar="FRACTION_OR_COUNT")
    g.add_argument("--holdout", type=float, default=0.0, metavar="FRACTION_OR_COUNT",
                   help="keep these images of ROOT/train out of training, for the search to score sub-nets on")
    g.add_argument("--calib-images", type=int, default=2000,
                   help="training images that recalibrate BatchNorm before each per-epoch score")
    g.add_argument("--data-seed", type=int, default=0, help="seed of subsets and the hold-out split")
    g.add_argument("--max-bad-images-fraction", type=float, default=MAX_BAD_IMAGES_FRACTION, metavar="FRACTION",
                   help="unreadable training images are skipped (logged, counted); stop with a data error when an "
                   "epoch meets more than this share of them (default: %(default)s)")
    g.add_argument("--workers", type=int, help="data-loader processes per GPU (default: CPUs / local processes)")
    g.add_argument("--prefetch-factor", type=int, default=4)
    g = p.add_argument_group("model and hardware")
    g.add_argument("--width-mult", type=float, default=mobilenet.WIDTH_MULT)
    g.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    g.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"), default="auto")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--log-interval", type=int, default=50)
    return p


def _check_args(args: argparse.Namespace) -> None:
    positive = {"--epochs": args.epochs, "--batch-size": args.batch_size, "--img-size": args.img_size,
                "--log-interval": args.log_interval, "--prefetch-factor": args.prefetch_factor,
                "--calib-images": args.calib_images}
    for flag, value in positive.items():
        if value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")
    if args.random_subnets < 0:
        raise UsageError(f"--random-subnets must be >= 0, got {args.random_subnets}")
    if args.workers is not None and args.workers < 0:
        raise UsageError(f"--workers must be >= 0, got {args.workers}")
    if not 0 < args.train_subset <= 1:
        raise UsageError(f"--train-subset is a fraction in (0, 1], got {args.train_subset:g}")
    if not 0 <= args.label_smoothing < 1 or not 0 <= args.dropout < 1:
        raise UsageError("--label-smoothing and --dropout must be in [0, 1)")
    if args.warmup_epochs < 0 or args.min_lr < 0 or args.max_madds < 0:
        raise UsageError("--warmup-epochs, --min-lr and --max-madds must not be negative")
    if not 0 <= args.max_bad_images_fraction < 1:
        raise UsageError(f"--max-bad-images-fraction must be in [0, 1), got {args.max_bad_images_fraction:g}")
    if not 0 <= args.seed <= 2 ** 32 - 1:
        raise UsageError(f"--seed must be in 0..{2 ** 32 - 1}, got {args.seed}")


# ------------------------------------------------------------------------------------------------- sampling

def step_archs(sampler: Any, step: int, *, sampling: str, random_subnets: int) -> list[dict[str, int]]:
    """The sub-nets that optimiser step ``step`` trains, in order (the first one is the teacher in the sandwich)."""
    from nni_asenas.imagenet.supernet import largest_arch, smallest_arch

    if sampling == "uniform":
        return [sampler.sample(step, 0)]
    return [mobilenet.canonical_arch(largest_arch()), mobilenet.canonical_arch(smallest_arch())] + \
        [sampler.sample(step, index) for index in range(random_subnets)]


def _digest(archs: Sequence[dict[str, int]], previous: str = "") -> str:
    text = previous + json.dumps([sorted(arch.items()) for arch in archs])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------- checkpoints

def checkpoint_state(supernet: Any, *, classes: Sequence[str], holdout: float, data_seed: int, img_size: int,
                     crop_pct: float = 0.875, interpolation: str = "bilinear", epoch: int = 0, step: int = 0,
                     optimizer: dict[str, Any] | None = None, scaler: dict[str, Any] | None = None,
                     last: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint document of a supernet (what ``last.pth`` holds and :func:`load_supernet` reads): the weights,
    how to rebuild the network, and the data facts the search needs (classes, hold-out split, image size)."""
    return {"kind": CHECKPOINT_KIND, "epoch": epoch, "step": step, "model": supernet.state_dict(),
            "optimizer": optimizer or {}, "scaler": scaler or {}, "last": last, "supernet": supernet.config(),
            "classes": list(classes), "holdout": holdout, "data_seed": data_seed, "img_size": img_size,
            "crop_pct": crop_pct, "interpolation": interpolation}


def load_supernet(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> tuple[Any, dict[str, Any]]:
    """A trained :class:`~nni_asenas.imagenet.supernet.MobileNetSupernet` from a trainer checkpoint (``last.pth``),
    and the checkpoint's metadata (classes, hold-out split, data seed, image size, epoch)."""
    from nni_asenas.imagenet.supernet import MobileNetSupernet

    file = Path(path)
    if not file.is_file():
        raise UsageError(f"supernet checkpoint {path}: no such file")
    try:
        state = torch.load(file, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input
        raise UsageError(f"supernet checkpoint {path}: not a readable torch checkpoint ({exc})") from None
    if not isinstance(state, dict) or state.get("kind") != CHECKPOINT_KIND:
        raise UsageError(f"supernet checkpoint {path}: not a checkpoint of {PROGRAM} (an ImageNet trial's?)")
    supernet = MobileNetSupernet.from_config(state["supernet"])
    supernet.load_state_dict(state["model"])
    meta = {key: state[key] for key in ("classes", "holdout", "data_seed", "img_size", "crop_pct", "interpolation",
                                        "epoch", "step", "supernet")}
    return supernet, meta


# -------------------------------------------------------------------------------------------------- training

@dataclass
class SupernetRun:
    """What a supernet training works on: the supernet, its optimiser and loss scaler, the sub-net sampler, the
    precision and memory format, the processes, and the schedule (``step`` counts optimiser steps)."""

    supernet: Any
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    sampler: Any
    amp: torch.dtype | None
    memory_format: torch.memory_format
    env: ProcessEnv
    total_steps: int
    warmup_steps: int
    base_lr: float
    step: int = 0


def _average_gradients(parameters: list[nn.Parameter], env: ProcessEnv) -> None:
    """Average the gradients of every rank (one all-reduce); all ranks trained the same sub-nets, so the same
    parameters have gradients everywhere."""
    if env.world == 1:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= env.world
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def train_step(run_: SupernetRun, images: torch.Tensor, targets: torch.Tensor, archs: list[dict[str, int]],
               args: argparse.Namespace, parameters: list[nn.Parameter]) -> torch.Tensor:
    """One optimiser step over ``archs`` on one batch; returns the first sub-net's loss (detached, on the device:
    reading it would wait for the GPU)."""
    supernet = run_.supernet
    run_.optimizer.zero_grad(set_to_none=True)
    teacher: torch.Tensor | None = None
    first_loss = torch.zeros((), device=images.device)
    for index, arch in enumerate(archs):
        supernet.activate(arch)
        with _autocast(run_):
            logits = supernet(images)
        if teacher is None or not args.distill:
            loss = F.cross_entropy(logits.float(), targets, label_smoothing=args.label_smoothing)
        else:
            loss = -(teacher * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()
        if index == 0:
            first_loss = loss.detach()
            if args.sampling == "sandwich" and args.distill:
                teacher = F.softmax(logits.detach().float(), dim=1)
        run_.scaler.scale(loss).backward()
    _average_gradients(parameters, run_.env)
    run_.scaler.step(run_.optimizer)
    run_.scaler.update()
    return first_loss


def _autocast(run_: SupernetRun) -> Any:
    if run_.amp is None:
        return torch.autocast(run_.env.device.type, enabled=False)
    return torch.autocast(run_.env.device.type, dtype=run_.amp)


def _train_epoch(run_: SupernetRun, loader: Any, epoch: int, args: argparse.Namespace,
                 bad_images: BadImages) -> dict[str, Any]:
    """One pass over the training loader. Unreadable images (replaced by readable ones in the batch, as in the
    ImageNet trial) are counted; too many stop the run with a :class:`DataError` (all ranks together at the end)."""
    env = run_.env
    bad_images.start_pass()
    run_.supernet.train()
    parameters = list(run_.supernet.parameters())
    loss_sum = torch.zeros((), dtype=torch.float64, device=env.device)
    seen = 0
    digest = ""
    start = window = time.perf_counter()
    lr = run_.base_lr
    for index, (images, targets, bad) in enumerate(loader):
        check_batch(bad, targets, loader, bad_images, env)
        lr = set_lr(run_.optimizer, run_.step, total_steps=run_.total_steps, warmup_steps=run_.warmup_steps,
                    base_lr=run_.base_lr, min_lr=args.min_lr)
        archs = step_archs(run_.sampler, run_.step, sampling=args.sampling, random_subnets=args.random_subnets)
        digest = _digest(archs, digest)
        images = images.to(env.device, non_blocking=True, memory_format=run_.memory_format)
        targets = targets.to(env.device, non_blocking=True)
        loss = train_step(run_, images, targets, archs, args, parameters)
        run_.step += 1
        loss_sum += loss.double() * images.shape[0]
        seen += images.shape[0]
        if (index + 1) % args.log_interval == 0:
            running = running_loss(loss_sum, seen, epoch, index)
            if env.main:
                logger.info("epoch %d step %d/%d loss %.4f lr %.5f %.1f s", epoch + 1, index + 1, len(loader),
                            running, lr, time.perf_counter() - window)
            window = time.perf_counter()
    synchronize(env.device)
    summary = finish_epoch(loss_sum, seen, time.perf_counter() - start, lr, epoch, bad_images, env)
    return {**summary, "subnets": digest}


def _check_ranks_agree(run_: SupernetRun, digest: str) -> None:
    """Every rank trained the same sub-nets and holds the same weights (a cheap all-gather per epoch)."""
    env = run_.env
    if env.world == 1:
        return
    with torch.no_grad():
        checksum = float(sum(p.double().sum() for p in run_.supernet.parameters()))
    views: list[Any] = [None] * env.world
    dist.all_gather_object(views, (digest, checksum))
    if any(view[0] != views[0][0] for view in views):
        raise RuntimeError(f"ranks trained different sub-nets: {[view[0] for view in views]}")
    if any(view[1] != views[0][1] for view in views):
        raise RuntimeError(f"ranks hold different weights: checksums {[view[1] for view in views]}")


def _evaluator(run_: SupernetRun, args: argparse.Namespace, classes: list[str], workers: int) -> SubnetEvaluator:
    """Scores sub-nets of the current weights exactly as the search will (the same batches: BN recalibration on
    ``--calib-images`` training images, top-1 on the held-out split or ROOT/val); rank 0 only."""
    from nni_asenas.imagenet.data import IMAGENET_MEAN, IMAGENET_STD

    calibration, evaluation, _ = image_folder_batches(
        args.data, holdout=args.holdout, data_seed=args.data_seed, calib_images=args.calib_images,
        img_size=args.img_size, crop_pct=args.crop_pct, interpolation=args.interpolation,
        batch_size=args.batch_size, workers=workers, val_subset=args.val_subset, classes=classes)
    prepare = normalize_uint8(IMAGENET_MEAN, IMAGENET_STD, device=run_.env.device,
                              channels_last=run_.memory_format == torch.channels_last)
    return SubnetEvaluator(run_.supernet.extract, calibration=calibration, evaluation=evaluation, prepare=prepare,
                           device=run_.env.device, amp=run_.amp, cache=False)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train the supernet; return (on every rank) the final result reported to NNI."""
    _check_args(args)
    env = setup_processes(args.device)
    output = Path(args.output or os.environ.get("NNI_OUTPUT_DIR") or "output/supernet")
    handlers: list[logging.Handler] = []
    try:
        classes = check_dataset(args.data, need_val=not args.holdout)
        resume_from = on_main(lambda: resume_path(args, output), env)
        if env.main:
            output.mkdir(parents=True, exist_ok=True)
        if env.world > 1:
            dist.barrier()
        handlers = _logging_handlers(output, env)
        return _train(args, env, output, classes, resume_from)
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
        if env.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _logging_handlers(output: Path, env: ProcessEnv) -> list[logging.Handler]:
    formatter = logging.Formatter("%(asctime)s %(levelname)s " + (f"[rank {env.rank}] " if env.world > 1 else "")
                                  + "%(message)s")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stdout if env.main else sys.stderr)]
    if env.main:
        handlers.append(logging.FileHandler(output / "log.txt", encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    logger.setLevel(logging.INFO if env.main else logging.WARNING)
    logger.propagate = False
    return handlers


def _train(args: argparse.Namespace, env: ProcessEnv, output: Path, classes: list[str],
           resume_from: Path | None) -> dict[str, Any]:
    from nni_asenas.imagenet.supernet import MobileNetSupernet, SubnetSampler

    train_set, eval_set, eval_name = build_datasets(args, classes)
    plan = plan_run(args, env, len(train_set))
    global_batch, steps_per_epoch, base_lr = plan.global_batch, plan.steps_per_epoch, plan.base_lr
    amp, channels_last, memory_format = plan.amp, plan.channels_last, plan.memory_format
    sampler = SubnetSampler(seed=args.seed, max_madds=args.max_madds or None, resolution=args.madds_resolution,
                            width_mult=args.width_mult, num_classes=len(classes))
    torch.manual_seed(args.seed)
    supernet = MobileNetSupernet(width_mult=args.width_mult, num_classes=len(classes), dropout=args.dropout)
    supernet = supernet.to(env.device, memory_format=memory_format)  # type: ignore[call-overload]
    run_ = SupernetRun(supernet, build_optimizer(supernet, args, base_lr),
                torch.amp.GradScaler(env.device.type, enabled=amp == torch.float16), sampler, amp, memory_format, env,
                args.epochs * steps_per_epoch, round(args.warmup_epochs * steps_per_epoch), base_lr)
    start_epoch, last = 0, None
    if resume_from is not None:
        state = on_main(lambda: torch.load(resume_from, map_location="cpu", weights_only=True), env)
        if state.get("kind") != CHECKPOINT_KIND or state["classes"] != classes \
                or state["supernet"] != supernet.config() or state["holdout"] != args.holdout \
                or state["data_seed"] != args.data_seed:
            raise UsageError(f"--resume {resume_from}: the checkpoint is of another supernet, class list or split")
        supernet.load_state_dict(state["model"])
        run_.optimizer.load_state_dict(state["optimizer"])
        if state["scaler"] and run_.scaler.is_enabled():
            run_.scaler.load_state_dict(state["scaler"])
        start_epoch, run_.step, last = state["epoch"], state["step"], state["last"]

    workers = args.workers if args.workers is not None else min(16, (os.cpu_count() or 1) // max(1, env.local_world))
    train_sampler, train_loader, _ = build_loaders(
        train_set, eval_set, batch_size=args.batch_size, world=env.world, rank=env.rank, seed=args.seed,
        workers=workers, prefetch_factor=args.prefetch_factor, pin_memory=env.device.type == "cuda")
    info = {"supernet": supernet.config(), "num_classes": len(classes), "world_size": env.world,
            "global_batch": global_batch, "lr": base_lr, "device": str(env.device),
            "amp": str(amp).replace("torch.", "") if amp else "off", "channels_last": channels_last,
            "torch": str(torch.__version__), "train_images": len(train_set), "eval_images": len(eval_set),
            "eval_set": eval_name, "calib_images": args.calib_images, "workers": workers,
            "subnets_per_step": len(step_archs(sampler, 0, sampling=args.sampling,
                                               random_subnets=args.random_subnets))}
    if env.main:
        import yaml

        with open(output / "args.yaml", "w", encoding="utf-8") as handle:
            yaml.safe_dump({"args": vars(args), "resolved": info}, handle, sort_keys=False)
        logger.info("supernet: width %g, %d classes, %.2f M parameters; %s sampling, %d sub-nets per step%s",
                    args.width_mult, len(classes), sum(p.numel() for p in supernet.parameters()) / 1e6,
                    args.sampling, info["subnets_per_step"],
                    f", random ones within {args.max_madds / 1e6:.1f} M MAdds" if args.max_madds else "")
        logger.info("%d training images, scoring on %s; %d process(es) on %s, global batch %d, lr %.4g, amp %s, "
                    "channels_last %s", len(train_set), eval_name, env.world, env.device.type, global_batch, base_lr,
                    info["amp"], channels_last)
        if resume_from is not None:
            logger.info("resumed from %s after epoch %d", resume_from, start_epoch)

    rows = read_summary(output / "summary.csv", start_epoch) if env.main else []
    train_bad = BadImages("training", len(train_set), args.max_bad_images_fraction, logger)
    evaluator = _evaluator(run_, args, classes, workers) if env.main else None
    from nni_asenas.imagenet.supernet import largest_arch, smallest_arch

    for epoch in range(start_epoch, args.epochs):
        torch.manual_seed(epoch_seed(args.seed, epoch, 1 + env.rank))
        train_sampler.set_epoch(epoch)
        row: dict[str, Any] = {"epoch": epoch + 1, **_train_epoch(run_, train_loader, epoch, args, train_bad)}
        _check_ranks_agree(run_, row["subnets"])
        share_buffers(supernet, env)
        if env.main:
            assert evaluator is not None
            row["largest_top1"] = evaluator(largest_arch())
            row["smallest_top1"] = evaluator(smallest_arch())
            supernet.train()
            rows.append(row)
            write_summary(output / "summary.csv", rows, fields=SUMMARY_FIELDS)
            last = {"largest_top1": row["largest_top1"], "smallest_top1": row["smallest_top1"], "epoch": epoch + 1}
            state = checkpoint_state(supernet, classes=classes, holdout=args.holdout, data_seed=args.data_seed,
                                     img_size=args.img_size, crop_pct=args.crop_pct, interpolation=args.interpolation,
                                     epoch=epoch + 1, step=run_.step, optimizer=run_.optimizer.state_dict(),
                                     scaler=run_.scaler.state_dict(), last=last)
            save_atomic(state, output / "last.pth")
            logger.info("epoch %d/%d train loss %.4f, %s top-1 largest %.2f smallest %.2f, %.0f s, %.0f images/s",
                        epoch + 1, args.epochs, row["train_loss"], eval_name, row["largest_top1"],
                        row["smallest_top1"], row["epoch_seconds"], row["train_images_per_s"])
            nni.report_intermediate_result(row["largest_top1"])
        if env.world > 1:
            dist.barrier()
    last = on_main(lambda: last, env)
    if last is None:
        raise UsageError("no epoch to run: --epochs is not above the resumed checkpoint's epoch")
    result = {"default": last["largest_top1"], **last, "checkpoint": str(output / "last.pth")}
    if env.main:
        with open(output / "results.json", "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
        logger.info("supernet after %d epochs: largest top-1 %.2f, smallest %.2f; checkpoint %s", last["epoch"],
                    last["largest_top1"], last["smallest_top1"], output / "last.pth")
        nni.report_final_result(result)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except UsageError as exc:
        print(f"{PROGRAM}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROGRAM}: interrupted", file=sys.stderr)
        return 130
    return 0

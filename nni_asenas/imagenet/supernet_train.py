"""Train the MobileNet-like weight-sharing supernet on ImageFolder data (one process, or DDP under torchrun).

:func:`run` takes a :class:`~nni_asenas.imagenet.settings.SupernetSettings`; the program around it is
``python -m nni_asenas.trials.supernet`` (stand-alone, under ``torchrun``, or as an NNI trial)::

    run(SupernetSettings(data="/data/imagenet", holdout=10000, output="runs/supernet"))

It shares the ImageNet trial's pieces and conventions (:mod:`nni_asenas.imagenet.train`): the data pipeline
(seeded per image, so a resumed run sees the same crops), NCCL / gloo process groups, AMP, channels_last, one
training loop (:func:`~nni_asenas.imagenet.engine.train_epoch`), ``args.yaml``, ``summary.csv``, ``log.txt``,
atomic ``last.pth`` after every epoch, ``resume`` with identical state, ``results.json``, and NNI reports (rank 0
only).

Each optimiser step trains sub-nets of :class:`~nni_asenas.imagenet.supernet.MobileNetSupernet` on the same batch,
accumulating their gradients:

* ``sampling="sandwich"`` (default): the largest network on the labels, the smallest and ``random_subnets`` random
  ones distilled in place from the largest's (detached) predictions (``distill=False``: all on the labels);
* ``sampling="uniform"``: one random sub-net on the labels (SPOS, NNI's ``RandomOneShot``).

The random sub-nets are a pure function of (``seed``, step, index) (:class:`SubnetSampler`), so every rank trains
the same sub-nets; ``max_madds`` restricts them to networks within that many MAdds. Processes do not use DDP's
wrapper (a supernet step runs several different graphs): gradients are averaged with one all-reduce per step, and
after every epoch the ranks check that they trained the same sub-nets and hold the same weights.

``holdout=N`` keeps N class-balanced images of ROOT/train out of training; the search scores sub-nets on them
(``nni-asenas search --space mobilenet --supernet OUTPUT/last.pth``), and ROOT/val stays unseen. After every epoch
the largest and smallest sub-nets are scored on that split (or on ROOT/val without a hold-out) after BatchNorm
recalibration on ``calib_images`` training images, as the search will score them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
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
from nni_asenas.imagenet.checkpoints import read_summary, save_atomic, write_summary
from nni_asenas.imagenet.data import BadImages, build_datasets, build_loaders, check_dataset, epoch_seed
from nni_asenas.imagenet.engine import (
    ProcessEnv,
    Training,
    build_optimizer,
    on_main,
    open_output,
    output_folder,
    plan_run,
    processes,
    run_log,
    share_buffers,
    train_epoch,
)
from nni_asenas.imagenet.evaluator import SubnetEvaluator, image_folder_batches, normalize_uint8
from nni_asenas.imagenet.settings import SupernetSettings

__all__ = ["CHECKPOINT_KIND", "SUMMARY_FIELDS", "SupernetRun", "SupernetSettings", "checkpoint_state", "load_supernet",
           "run", "step_archs", "train_step"]

logger = logging.getLogger("nni_asenas.imagenet.supernet")
CHECKPOINT_KIND = "nni-asenas-mobilenet-supernet"
SUMMARY_FIELDS = ("epoch", "lr", "train_loss", "largest_top1", "smallest_top1", "subnets", "epoch_seconds",
                  "train_images_per_s", "train_bad_images")


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
        raise UsageError(f"supernet checkpoint {path}: not a checkpoint of the supernet trainer "
                         "(python -m nni_asenas.trials.supernet; an ImageNet trial's?)")
    supernet = MobileNetSupernet.from_config(state["supernet"])
    supernet.load_state_dict(state["model"])
    meta = {key: state[key] for key in ("classes", "holdout", "data_seed", "img_size", "crop_pct", "interpolation",
                                        "epoch", "step", "supernet")}
    return supernet, meta


# -------------------------------------------------------------------------------------------------- training

@dataclass(kw_only=True)
class SupernetRun(Training):
    """The training of the supernet: the supernet itself and the sampler of the random sub-nets of each step."""

    supernet: Any
    sampler: Any


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
               parameters: list[nn.Parameter], *, distill: bool, label_smoothing: float) -> torch.Tensor:
    """One optimiser step over ``archs`` on one batch; with ``distill`` the sub-nets after the first learn the
    first's (detached) predictions instead of the labels. Returns the first sub-net's loss (detached, on the device:
    reading it would wait for the GPU)."""
    supernet = run_.supernet
    run_.optimizer.zero_grad(set_to_none=True)
    teacher: torch.Tensor | None = None
    first_loss = torch.zeros((), device=images.device)
    for index, arch in enumerate(archs):
        supernet.activate(arch)
        with _autocast(run_):
            logits = supernet(images)
        if teacher is None:
            loss = F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)
        else:
            loss = -(teacher * F.log_softmax(logits.float(), dim=1)).sum(dim=1).mean()
        if index == 0:
            first_loss = loss.detach()
            if distill:
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


def _train_epoch(run_: SupernetRun, loader: Any, epoch: int, settings: SupernetSettings,
                 bad_images: BadImages) -> dict[str, Any]:
    """One pass of :func:`~nni_asenas.imagenet.engine.train_epoch` whose step trains :func:`step_archs`; the summary
    row also holds the digest of every sub-net trained (ranks compare it)."""
    parameters = list(run_.supernet.parameters())
    distill = settings.sampling == "sandwich" and settings.distill
    digest = ""

    def supernet_step(images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        nonlocal digest
        archs = step_archs(run_.sampler, run_.step, sampling=settings.sampling, random_subnets=settings.random_subnets)
        digest = _digest(archs, digest)
        return train_step(run_, images, targets, archs, parameters, distill=distill,
                          label_smoothing=settings.label_smoothing)

    run_.supernet.train()
    summary = train_epoch(run_, loader, epoch, supernet_step, log_interval=settings.log_interval,
                          bad_images=bad_images)
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


def _evaluator(run_: SupernetRun, settings: SupernetSettings, classes: list[str], workers: int) -> SubnetEvaluator:
    """Scores sub-nets of the current weights exactly as the search will (the same batches: BN recalibration on
    ``calib_images`` training images, top-1 on the held-out split or ROOT/val); rank 0 only."""
    from nni_asenas.imagenet.data import IMAGENET_MEAN, IMAGENET_STD

    calibration, evaluation, _ = image_folder_batches(
        settings.data, holdout=settings.holdout, data_seed=settings.data_seed, calib_images=settings.calib_images,
        img_size=settings.img_size, crop_pct=settings.crop_pct, interpolation=settings.interpolation,
        batch_size=settings.batch_size, workers=workers, val_subset=settings.val_subset, classes=classes)
    prepare = normalize_uint8(IMAGENET_MEAN, IMAGENET_STD, device=run_.env.device,
                              channels_last=run_.memory_format == torch.channels_last)
    return SubnetEvaluator(run_.supernet.extract, calibration=calibration, evaluation=evaluation, prepare=prepare,
                           device=run_.env.device, amp=run_.amp, cache=False)


def run(settings: SupernetSettings) -> dict[str, Any]:
    """Train the supernet; return (on every rank) the final result reported to NNI."""
    with processes(settings.device) as env:
        output = output_folder(settings.output, "output/supernet")
        classes = check_dataset(settings.data, need_val=not settings.holdout)
        resume_from = open_output(output, settings.resume, env)
        with run_log(logger, output, env):
            return _train(settings, env, output, classes, resume_from)


def _train(settings: SupernetSettings, env: ProcessEnv, output: Path, classes: list[str],
           resume_from: Path | None) -> dict[str, Any]:
    from nni_asenas.imagenet.supernet import MobileNetSupernet, SubnetSampler

    train_set, eval_set, eval_name = build_datasets(settings, classes)
    plan = plan_run(settings, env, len(train_set))
    global_batch, steps_per_epoch, base_lr = plan.global_batch, plan.steps_per_epoch, plan.base_lr
    amp, channels_last, memory_format = plan.amp, plan.channels_last, plan.memory_format
    sampler = SubnetSampler(seed=settings.seed, max_madds=settings.max_madds or None, resolution=settings.madds_resolution,
                            width_mult=settings.width_mult, num_classes=len(classes))
    torch.manual_seed(settings.seed)
    supernet = MobileNetSupernet(width_mult=settings.width_mult, num_classes=len(classes), dropout=settings.dropout)
    supernet = supernet.to(env.device, memory_format=memory_format)  # type: ignore[call-overload]
    optimizer = build_optimizer(supernet, opt=settings.opt, lr=base_lr, momentum=settings.momentum,
                                weight_decay=settings.weight_decay)
    run_ = SupernetRun(supernet=supernet, sampler=sampler, optimizer=optimizer,
                       scaler=torch.amp.GradScaler(env.device.type, enabled=amp == torch.float16), amp=amp,
                       memory_format=memory_format, env=env, total_steps=settings.epochs * steps_per_epoch,
                       warmup_steps=round(settings.warmup_epochs * steps_per_epoch), base_lr=base_lr,
                       min_lr=settings.min_lr)
    start_epoch, last = 0, None
    if resume_from is not None:
        state = on_main(lambda: torch.load(resume_from, map_location="cpu", weights_only=True), env)
        if state.get("kind") != CHECKPOINT_KIND or state["classes"] != classes \
                or state["supernet"] != supernet.config() or state["holdout"] != settings.holdout \
                or state["data_seed"] != settings.data_seed:
            raise UsageError(f"resume {resume_from}: the checkpoint is of another supernet, class list or split")
        supernet.load_state_dict(state["model"])
        run_.optimizer.load_state_dict(state["optimizer"])
        if state["scaler"] and run_.scaler.is_enabled():
            run_.scaler.load_state_dict(state["scaler"])
        start_epoch, run_.step, last = state["epoch"], state["step"], state["last"]

    workers = settings.workers if settings.workers is not None else min(16, (os.cpu_count() or 1) // max(1, env.local_world))
    train_sampler, train_loader, _ = build_loaders(
        train_set, eval_set, batch_size=settings.batch_size, world=env.world, rank=env.rank, seed=settings.seed,
        workers=workers, prefetch_factor=settings.prefetch_factor, pin_memory=env.device.type == "cuda")
    info = {"supernet": supernet.config(), "num_classes": len(classes), "world_size": env.world,
            "global_batch": global_batch, "lr": base_lr, "device": str(env.device),
            "amp": str(amp).replace("torch.", "") if amp else "off", "channels_last": channels_last,
            "torch": str(torch.__version__), "train_images": len(train_set), "eval_images": len(eval_set),
            "eval_set": eval_name, "calib_images": settings.calib_images, "workers": workers,
            "subnets_per_step": len(step_archs(sampler, 0, sampling=settings.sampling,
                                               random_subnets=settings.random_subnets))}
    if env.main:
        import yaml

        with open(output / "args.yaml", "w", encoding="utf-8") as handle:
            yaml.safe_dump({"args": settings.to_dict(), "resolved": info}, handle, sort_keys=False)
        logger.info("supernet: width %g, %d classes, %.2f M parameters; %s sampling, %d sub-nets per step%s",
                    settings.width_mult, len(classes), sum(p.numel() for p in supernet.parameters()) / 1e6,
                    settings.sampling, info["subnets_per_step"],
                    f", random ones within {settings.max_madds / 1e6:.1f} M MAdds" if settings.max_madds else "")
        logger.info("%d training images, scoring on %s; %d process(es) on %s, global batch %d, lr %.4g, amp %s, "
                    "channels_last %s", len(train_set), eval_name, env.world, env.device.type, global_batch, base_lr,
                    info["amp"], channels_last)
        if resume_from is not None:
            logger.info("resumed from %s after epoch %d", resume_from, start_epoch)

    rows = read_summary(output / "summary.csv", start_epoch) if env.main else []
    train_bad = BadImages("training", len(train_set), settings.max_bad_images_fraction, logger)
    evaluator = _evaluator(run_, settings, classes, workers) if env.main else None
    from nni_asenas.imagenet.supernet import largest_arch, smallest_arch

    for epoch in range(start_epoch, settings.epochs):
        torch.manual_seed(epoch_seed(settings.seed, epoch, 1 + env.rank))
        train_sampler.set_epoch(epoch)
        row: dict[str, Any] = {"epoch": epoch + 1, **_train_epoch(run_, train_loader, epoch, settings, train_bad)}
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
            state = checkpoint_state(supernet, classes=classes, holdout=settings.holdout, data_seed=settings.data_seed,
                                     img_size=settings.img_size, crop_pct=settings.crop_pct, interpolation=settings.interpolation,
                                     epoch=epoch + 1, step=run_.step, optimizer=run_.optimizer.state_dict(),
                                     scaler=run_.scaler.state_dict(), last=last)
            save_atomic(state, output / "last.pth")
            logger.info("epoch %d/%d train loss %.4f, %s top-1 largest %.2f smallest %.2f, %.0f s, %.0f images/s",
                        epoch + 1, settings.epochs, row["train_loss"], eval_name, row["largest_top1"],
                        row["smallest_top1"], row["epoch_seconds"], row["train_images_per_s"])
            nni.report_intermediate_result(row["largest_top1"])
        if env.world > 1:
            dist.barrier()
    last = on_main(lambda: last, env)
    if last is None:
        raise UsageError("no epoch to run: epochs is not above the resumed checkpoint's epoch")
    result = {"default": last["largest_top1"], **last, "checkpoint": str(output / "last.pth")}
    if env.main:
        with open(output / "results.json", "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
        logger.info("supernet after %d epochs: largest top-1 %.2f, smallest %.2f; checkpoint %s", last["epoch"],
                    last["largest_top1"], last["smallest_top1"], output / "last.pth")
        nni.report_final_result(result)
    return result

"""Train and evaluate one architecture of the MobileNet-like space on ImageNet-style ``ImageFolder`` data.

:func:`run` takes a :class:`~nni_asenas.imagenet.settings.TrainSettings`; the program around it is
``python -m nni_asenas.trials.imagenet`` (an NNI trial, a stand-alone program with ``--arch FILE.json``, and a
``torchrun --nproc_per_node=N`` program: DDP with NCCL on GPUs, gloo on CPUs)::

    run(TrainSettings(data="/data/imagenet", arch="arch.json", output="runs/a1"))

Data layout: ``ROOT/train/<class>/*.jpeg`` and ``ROOT/val/<class>/*.jpeg``. Search mode is the same run with a
short schedule on a subset: ``epochs=5, train_subset=0.2, holdout=10000`` (``holdout`` evaluates on images held out
of ROOT/train, so that the search never looks at ROOT/val; ``val_subset`` shrinks whichever set is evaluated). Only
rank 0 logs, writes files and reports to NNI: top-1 (percent) after every epoch (``report_intermediate_result``)
and ``{"default": top1, "top1", "top5", "madds", "params", ...}`` at the end, for the best epoch. The output
directory gets ``args.yaml``, ``summary.csv``, ``log.txt``, ``last.pth``, ``best.pth`` and ``results.json``;
``resume`` continues from ``last.pth`` with identical state. Checkpoints are read and written by rank 0 alone, so
training on several machines needs no shared file system (each needs the dataset).

Unreadable images are skipped (logged by path, counted); more than ``max_bad_images_fraction`` of a set in one pass
stops the run with a :class:`~nni_asenas.errors.DataError`, reported to NNI as ``{"data_error": ...}`` so that a
search does not mark the architecture failed. Resuming from a damaged checkpoint points to ``best.pth``.

Randomness: the model starts from ``seed``; each epoch reseeds from (seed, epoch, rank); data augmentation of an
image is seeded by (seed, epoch, image index), so it does not depend on the number of data-loader workers and a
resumed run sees exactly the images and crops of an uninterrupted one. ``data_seed`` picks subsets and the hold-out
split, and is the same for every candidate of a search.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import nni
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from nni_asenas.errors import DataError, UsageError
from nni_asenas.imagenet import space as mobilenet
from nni_asenas.imagenet.checkpoints import damaged_hint, load_checkpoint, read_summary, save_atomic, write_summary
from nni_asenas.imagenet.data import BadImages, TrainSampler, build_datasets, build_loaders, check_dataset, epoch_seed
from nni_asenas.imagenet.engine import (
    ModelEma,
    ProcessEnv,
    TrainLoop,
    broadcast,
    build_optimizer,
    evaluate,
    on_main,
    open_output,
    output_folder,
    plan_run,
    processes,
    run_log,
    share_buffers,
    train_one_epoch,
)
from nni_asenas.imagenet.settings import TrainSettings
from nni_asenas.nni_tools.trial_api import with_parameter_id

__all__ = ["TrainSettings", "run"]

logger = logging.getLogger("nni_asenas.imagenet")


def _load_arch(settings: TrainSettings, env: ProcessEnv) -> dict[str, int]:
    params = None
    if os.environ.get("NNI_PLATFORM") and env.main:
        params = nni.get_next_parameter()
    params = broadcast(params, env)
    if settings.arch:
        try:
            with open(settings.arch, encoding="utf-8") as handle:
                loaded = json.load(handle)
        except OSError as exc:
            raise UsageError(f"arch {settings.arch}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"arch {settings.arch}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if isinstance(loaded, dict):
            loaded = loaded.get("arch", loaded.get("parameters", loaded))
        try:
            return mobilenet.validate_arch(loaded)
        except UsageError as exc:
            raise UsageError(f"arch {settings.arch}: {exc}") from None
    if not params:
        raise UsageError("no architecture: give arch (a JSON file), or run as an NNI trial")
    try:
        return mobilenet.validate_arch(params)
    except UsageError as exc:
        raise UsageError(f"NNI trial parameters: {exc}") from None


# ------------------------------------------------------------------------------------------------------- main

def run(settings: TrainSettings) -> dict[str, Any]:
    """Train and evaluate; return (on every rank) the final result reported to NNI."""
    with processes(settings.device) as env:
        output = output_folder(settings.output, "output/imagenet")
        arch = _load_arch(settings, env)
        classes = check_dataset(settings.data, need_val=not settings.holdout)
        num_classes = len(classes)
        madds = mobilenet.count_madds(arch, width_mult=settings.width_mult, num_classes=num_classes,
                                      resolution=settings.madds_resolution)
        if settings.max_madds and madds > settings.max_madds:
            raise UsageError(f"architecture needs {madds / 1e6:.1f} M MAdds at {settings.madds_resolution} px, over "
                             f"max_madds {settings.max_madds / 1e6:.1f} M (max_madds 0 lifts the limit)")
        params = mobilenet.count_params(arch, width_mult=settings.width_mult, num_classes=num_classes)
        resume_from = open_output(output, settings.resume, env)
        with run_log(logger, output, env):
            try:
                return _train(settings, env, output, arch, classes, madds, params, resume_from)
            except DataError as exc:
                raise _data_fault(settings, env, exc) from None


def _data_fault(settings: TrainSettings, env: ProcessEnv, exc: DataError) -> DataError:
    """The data, not the architecture, stopped the run: say so in the log and, on rank 0, in a final metric without
    ``default`` but with ``data_error``, which :class:`~nni_asenas.AseNasTuner` reads as "not evaluated" (the
    architecture is proposed again, not marked failed) and NNI's web UI as a trial without a result."""
    error = DataError(f"data {settings.data}: {exc}")
    if env.main:
        logger.error("data error: %s", error)
        nni.report_final_result({"data_error": str(error)})
    return error


@dataclass
class _Run:
    """What one training run works on, built once by :func:`_prepare`."""

    loop: TrainLoop
    eval_model: nn.Module
    sampler: TrainSampler
    train_loader: DataLoader
    eval_loader: DataLoader
    eval_name: str
    info: dict[str, Any]  # the resolved settings written to args.yaml
    train_bad: BadImages  # unreadable images met in the training set
    eval_bad: BadImages  # and in the evaluation set
    unreadable: int = 0  # unreadable images met by the last epoch (training and evaluation, all processes)


def _train(settings: TrainSettings, env: ProcessEnv, output: Path, arch: dict[str, int], classes: list[str], madds: int,
           params: int, resume_from: Path | None) -> dict[str, Any]:
    run_ = _prepare(settings, env, arch, classes, madds, params)
    start_epoch, best = 0, None
    if resume_from is not None:
        start_epoch, best = _restore(run_.loop, resume_from, settings, arch, classes)
    if env.main:
        _write_run_info(settings, output, run_, resume_from, start_epoch)
    best, last = _run_epochs(settings, env, output, run_, arch, classes, start_epoch, best)
    return _finish(env, output, best, last, madds, params, run_.unreadable)


def _prepare(settings: TrainSettings, env: ProcessEnv, arch: dict[str, int], classes: list[str], madds: int,
             params: int) -> _Run:
    """Data, model (DDP / compiled), optimiser, schedule and loaders of a run."""
    train_set, eval_set, eval_name = build_datasets(settings, classes)
    plan = plan_run(settings, env, len(train_set))
    global_batch, steps_per_epoch, base_lr = plan.global_batch, plan.steps_per_epoch, plan.base_lr
    amp, channels_last, memory_format = plan.amp, plan.channels_last, plan.memory_format

    torch.manual_seed(settings.seed)
    raw: nn.Module = mobilenet.MobileNetLike(arch, width_mult=settings.width_mult, num_classes=len(classes),
                                             dropout=settings.dropout)
    if settings.init_from:  # read on rank 0 (as checkpoints are), the weights shared with every rank
        raw.load_state_dict(on_main(lambda: _subnet_state(settings.init_from, arch, classes, settings.width_mult), env))
    if settings.sync_bn and env.world > 1:
        raw = nn.SyncBatchNorm.convert_sync_batchnorm(raw)
    raw = raw.to(env.device, memory_format=memory_format)  # type: ignore[call-overload]  # torch's stubs lack this overload
    model: nn.Module = raw
    if env.world > 1:
        model = nn.parallel.DistributedDataParallel(raw, device_ids=[env.device.index] if env.device.type == "cuda"
                                                    else None)
    eval_model = raw
    if settings.compile:
        model, eval_model = cast(nn.Module, torch.compile(model)), cast(nn.Module, torch.compile(raw))
    loop = TrainLoop(model=model, raw=raw, ema=ModelEma(raw, settings.ema_decay) if settings.ema_decay else None,
                     optimizer=build_optimizer(raw, opt=settings.opt, lr=base_lr, momentum=settings.momentum,
                                               weight_decay=settings.weight_decay),
                     scaler=torch.amp.GradScaler(env.device.type, enabled=amp == torch.float16),
                     criterion=nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing), amp=amp,
                     memory_format=memory_format, env=env, total_steps=settings.epochs * steps_per_epoch,
                     warmup_steps=round(settings.warmup_epochs * steps_per_epoch), base_lr=base_lr, min_lr=settings.min_lr)

    workers = settings.workers if settings.workers is not None else min(16, (os.cpu_count() or 1) // max(1, env.local_world))
    sampler, train_loader, eval_loader = build_loaders(
        train_set, eval_set, batch_size=settings.batch_size, world=env.world, rank=env.rank, seed=settings.seed,
        workers=workers, prefetch_factor=settings.prefetch_factor, pin_memory=env.device.type == "cuda")
    info = {"arch": arch, "madds": madds, "params": params, "num_classes": len(classes), "world_size": env.world,
            "global_batch": global_batch, "lr": base_lr, "device": str(env.device),
            "amp": str(amp).replace("torch.", "") if amp else "off", "channels_last": channels_last,
            "torch": str(torch.__version__), "train_images": len(train_set), "eval_images": len(eval_set),
            "eval_set": eval_name, "workers": workers, "init_from": settings.init_from}
    fraction = settings.max_bad_images_fraction
    return _Run(loop, eval_model, sampler, train_loader, eval_loader, eval_name, info,
                BadImages("training", len(train_set), fraction, logger),
                BadImages("evaluation", len(eval_set), fraction, logger))


def _subnet_state(checkpoint: str, arch: dict[str, int], classes: list[str], width_mult: float) -> dict[str, Any]:
    """``arch``'s weights and BN statistics in the supernet of ``checkpoint`` (a MobileNetLike state dict)."""
    from nni_asenas.imagenet.ofa import OfaSupernetWeights, is_ofa_checkpoint
    from nni_asenas.imagenet.supernet_train import load_supernet

    if is_ofa_checkpoint(checkpoint):  # OFA's released w1.2 supernet: 1000 ImageNet classes in sorted order
        weights = OfaSupernetWeights.from_checkpoint(checkpoint)
        if weights.num_classes != len(classes) or width_mult != mobilenet.WIDTH_MULT:
            raise UsageError(f"init_from {checkpoint}: OFA's supernet has {weights.num_classes} classes and width "
                             f"{mobilenet.WIDTH_MULT:g}, not {len(classes)} class folders and width_mult {width_mult:g}")
        return weights.subnet_state_dict(arch)
    try:
        supernet, meta = load_supernet(checkpoint)
    except UsageError as exc:
        raise UsageError(f"init_from: {exc}") from None
    if meta["classes"] != classes:
        raise UsageError(f"init_from {checkpoint}: the supernet was trained on other classes "
                         f"({len(meta['classes'])} vs {len(classes)} class folders, or other names)")
    if supernet.width_mult != width_mult:
        raise UsageError(f"init_from {checkpoint}: the supernet has width {supernet.width_mult:g}, not "
                         f"width_mult {width_mult:g}")
    return dict(supernet.extract(arch).state_dict())


def _restore(loop: TrainLoop, resume_from: Path, settings: TrainSettings, arch: dict[str, int],
             classes: list[str]) -> tuple[int, dict[str, Any] | None]:
    """Load ``resume_from`` (read by rank 0, broadcast) into the loop; the epoch it ended and the best so far."""
    state = on_main(lambda: load_checkpoint(resume_from), loop.env)
    if state["arch"] != mobilenet.canonical_arch(arch) or state["classes"] != classes \
            or state["width_mult"] != settings.width_mult:
        raise UsageError(f"resume {resume_from}: the checkpoint is of another architecture, width or class list")
    if loop.ema is not None and state["ema"] is None:
        raise UsageError(f"resume {resume_from}: the checkpoint has no EMA weights (run with ema_decay 0)")
    try:
        loop.raw.load_state_dict(state["model"])
        loop.optimizer.load_state_dict(state["optimizer"])
        if state["scaler"] and loop.scaler.is_enabled():  # a float16 run's loss scale; empty when it was off
            loop.scaler.load_state_dict(state["scaler"])
        if loop.ema is not None:
            loop.ema.module.load_state_dict(state["ema"])
        epoch, step, best = int(state["epoch"]), int(state["step"]), state["best"]
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"resume {resume_from}: the checkpoint does not fit this run ({first})"
                         f"{damaged_hint(resume_from) if loop.env.main else ''}") from None
    loop.step = step
    return epoch, best


def _write_run_info(settings: TrainSettings, output: Path, run_: _Run, resume_from: Path | None,
                    start_epoch: int) -> None:
    """``args.yaml`` (the arguments and what they resolved to) and the opening log lines; rank 0 only."""
    import yaml

    info = run_.info
    with open(output / "args.yaml", "w", encoding="utf-8") as handle:
        yaml.safe_dump({"args": settings.to_dict(), "resolved": info}, handle, sort_keys=False)
    logger.info("architecture %s", json.dumps(info["arch"]))
    if info["init_from"]:
        logger.info("weights from the supernet %s", info["init_from"])
    logger.info("%.1f M MAdds at %d px, %.2f M parameters, %d classes; %d training images, evaluation on %s",
                info["madds"] / 1e6, settings.madds_resolution, info["params"] / 1e6, info["num_classes"],
                info["train_images"], run_.eval_name)
    logger.info("%d process(es) on %s, global batch %d, lr %.4g, amp %s, channels_last %s, compile %s, workers %d",
                info["world_size"], run_.loop.env.device.type, info["global_batch"], info["lr"], info["amp"],
                info["channels_last"], settings.compile, info["workers"])
    if resume_from is not None:
        logger.info("resumed from %s after epoch %d", resume_from, start_epoch)


def _run_epochs(settings: TrainSettings, env: ProcessEnv, output: Path, run_: _Run, arch: dict[str, int],
                classes: list[str], start_epoch: int,
                best: dict[str, Any] | None) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Train and evaluate epoch by epoch, writing summary.csv, last.pth and best.pth (rank 0) after each."""
    loop = run_.loop
    rows = read_summary(output / "summary.csv", start_epoch) if env.main else []
    last: dict[str, Any] = best or {}
    for epoch in range(start_epoch, settings.epochs):
        torch.manual_seed(epoch_seed(settings.seed, epoch, 1 + env.rank))
        run_.sampler.set_epoch(epoch)
        row: dict[str, Any] = {"epoch": epoch + 1, **train_one_epoch(loop, run_.train_loader, epoch, settings.log_interval,
                                                                     run_.train_bad)}
        share_buffers(loop.raw, env)
        metrics = evaluate(run_.eval_model, run_.eval_loader, loop, run_.eval_bad)
        row.update(metrics)
        if loop.ema is not None:
            share_buffers(loop.ema.module, env)
            ema_metrics = evaluate(loop.ema.module, run_.eval_loader, loop)
            row.update(ema_top1=ema_metrics["top1"], ema_top5=ema_metrics["top5"])
            metrics = ema_metrics  # the EMA weights are the model that is kept and reported
        last = {"top1": metrics["top1"], "top5": metrics["top5"], "epoch": epoch + 1}
        improved = best is None or last["top1"] > best["top1"]
        if improved:
            best = dict(last)
        if env.main:
            rows.append(row)
            write_summary(output / "summary.csv", rows)
            state = {"epoch": epoch + 1, "step": loop.step, "model": loop.raw.state_dict(),
                     "ema": loop.ema.module.state_dict() if loop.ema is not None else None,
                     "optimizer": loop.optimizer.state_dict(), "scaler": loop.scaler.state_dict(), "best": best,
                     "arch": mobilenet.canonical_arch(arch), "classes": classes, "width_mult": settings.width_mult}
            save_atomic(state, output / "last.pth")
            if improved:
                save_atomic(state, output / "best.pth")
            logger.info("epoch %d/%d train loss %.4f, %s top-1 %.2f top-5 %.2f%s, %.0f s, %.0f images/s", epoch + 1,
                        settings.epochs, row["train_loss"], run_.eval_name, row["top1"], row["top5"],
                        f" (EMA top-1 {row['ema_top1']:.2f} top-5 {row['ema_top5']:.2f})" if loop.ema else "",
                        row["epoch_seconds"], row["train_images_per_s"])
            nni.report_intermediate_result(last["top1"])
        if env.world > 1:
            dist.barrier()
        # Checked after the epoch is saved: too many unreadable evaluation images stop the run without losing it.
        run_.unreadable = round(row["train_bad_images"] + row["eval_bad_images"])
        run_.eval_bad.check(round(row["eval_bad_images"]))
    return best, last


def _finish(env: ProcessEnv, output: Path, best: dict[str, Any] | None, last: dict[str, Any], madds: int,
            params: int, unreadable: int = 0) -> dict[str, Any]:
    """The final result (best epoch): results.json and NNI's final metric on rank 0, returned on every rank; with
    ``unreadable_images`` when the last epoch skipped some."""
    if best is None:
        raise UsageError("no epoch to run: epochs is not above the resumed checkpoint's epoch")
    result = {"default": best["top1"], "top1": best["top1"], "top5": best["top5"], "madds": madds,
              "params": params, "epoch": best["epoch"], "last_top1": last.get("top1", best["top1"])}
    if unreadable:
        result["unreadable_images"] = unreadable
    if env.main:
        with open(output / "results.json", "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
        logger.info("best top-1 %.2f top-5 %.2f (epoch %d); results in %s", best["top1"], best["top5"],
                    best["epoch"], output)
        nni.report_final_result(with_parameter_id(result))  # + the id of the parameters this trial ran
    return result

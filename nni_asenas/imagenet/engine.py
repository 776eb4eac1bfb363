"""Training machinery shared by ImageNet programs: processes and devices (DDP), the learning-rate schedule, the
weight EMA, the optimiser, one training epoch and evaluation."""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from nni_asenas.errors import DataError, UsageError
from nni_asenas.imagenet.checkpoints import resume_path
from nni_asenas.imagenet.data import MAX_BAD_IN_A_ROW, BadImages
from nni_asenas.imagenet.settings import RunSettings

__all__ = [
    "ModelEma", "ProcessEnv", "RunPlan", "TrainLoop", "Training", "all_sum", "amp_dtype", "autocast", "broadcast",
    "build_optimizer", "check_batch", "evaluate", "finish_epoch", "lr_at", "on_main", "open_output", "output_folder",
    "plan_run", "processes", "run_log", "running_loss",
    "set_lr", "setup_processes", "share_buffers", "synchronize", "to_device", "train_epoch", "train_one_epoch",
]

logger = logging.getLogger("nni_asenas.imagenet")


def lr_at(step: int, *, total_steps: int, warmup_steps: int, base_lr: float, min_lr: float = 0.0) -> float:
    """Learning rate of optimiser step ``step`` (0-based): linear warm-up to ``base_lr``, then cosine to ``min_lr``."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class ProcessEnv:
    rank: int
    world: int
    local_rank: int
    local_world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_processes(device: str) -> ProcessEnv:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("device cuda: CUDA is not available here (torch.cuda.is_available() is False); "
                         "use device cpu or run on a GPU machine")
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise UsageError(f"LOCAL_RANK {local_rank} needs a GPU but only {torch.cuda.device_count()} are visible")
        torch.cuda.set_device(local_rank)
        target = torch.device("cuda", local_rank)
    else:
        target = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        if use_cuda:
            dist.init_process_group("nccl", device_id=target)
        else:
            dist.init_process_group("gloo")
    return ProcessEnv(rank, world, local_rank, local_world, target)


@contextlib.contextmanager
def processes(device: str) -> Iterator[ProcessEnv]:
    """This process's place in the run (:func:`setup_processes`); the process group ends with the block."""
    env = setup_processes(device)
    try:
        yield env
    finally:
        if env.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def output_folder(output: str | None, default: str) -> Path:
    """Where a run writes: ``output``, else NNI's trial folder ($NNI_OUTPUT_DIR), else ``default``."""
    return Path(output or os.environ.get("NNI_OUTPUT_DIR") or default)


def open_output(output: Path, resume: str | None, env: ProcessEnv) -> Path | None:
    """Rank 0 decides where the run resumes from (:func:`~nni_asenas.imagenet.checkpoints.resume_path`) and creates
    ``output``; every rank waits for it and gets the checkpoint to resume from (or None)."""
    resume_from = on_main(lambda: resume_path(resume, output), env)
    if env.main:
        output.mkdir(parents=True, exist_ok=True)
    if env.world > 1:
        dist.barrier()
    return resume_from


@contextlib.contextmanager
def run_log(logger: logging.Logger, output: Path, env: ProcessEnv) -> Iterator[None]:
    """Log lines of the block to stdout and ``output/log.txt`` on rank 0, warnings only (to stderr) on other ranks,
    which are named in every line of a multi-process run."""
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
    try:
        yield
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()


def amp_dtype(choice: str, device: torch.device) -> torch.dtype | None:
    if choice == "off" or (choice == "auto" and device.type != "cuda"):
        return None
    if choice == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if choice == "bf16" else torch.float16


def broadcast(value: Any, env: ProcessEnv) -> Any:
    if env.world == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_main(function: Any, env: ProcessEnv) -> Any:
    """Run ``function()`` on rank 0 only (files there need not be visible on other machines) and share its result,
    or its :class:`UsageError`, with every rank."""
    outcome: tuple[Any, str | None] = (None, None)
    if env.main:
        try:
            outcome = (function(), None)
        except UsageError as exc:
            outcome = (None, str(exc))
    value, error = broadcast(outcome, env)
    if error is not None:
        raise UsageError(error)
    return value


def share_buffers(module: nn.Module, env: ProcessEnv) -> None:
    """Give every rank rank 0's BatchNorm statistics, so that all evaluate the model that rank 0 saves."""
    if env.world > 1:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def all_sum(values: list[float], env: ProcessEnv) -> list[float]:
    if env.world == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=env.device)
    dist.all_reduce(tensor)
    return tensor.tolist()


class ModelEma:
    """Exponential moving average of a model's weights and buffers; decay warms up as (1 + t) / (10 + t)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model).eval()
        self.module.requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        averaged, current = [], []
        for ema_value, value in zip(self.module.state_dict().values(), model.state_dict().values()):
            if ema_value.is_floating_point():
                averaged.append(ema_value)
                current.append(value.detach())
            else:
                ema_value.copy_(value)
        torch._foreach_lerp_(averaged, current, 1.0 - decay)


@dataclass(frozen=True)
class RunPlan:
    """Batch, schedule and numeric settings of a training run, resolved from the flags and the processes."""

    global_batch: int
    steps_per_epoch: int
    base_lr: float
    amp: torch.dtype | None
    channels_last: bool
    memory_format: torch.memory_format


def plan_run(settings: RunSettings, env: ProcessEnv, train_images: int) -> RunPlan:
    """The :class:`RunPlan` for ``train_images`` training images (settings shared by the trial and the supernet
    trainer); on CUDA it also lets cuDNN pick kernels and use TF32."""
    global_batch = settings.batch_size * env.world
    steps_per_epoch = train_images // global_batch
    if steps_per_epoch == 0:
        raise UsageError(f"{train_images} training images are fewer than one global batch of {global_batch} "
                         "(batch_size x processes): lower batch_size or raise train_subset")
    lr_base = settings.lr_base if settings.lr_base is not None else (0.016 if settings.opt == "rmsprop" else 0.1)
    base_lr = settings.lr if settings.lr is not None else lr_base * global_batch / 256
    channels_last = settings.channels_last if settings.channels_last is not None else env.device.type == "cuda"
    if env.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return RunPlan(global_batch, steps_per_epoch, base_lr, amp_dtype(settings.amp, env.device), channels_last,
                   torch.channels_last if channels_last else torch.contiguous_format)


def build_optimizer(model: nn.Module, *, opt: str, lr: float, momentum: float,
                    weight_decay: float) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum (``opt="sgd"``) or RMSProp, with weight decay on conv/linear weights only."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if opt == "rmsprop":  # TensorFlow's epsilon 1e-3 inside the square root ~ 0.0316 outside (torchvision)
        return torch.optim.RMSprop(groups, lr=lr, alpha=0.9, eps=0.0316, momentum=momentum)
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True)


@dataclass(kw_only=True)
class Training:
    """The optimisation state every training loop of the package shares: the optimiser and loss scaler, precision
    and memory format, the processes, and the learning-rate schedule (``step`` counts optimiser steps)."""

    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    amp: torch.dtype | None
    memory_format: torch.memory_format
    env: ProcessEnv
    total_steps: int
    warmup_steps: int
    base_lr: float
    min_lr: float = 0.0
    step: int = 0


@dataclass(kw_only=True)
class TrainLoop(Training):
    """The training of one network (the ImageNet trial): a classifier, its loss and its weight EMA."""

    model: nn.Module  # what the optimiser steps: DDP-wrapped and/or compiled
    raw: nn.Module  # the plain MobileNetLike whose state is saved
    ema: ModelEma | None
    criterion: nn.Module


def to_device(images: torch.Tensor, targets: torch.Tensor, loop: Training) -> tuple[torch.Tensor, torch.Tensor]:
    images = images.to(loop.env.device, non_blocking=True, memory_format=loop.memory_format)
    return images, targets.to(loop.env.device, non_blocking=True)


def autocast(loop: Training) -> contextlib.AbstractContextManager:
    if loop.amp is None:
        return contextlib.nullcontext()
    return torch.autocast(loop.env.device.type, dtype=loop.amp)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check_batch(bad: list[tuple[str, str]], targets: torch.Tensor, loader: DataLoader,
                bad_images: BadImages | None, env: ProcessEnv) -> None:
    """Count a batch's unreadable images (checked against the limit at once on one process, after the pass under
    DDP); a short batch means an item met MAX_BAD_IN_A_ROW unreadable images in a row: a :class:`DataError`."""
    if bad and bad_images is not None:
        bad_images.add(bad)
        if env.world == 1:
            bad_images.check()
    if targets.shape[0] < (loader.batch_size or 0):
        raise DataError(f"{MAX_BAD_IN_A_ROW} training images in a row cannot be read, the last "
                        f"{bad[-1][0]} ({bad[-1][1]})")


def set_lr(optimizer: torch.optim.Optimizer, step: int, *, total_steps: int, warmup_steps: int, base_lr: float,
           min_lr: float) -> float:
    """Put the schedule's learning rate at ``step`` (:func:`lr_at`) into every parameter group; returns it."""
    lr = lr_at(step, total_steps=total_steps, warmup_steps=warmup_steps, base_lr=base_lr, min_lr=min_lr)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def running_loss(loss_sum: torch.Tensor, seen: int, epoch: int, index: int) -> float:
    """The epoch's mean training loss so far; a non-finite one stops the run (training diverged)."""
    loss = loss_sum.item() / seen
    if not math.isfinite(loss):
        raise RuntimeError(f"training diverged: loss is {loss} in epoch {epoch + 1}, step {index + 1}")
    return loss


def finish_epoch(loss_sum: torch.Tensor, seen: int, seconds: float, lr: float, epoch: int,
                 bad_images: BadImages | None, env: ProcessEnv) -> dict[str, Any]:
    """An epoch's figures summed over the processes (loss, images, unreadable images), checked, as a summary row."""
    n_bad = float(len(bad_images.this_pass)) if bad_images is not None else 0.0
    total_loss, total_seen, total_bad = all_sum([loss_sum.item(), float(seen), n_bad], env)
    if bad_images is not None:
        bad_images.check(round(total_bad))  # the shards of a pass are disjoint: the sum counts each image once
    if not math.isfinite(total_loss):
        raise RuntimeError(f"training diverged: loss is {total_loss} in epoch {epoch + 1}")
    return {"lr": lr, "train_loss": total_loss / max(total_seen, 1.0), "epoch_seconds": seconds,
            "train_images_per_s": total_seen / max(seconds, 1e-9), "train_bad_images": total_bad}


def train_epoch(run: Training, loader: DataLoader, epoch: int, step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                *, log_interval: int, bad_images: BadImages | None = None) -> dict[str, float]:
    """One pass over the training loader, the loop of every trainer: per batch the schedule's learning rate, then
    ``step(images, targets)`` (one optimiser step on the device's batch, returning its detached loss), a progress line
    every ``log_interval`` steps, and the epoch's summary row (:func:`finish_epoch`). Unreadable images (replaced by
    readable ones in the batch) go to ``bad_images``, which stops the run with a :class:`DataError` when the pass
    meets too many (a single process checks as it goes; DDP processes check together at the end of the pass, so
    that none waits for another). The caller puts its model in training mode."""
    env = run.env
    loss_sum = torch.zeros((), dtype=torch.float64, device=env.device)
    seen = 0
    window_images, window_start = 0, time.perf_counter()
    epoch_start = window_start
    lr = run.base_lr
    if bad_images is not None:
        bad_images.start_pass()
    for index, (images, targets, bad) in enumerate(loader):
        check_batch(bad, targets, loader, bad_images, env)
        lr = set_lr(run.optimizer, run.step, total_steps=run.total_steps, warmup_steps=run.warmup_steps,
                    base_lr=run.base_lr, min_lr=run.min_lr)
        images, targets = to_device(images, targets, run)
        loss = step(images, targets)
        run.step += 1
        loss_sum += loss.double() * images.shape[0]
        seen += images.shape[0]
        window_images += images.shape[0]
        if (index + 1) % log_interval == 0:
            synchronize(env.device)
            loss_so_far = running_loss(loss_sum, seen, epoch, index)
            elapsed = time.perf_counter() - window_start
            if env.main:
                logger.info("epoch %d step %d/%d loss %.4f lr %.5f %.0f images/s", epoch + 1, index + 1, len(loader),
                            loss_so_far, lr, window_images * env.world / max(elapsed, 1e-9))
            window_images, window_start = 0, time.perf_counter()
    synchronize(env.device)
    return finish_epoch(loss_sum, seen, time.perf_counter() - epoch_start, lr, epoch, bad_images, env)


def train_one_epoch(loop: TrainLoop, loader: DataLoader, epoch: int, log_interval: int,
                    bad_images: BadImages | None = None) -> dict[str, float]:
    """One epoch of the classifier of ``loop`` (:func:`train_epoch` with its step: forward under autocast, scaled
    backward, optimiser step, EMA update)."""

    def classifier_step(images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        with autocast(loop):
            loss = loop.criterion(loop.model(images), targets)
        loop.optimizer.zero_grad(set_to_none=True)
        loop.scaler.scale(loss).backward()
        loop.scaler.step(loop.optimizer)
        loop.scaler.update()
        if loop.ema is not None:
            loop.ema.update(loop.raw, loop.step + 1)  # the step this one completes
        return loss.detach()

    loop.model.train()
    return train_epoch(loop, loader, epoch, classifier_step, log_interval=log_interval, bad_images=bad_images)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, loop: Training,
             bad_images: BadImages | None = None) -> dict[str, float]:
    """Top-1/top-5 (percent) and loss over the whole evaluation set (every image once, shards summed).

    Unreadable images are left out of every figure and recorded in ``bad_images``; ``eval_bad_images`` is their
    number over all processes. The caller decides when too many stop the run (after saving the epoch's training).
    """
    model.eval()
    sums = torch.zeros(5, dtype=torch.float64, device=loop.env.device)  # loss, top-1, top-5, images, unreadable
    if bad_images is not None:
        bad_images.start_pass()
    for images, targets, bad in loader:
        if bad:
            sums[4] += len(bad)
            if bad_images is not None:
                bad_images.add(bad)
        if targets.shape[0] == 0:
            continue
        images, targets = to_device(images, targets, loop)
        with autocast(loop):
            logits = model(images)
        logits = logits.float()
        k = min(5, logits.shape[1])
        hits = logits.topk(k, dim=1).indices.eq(targets[:, None])
        sums[:4] += torch.stack([nn.functional.cross_entropy(logits, targets, reduction="sum").double(),
                                 hits[:, 0].sum().double(), hits.any(dim=1).sum().double(),
                                 torch.tensor(float(targets.shape[0]), dtype=torch.float64, device=sums.device)])
    loss, top1, top5, count, unreadable = all_sum(sums.tolist(), loop.env)
    count = max(count, 1.0)
    return {"val_loss": loss / count, "top1": 100.0 * top1 / count, "top5": 100.0 * top5 / count,
            "eval_bad_images": unreadable}

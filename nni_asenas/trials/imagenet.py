"""Train and evaluate one architecture of the MobileNet-like space on ImageNet-style ``ImageFolder`` data.

Runs as a plain NNI trial (the architecture comes from ``nni.get_next_parameter()``), stand-alone with
``--arch FILE.json``, and under ``torchrun --nproc_per_node=N`` (DDP: NCCL on GPUs, gloo on CPUs)::

    python -m nni_asenas.trials.imagenet --data /data/imagenet --arch arch.json --output runs/a1
    torchrun --nproc_per_node=8 -m nni_asenas.trials.imagenet --data /data/imagenet --arch arch.json --output runs/a1

Data layout: ``ROOT/train/<class>/*.jpeg`` and ``ROOT/val/<class>/*.jpeg``. Search mode is the same program with a
short schedule on a subset: ``--epochs 5 --train-subset 0.2 --holdout 10000`` (``--holdout`` evaluates on images
held out of ROOT/train, so that the search never looks at ROOT/val; ``--val-subset`` shrinks whichever set is
evaluated). Only rank 0 logs, writes files and reports to NNI: top-1 (percent) after every epoch
(``report_intermediate_result``) and ``{"default": top1, "top1", "top5", "madds", "params", ...}`` at the end, for
the best epoch. The output directory gets ``args.yaml``, ``summary.csv``, ``log.txt``, ``last.pth``, ``best.pth``
and ``results.json``; ``--resume`` continues from ``last.pth`` with identical state. Checkpoints are read and written
by rank 0 alone, so training on several machines needs no shared file system (each needs the dataset).

Randomness: the model starts from ``--seed``; each epoch reseeds from (seed, epoch, rank); data augmentation of
an image is seeded by (seed, epoch, image index), so it does not depend on the number of data-loader workers and a
resumed run sees exactly the images and crops of an uninterrupted one. ``--data-seed`` picks subsets and the
hold-out split, and is the same for every candidate of a search.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import json
import logging
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import nni
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from ..errors import UsageError
from ..spaces import mobilenet

__all__ = ["build_parser", "lr_at", "main", "run", "stratified_subset"]

logger = logging.getLogger("nni_asenas.trials.imagenet")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
SUMMARY_FIELDS = ("epoch", "lr", "train_loss", "val_loss", "top1", "top5", "ema_top1", "ema_top5", "epoch_seconds",
                  "train_images_per_s")


# ----------------------------------------------------------------------------------------------- command line

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m nni_asenas.trials.imagenet",
                                description="Train one MobileNet-like architecture on ImageFolder data.")
    p.add_argument("--data", required=True, help="dataset root with train/<class>/ and val/<class>/ folders")
    p.add_argument("--arch", help="architecture JSON {label: option} (default: the NNI trial parameters)")
    p.add_argument("--output", help="output directory (default: $NNI_OUTPUT_DIR, else ./output/imagenet)")
    p.add_argument("--resume", nargs="?", const="auto", metavar="CHECKPOINT",
                   help="continue from CHECKPOINT, or with no value from OUTPUT/last.pth when it exists")
    g = p.add_argument_group("schedule and optimiser")
    g.add_argument("--epochs", type=int, default=300)
    g.add_argument("--batch-size", type=int, default=256, help="images per process and step")
    g.add_argument("--opt", choices=("sgd", "rmsprop"), default="sgd", help="SGD with Nesterov momentum, or RMSProp")
    g.add_argument("--lr", type=float, help="peak learning rate (default: --lr-base scaled by global batch / 256)")
    g.add_argument("--lr-base", type=float, help="peak learning rate per 256 images (default: 0.1 sgd, 0.016 rmsprop)")
    g.add_argument("--min-lr", type=float, default=0.0, help="learning rate at the end of the cosine")
    g.add_argument("--warmup-epochs", type=float, default=5.0, help="linear warm-up length (may be fractional)")
    g.add_argument("--momentum", type=float, default=0.9)
    g.add_argument("--weight-decay", type=float, default=4e-5, help="on conv/linear weights (not on BN or biases)")
    g.add_argument("--label-smoothing", type=float, default=0.1)
    g.add_argument("--ema-decay", type=float, default=0.9998, help="weight EMA decay per step; 0 disables the EMA")
    g.add_argument("--dropout", type=float, default=0.2)
    g = p.add_argument_group("data")
    g.add_argument("--img-size", type=int, default=224, help="training and evaluation crop")
    g.add_argument("--crop-pct", type=float, default=0.875, help="evaluation: resize to img-size / crop-pct, crop")
    g.add_argument("--interpolation", choices=("bilinear", "bicubic"), default="bilinear")
    g.add_argument("--randaugment", metavar="N,M", help="RandAugment with N ops of magnitude M, e.g. 2,9 (off)")
    g.add_argument("--train-subset", type=float, default=1.0, metavar="FRACTION",
                   help="train on this class-balanced fraction of the training images")
    g.add_argument("--val-subset", type=float, default=1.0, metavar="FRACTION_OR_COUNT",
                   help="evaluate on a class-balanced subset: a fraction (<= 1) or a number of images")
    g.add_argument("--holdout", type=float, default=0.0, metavar="FRACTION_OR_COUNT",
                   help="evaluate on images held out of ROOT/train instead of ROOT/val (search mode)")
    g.add_argument("--data-seed", type=int, default=0, help="seed of subsets and the hold-out split")
    g.add_argument("--workers", type=int, help="data-loader processes per GPU (default: CPUs / local processes)")
    g.add_argument("--prefetch-factor", type=int, default=4)
    g = p.add_argument_group("model and hardware")
    g.add_argument("--width-mult", type=float, default=mobilenet.WIDTH_MULT)
    g.add_argument("--max-madds", type=float, default=mobilenet.MAX_MADDS,
                   help="refuse architectures above this many MAdds at --madds-resolution (0: no limit)")
    g.add_argument("--madds-resolution", type=int, default=mobilenet.RESOLUTION)
    g.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    g.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"), default="auto",
                   help="autocast precision (auto: bf16 on GPUs that have it, else fp16; off on CPU)")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="NHWC memory format (default: on for CUDA)")
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--sync-bn", action="store_true", help="synchronise BatchNorm statistics across processes")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--log-interval", type=int, default=50, help="steps between progress lines")
    return p


def _check_args(args: argparse.Namespace) -> None:
    positive = {"--epochs": args.epochs, "--batch-size": args.batch_size, "--img-size": args.img_size,
                "--log-interval": args.log_interval, "--prefetch-factor": args.prefetch_factor}
    for flag, value in positive.items():
        if value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")
    if args.workers is not None and args.workers < 0:
        raise UsageError(f"--workers must be >= 0, got {args.workers}")
    if not 0 < args.train_subset <= 1:
        raise UsageError(f"--train-subset is a fraction in (0, 1], got {args.train_subset:g}")
    if not 0 <= args.ema_decay < 1:
        raise UsageError(f"--ema-decay must be in [0, 1), got {args.ema_decay:g}")
    if not 0 <= args.label_smoothing < 1:
        raise UsageError(f"--label-smoothing must be in [0, 1), got {args.label_smoothing:g}")
    if not 0 < args.crop_pct <= 1:
        raise UsageError(f"--crop-pct must be in (0, 1], got {args.crop_pct:g}")
    if args.warmup_epochs < 0 or args.min_lr < 0 or args.max_madds < 0:
        raise UsageError("--warmup-epochs, --min-lr and --max-madds must not be negative")
    if args.randaugment is not None:
        _parse_randaugment(args.randaugment)


def _parse_randaugment(text: str) -> tuple[int, int]:
    try:
        ops, magnitude = (int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"--randaugment expects N,M (two integers, e.g. 2,9), got {text!r}") from None
    if ops < 1 or not 0 <= magnitude <= 30:
        raise UsageError(f"--randaugment {text}: N must be >= 1 and M in [0, 30]")
    return ops, magnitude


# ------------------------------------------------------------------------------------------------ pure helpers

def lr_at(step: int, *, total_steps: int, warmup_steps: int, base_lr: float, min_lr: float = 0.0) -> float:
    """Learning rate of optimiser step ``step`` (0-based): linear warm-up to ``base_lr``, then cosine to ``min_lr``."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def stratified_subset(targets: Sequence[int], amount: float, seed: int, *, what: str = "subset") -> list[int]:
    """Sorted indices of a class-balanced random subset of ``targets``.

    ``amount`` <= 1 is a fraction of the images, > 1 a number of images; every class contributes in proportion to
    its size (each class's shuffled images are spread evenly over [0, 1) and the lowest positions are taken).
    """
    total = len(targets)
    if amount <= 0:
        raise UsageError(f"{what} must be positive, got {amount:g}")
    if amount > 1 and not float(amount).is_integer():
        raise UsageError(f"{what} above 1 is a number of images and must be whole, got {amount:g}")
    count = round(amount * total) if amount <= 1 else int(amount)
    if count > total:
        raise UsageError(f"{what} {count} exceeds the {total} images available")
    if count == total:
        return list(range(total))
    by_class: dict[int, list[int]] = {}
    for index, target in enumerate(targets):
        by_class.setdefault(int(target), []).append(index)
    rng = random.Random(seed)
    keyed: list[tuple[float, int, int]] = []
    for target in sorted(by_class):
        members = by_class[target]
        rng.shuffle(members)
        keyed.extend(((j + 0.5) / len(members), target, index) for j, index in enumerate(members))
    keyed.sort()
    return sorted(index for _, _, index in keyed[:max(1, count)])


def _epoch_seed(seed: int, epoch: int, salt: int) -> int:
    return ((seed * 1_000_003 + epoch) * 1_000_033 + salt) % (2 ** 63)


# --------------------------------------------------------------------------------------------------- dataset

def check_dataset(root: str, *, need_val: bool) -> list[str]:
    """Check the ImageFolder layout under ``root`` and return the class names (sorted, as ImageFolder does)."""
    layout = "expected ROOT/train/<class>/<image> and ROOT/val/<class>/<image>"
    base = Path(root)
    if not base.is_dir():
        raise UsageError(f"--data {root}: no such directory ({layout})")
    splits = ("train", "val") if need_val else ("train",)
    classes: dict[str, list[str]] = {}
    for split in splits:
        folder = base / split
        if not folder.is_dir():
            raise UsageError(f"--data {root}: {folder} is missing ({layout})")
        names = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
        if not names:
            raise UsageError(f"--data {root}: {folder} has no class folders ({layout})")
        for name in names:
            if not any(entry.is_file() and entry.name.lower().endswith(IMAGE_EXTENSIONS)
                       for entry in os.scandir(folder / name)):
                raise UsageError(f"--data {root}: class folder {folder / name} holds no images")
        classes[split] = names
    if need_val and classes["val"] != classes["train"]:
        only_val = sorted(set(classes["val"]) - set(classes["train"]))
        only_train = sorted(set(classes["train"]) - set(classes["val"]))
        culprit = f"{only_val[0]!r} is only in val" if only_val else f"{only_train[0]!r} is only in train"
        raise UsageError(f"--data {root}: train and val must have the same class folders; {culprit}")
    return classes["train"]


class _Images(Dataset):
    """Images ``indices`` of an ImageFolder with a transform; the augmentation of an image is seeded by
    (seed, epoch, image index) when the sampler yields ``(position, epoch)`` keys."""

    def __init__(self, folder: Any, indices: Sequence[int], transform: Any, seed: int) -> None:
        self.samples = [folder.samples[i] for i in indices]
        self.indices = list(indices)
        self.loader = folder.loader
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        position, epoch = key if isinstance(key, tuple) else (key, 0)
        path, target = self.samples[position]
        image = self.loader(path)
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(_epoch_seed(self.seed, epoch, self.indices[position]))
            return self.transform(image), target


class _TrainSampler(Sampler):
    """A seeded permutation per epoch, sharded over ranks (equal shares, the tail dropped); yields (position, epoch)."""

    def __init__(self, size: int, *, world: int, rank: int, seed: int) -> None:
        self.size, self.world, self.rank, self.seed = size, world, rank, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size // self.world

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(_epoch_seed(self.seed, self.epoch, 0))
        order = torch.randperm(self.size, generator=generator).tolist()
        for position in order[self.rank:len(self) * self.world:self.world]:
            yield position, self.epoch


def _transforms(args: argparse.Namespace) -> tuple[Any, Any]:
    from torchvision import transforms as T

    interpolation = T.InterpolationMode.BICUBIC if args.interpolation == "bicubic" else T.InterpolationMode.BILINEAR
    train = [T.RandomResizedCrop(args.img_size, interpolation=interpolation), T.RandomHorizontalFlip()]
    if args.randaugment:
        ops, magnitude = _parse_randaugment(args.randaugment)
        train.append(T.RandAugment(ops, magnitude, interpolation=interpolation))
    tail = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    resize = int(math.floor(args.img_size / args.crop_pct))
    evaluation = [T.Resize(resize, interpolation=interpolation), T.CenterCrop(args.img_size)]
    return T.Compose(train + tail), T.Compose(evaluation + tail)


def _datasets(args: argparse.Namespace, classes: list[str]) -> tuple[_Images, _Images, str]:
    from torchvision.datasets import ImageFolder

    train_transform, eval_transform = _transforms(args)
    try:
        train_folder = ImageFolder(os.path.join(args.data, "train"))
        val_folder = None if args.holdout else ImageFolder(os.path.join(args.data, "val"))
    except (FileNotFoundError, RuntimeError) as exc:
        raise UsageError(f"--data {args.data}: {exc}") from None
    if train_folder.classes != classes:
        raise UsageError(f"--data {args.data}: the class folders changed while reading them")
    train_indices = list(range(len(train_folder)))
    if args.holdout:
        eval_folder = train_folder
        eval_indices = stratified_subset(train_folder.targets, args.holdout, args.data_seed, what="--holdout")
        held = set(eval_indices)
        train_indices = [i for i in train_indices if i not in held]
        eval_name = f"{len(eval_indices)} images held out of train"
    else:
        eval_folder = val_folder
        eval_indices = list(range(len(val_folder)))
        eval_name = "val"
    if args.train_subset < 1:
        chosen = stratified_subset([train_folder.targets[i] for i in train_indices], args.train_subset,
                                   args.data_seed + 1, what="--train-subset")
        train_indices = [train_indices[i] for i in chosen]
    if args.val_subset != 1:
        chosen = stratified_subset([eval_folder.targets[i] for i in eval_indices], args.val_subset,
                                   args.data_seed + 2, what="--val-subset")
        eval_indices = [eval_indices[i] for i in chosen]
        eval_name += f" (subset of {len(eval_indices)})"
    return (_Images(train_folder, train_indices, train_transform, args.seed),
            _Images(eval_folder, eval_indices, eval_transform, args.seed), eval_name)


# ----------------------------------------------------------------------------------------- processes, devices

@dataclass(frozen=True)
class _Env:
    rank: int
    world: int
    local_rank: int
    local_world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_processes(device: str) -> _Env:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: CUDA is not available here (torch.cuda.is_available() is False); "
                         "use --device cpu or run on a GPU machine")
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
    return _Env(rank, world, local_rank, local_world, target)


def _amp_dtype(choice: str, device: torch.device) -> torch.dtype | None:
    if choice == "off" or (choice == "auto" and device.type != "cuda"):
        return None
    if choice == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if choice == "bf16" else torch.float16


def _broadcast(value: Any, env: _Env) -> Any:
    if env.world == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _on_main(function: Any, env: _Env) -> Any:
    """Run ``function()`` on rank 0 only (files there need not be visible on other machines) and share its result,
    or its :class:`UsageError`, with every rank."""
    outcome: tuple[Any, str | None] = (None, None)
    if env.main:
        try:
            outcome = (function(), None)
        except UsageError as exc:
            outcome = (None, str(exc))
    value, error = _broadcast(outcome, env)
    if error is not None:
        raise UsageError(error)
    return value


def _share_buffers(module: nn.Module, env: _Env) -> None:
    """Give every rank rank 0's BatchNorm statistics, so that all evaluate the model that rank 0 saves."""
    if env.world > 1:
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def _all_sum(values: list[float], env: _Env) -> list[float]:
    if env.world == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=env.device)
    dist.all_reduce(tensor)
    return tensor.tolist()


# -------------------------------------------------------------------------------------------------- the model

def _load_arch(args: argparse.Namespace, env: _Env) -> dict[str, int]:
    params = None
    if os.environ.get("NNI_PLATFORM") and env.main:
        params = nni.get_next_parameter()
    params = _broadcast(params, env)
    if args.arch:
        try:
            with open(args.arch, encoding="utf-8") as handle:
                loaded = json.load(handle)
        except OSError as exc:
            raise UsageError(f"--arch {args.arch}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"--arch {args.arch}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if isinstance(loaded, dict):
            loaded = loaded.get("arch", loaded.get("parameters", loaded))
        try:
            return mobilenet.validate_arch(loaded)
        except UsageError as exc:
            raise UsageError(f"--arch {args.arch}: {exc}") from None
    if not params:
        raise UsageError("no architecture: pass --arch FILE.json, or run this module as an NNI trial")
    try:
        return mobilenet.validate_arch(params)
    except UsageError as exc:
        raise UsageError(f"NNI trial parameters: {exc}") from None


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


def _optimizer(model: nn.Module, args: argparse.Namespace, lr: float) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if args.opt == "rmsprop":  # TensorFlow's epsilon 1e-3 inside the square root ~ 0.0316 outside (torchvision)
        return torch.optim.RMSprop(groups, lr=lr, alpha=0.9, eps=0.0316, momentum=args.momentum)
    return torch.optim.SGD(groups, lr=lr, momentum=args.momentum, nesterov=True)


# --------------------------------------------------------------------------------------------- train, evaluate

@dataclass
class _Loop:
    model: nn.Module  # what the optimiser steps: DDP-wrapped and/or compiled
    raw: nn.Module  # the plain MobileNetLike whose state is saved
    ema: ModelEma | None
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    amp: torch.dtype | None
    memory_format: torch.memory_format
    env: _Env
    total_steps: int
    warmup_steps: int
    base_lr: float
    min_lr: float
    step: int = 0


def _to_device(images: torch.Tensor, targets: torch.Tensor, loop: _Loop) -> tuple[torch.Tensor, torch.Tensor]:
    images = images.to(loop.env.device, non_blocking=True, memory_format=loop.memory_format)
    return images, targets.to(loop.env.device, non_blocking=True)


def _autocast(loop: _Loop) -> contextlib.AbstractContextManager:
    if loop.amp is None:
        return contextlib.nullcontext()
    return torch.autocast(loop.env.device.type, dtype=loop.amp)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_one_epoch(loop: _Loop, loader: DataLoader, epoch: int, log_interval: int) -> dict[str, float]:
    loop.model.train()
    env = loop.env
    loss_sum = torch.zeros((), dtype=torch.float64, device=env.device)
    seen = 0
    window_images, window_start = 0, time.perf_counter()
    epoch_start = window_start
    lr = loop.base_lr
    for index, (images, targets) in enumerate(loader):
        lr = lr_at(loop.step, total_steps=loop.total_steps, warmup_steps=loop.warmup_steps, base_lr=loop.base_lr,
                   min_lr=loop.min_lr)
        for group in loop.optimizer.param_groups:
            group["lr"] = lr
        images, targets = _to_device(images, targets, loop)
        with _autocast(loop):
            loss = loop.criterion(loop.model(images), targets)
        loop.optimizer.zero_grad(set_to_none=True)
        loop.scaler.scale(loss).backward()
        loop.scaler.step(loop.optimizer)
        loop.scaler.update()
        loop.step += 1
        if loop.ema is not None:
            loop.ema.update(loop.raw, loop.step)
        loss_sum += loss.detach().double() * images.shape[0]
        seen += images.shape[0]
        window_images += images.shape[0]
        if (index + 1) % log_interval == 0:
            _synchronize(env.device)
            running_loss = loss_sum.item() / seen
            if not math.isfinite(running_loss):
                raise RuntimeError(f"training diverged: loss is {running_loss} in epoch {epoch + 1}, step {index + 1}")
            elapsed = time.perf_counter() - window_start
            if env.main:
                logger.info("epoch %d step %d/%d loss %.4f lr %.5f %.0f images/s", epoch + 1, index + 1, len(loader),
                            running_loss, lr, window_images * env.world / max(elapsed, 1e-9))
            window_images, window_start = 0, time.perf_counter()
    _synchronize(env.device)
    seconds = time.perf_counter() - epoch_start
    total_loss, total_seen = _all_sum([loss_sum.item(), float(seen)], env)
    if not math.isfinite(total_loss):
        raise RuntimeError(f"training diverged: loss is {total_loss} in epoch {epoch + 1}")
    return {"lr": lr, "train_loss": total_loss / max(total_seen, 1.0), "epoch_seconds": seconds,
            "train_images_per_s": total_seen / max(seconds, 1e-9)}


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, loop: _Loop) -> dict[str, float]:
    """Top-1/top-5 (percent) and loss over the whole evaluation set (every image once, shards summed)."""
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=loop.env.device)  # loss, top-1, top-5, images
    for images, targets in loader:
        images, targets = _to_device(images, targets, loop)
        with _autocast(loop):
            logits = model(images)
        logits = logits.float()
        k = min(5, logits.shape[1])
        hits = logits.topk(k, dim=1).indices.eq(targets[:, None])
        sums += torch.stack([nn.functional.cross_entropy(logits, targets, reduction="sum").double(),
                             hits[:, 0].sum().double(), hits.any(dim=1).sum().double(),
                             torch.tensor(float(targets.shape[0]), dtype=torch.float64, device=sums.device)])
    loss, top1, top5, count = _all_sum(sums.tolist(), loop.env)
    count = max(count, 1.0)
    return {"val_loss": loss / count, "top1": 100.0 * top1 / count, "top5": 100.0 * top5 / count}


# ---------------------------------------------------------------------------------------- files and checkpoints

def _save(state: dict[str, Any], path: Path) -> None:
    partial = path.with_suffix(".tmp")
    torch.save(state, partial)
    os.replace(partial, path)


def _resume_path(args: argparse.Namespace, output: Path) -> Path | None:
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


def _write_summary(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: row.get(key, "") for key in SUMMARY_FIELDS})


def _read_summary(path: Path, up_to_epoch: int) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return [row for row in csv.DictReader(handle) if int(row["epoch"]) <= up_to_epoch]


def _logging_handlers(output: Path, env: _Env) -> list[logging.Handler]:
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


# ------------------------------------------------------------------------------------------------------- main

def run(args: argparse.Namespace) -> dict[str, Any]:
    """Train and evaluate; return (on every rank) the final result reported to NNI."""
    _check_args(args)
    env = _setup_processes(args.device)
    output = Path(args.output or os.environ.get("NNI_OUTPUT_DIR") or "output/imagenet")
    handlers: list[logging.Handler] = []
    try:
        arch = _load_arch(args, env)
        classes = check_dataset(args.data, need_val=not args.holdout)
        num_classes = len(classes)
        madds = mobilenet.count_madds(arch, width_mult=args.width_mult, num_classes=num_classes,
                                      resolution=args.madds_resolution)
        if args.max_madds and madds > args.max_madds:
            raise UsageError(f"architecture needs {madds / 1e6:.1f} M MAdds at {args.madds_resolution} px, over "
                             f"--max-madds {args.max_madds / 1e6:.1f} M (--max-madds 0 lifts the limit)")
        params = mobilenet.count_params(arch, width_mult=args.width_mult, num_classes=num_classes)
        resume_from = _on_main(lambda: _resume_path(args, output), env)
        if env.main:
            output.mkdir(parents=True, exist_ok=True)
        if env.world > 1:
            dist.barrier()
        handlers = _logging_handlers(output, env)
        return _train(args, env, output, arch, classes, madds, params, resume_from)
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
        if env.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(args: argparse.Namespace, env: _Env, output: Path, arch: dict[str, int], classes: list[str], madds: int,
           params: int, resume_from: Path | None) -> dict[str, Any]:
    train_set, eval_set, eval_name = _datasets(args, classes)
    global_batch = args.batch_size * env.world
    steps_per_epoch = len(train_set) // global_batch
    if steps_per_epoch == 0:
        raise UsageError(f"{len(train_set)} training images are fewer than one global batch of {global_batch} "
                         "(--batch-size x processes): lower --batch-size or raise --train-subset")
    base_lr = args.lr if args.lr is not None else (
        (args.lr_base if args.lr_base is not None else (0.016 if args.opt == "rmsprop" else 0.1)) * global_batch / 256)
    amp = _amp_dtype(args.amp, env.device)
    channels_last = args.channels_last if args.channels_last is not None else env.device.type == "cuda"
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    if env.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    torch.manual_seed(args.seed)
    raw: nn.Module = mobilenet.MobileNetLike(arch, width_mult=args.width_mult, num_classes=len(classes),
                                             dropout=args.dropout)
    if args.sync_bn and env.world > 1:
        raw = nn.SyncBatchNorm.convert_sync_batchnorm(raw)
    raw = raw.to(env.device, memory_format=memory_format)
    model: nn.Module = raw
    if env.world > 1:
        model = nn.parallel.DistributedDataParallel(raw, device_ids=[env.device.index] if env.device.type == "cuda"
                                                    else None)
    eval_model = raw
    if args.compile:
        model, eval_model = torch.compile(model), torch.compile(raw)
    loop = _Loop(model=model, raw=raw, ema=ModelEma(raw, args.ema_decay) if args.ema_decay else None,
                 optimizer=_optimizer(raw, args, base_lr),
                 scaler=torch.amp.GradScaler(env.device.type, enabled=amp == torch.float16),
                 criterion=nn.CrossEntropyLoss(label_smoothing=args.label_smoothing), amp=amp,
                 memory_format=memory_format, env=env, total_steps=args.epochs * steps_per_epoch,
                 warmup_steps=round(args.warmup_epochs * steps_per_epoch), base_lr=base_lr, min_lr=args.min_lr)

    start_epoch, best = 0, None
    if resume_from is not None:
        state = _on_main(lambda: torch.load(resume_from, map_location="cpu", weights_only=True), env)
        if state["arch"] != mobilenet.canonical_arch(arch) or state["classes"] != classes \
                or state["width_mult"] != args.width_mult:
            raise UsageError(f"--resume {resume_from}: the checkpoint is of another architecture, width or class list")
        raw.load_state_dict(state["model"])
        loop.optimizer.load_state_dict(state["optimizer"])
        if state["scaler"] and loop.scaler.is_enabled():  # a float16 run's loss scale; empty when it was off
            loop.scaler.load_state_dict(state["scaler"])
        if loop.ema is not None:
            if state["ema"] is None:
                raise UsageError(f"--resume {resume_from}: the checkpoint has no EMA weights (run with --ema-decay 0)")
            loop.ema.module.load_state_dict(state["ema"])
        start_epoch, loop.step, best = state["epoch"], state["step"], state["best"]

    workers = args.workers if args.workers is not None else min(16, (os.cpu_count() or 1) // max(1, env.local_world))
    loader_options: dict[str, Any] = {"num_workers": workers, "pin_memory": env.device.type == "cuda"}
    if workers:
        loader_options.update(persistent_workers=True, prefetch_factor=args.prefetch_factor)
    sampler = _TrainSampler(len(train_set), world=env.world, rank=env.rank, seed=args.seed)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler, drop_last=True,
                              **loader_options)
    eval_loader = DataLoader(torch.utils.data.Subset(eval_set, range(env.rank, len(eval_set), env.world)),
                             batch_size=args.batch_size, **loader_options)

    if env.main:
        summary = {"arch": arch, "madds": madds, "params": params, "num_classes": len(classes), "world_size": env.world,
                   "global_batch": global_batch, "lr": base_lr, "device": str(env.device),
                   "amp": str(amp).replace("torch.", "") if amp else "off", "channels_last": channels_last,
                   "torch": str(torch.__version__), "train_images": len(train_set), "eval_images": len(eval_set),
                   "eval_set": eval_name}
        import yaml

        with open(output / "args.yaml", "w", encoding="utf-8") as handle:
            yaml.safe_dump({"args": vars(args), "resolved": summary}, handle, sort_keys=False)
        logger.info("architecture %s", json.dumps(arch))
        logger.info("%.1f M MAdds at %d px, %.2f M parameters, %d classes; %d training images, evaluation on %s",
                    madds / 1e6, args.madds_resolution, params / 1e6, len(classes), len(train_set), eval_name)
        logger.info("%d process(es) on %s, global batch %d, lr %.4g, amp %s, channels_last %s, compile %s, workers %d",
                    env.world, env.device.type, global_batch, base_lr, summary["amp"], channels_last, args.compile,
                    workers)
        if resume_from is not None:
            logger.info("resumed from %s after epoch %d", resume_from, start_epoch)
    rows = _read_summary(output / "summary.csv", start_epoch) if env.main else []
    last: dict[str, float] = best or {}
    for epoch in range(start_epoch, args.epochs):
        torch.manual_seed(_epoch_seed(args.seed, epoch, 1 + env.rank))
        sampler.set_epoch(epoch)
        row: dict[str, Any] = {"epoch": epoch + 1, **train_one_epoch(loop, train_loader, epoch, args.log_interval)}
        _share_buffers(raw, env)
        metrics = evaluate(eval_model, eval_loader, loop)
        row.update(metrics)
        if loop.ema is not None:
            _share_buffers(loop.ema.module, env)
            ema_metrics = evaluate(loop.ema.module, eval_loader, loop)
            row.update(ema_top1=ema_metrics["top1"], ema_top5=ema_metrics["top5"])
            metrics = ema_metrics  # the EMA weights are the model that is kept and reported
        last = {"top1": metrics["top1"], "top5": metrics["top5"], "epoch": epoch + 1}
        improved = best is None or last["top1"] > best["top1"]
        if improved:
            best = dict(last)
        if env.main:
            rows.append(row)
            _write_summary(output / "summary.csv", rows)
            state = {"epoch": epoch + 1, "step": loop.step, "model": raw.state_dict(),
                     "ema": loop.ema.module.state_dict() if loop.ema is not None else None,
                     "optimizer": loop.optimizer.state_dict(), "scaler": loop.scaler.state_dict(), "best": best,
                     "arch": mobilenet.canonical_arch(arch), "classes": classes, "width_mult": args.width_mult}
            _save(state, output / "last.pth")
            if improved:
                _save(state, output / "best.pth")
            logger.info("epoch %d/%d train loss %.4f, %s top-1 %.2f top-5 %.2f%s, %.0f s, %.0f images/s", epoch + 1,
                        args.epochs, row["train_loss"], eval_name, row["top1"], row["top5"],
                        f" (EMA top-1 {row['ema_top1']:.2f} top-5 {row['ema_top5']:.2f})" if loop.ema else "",
                        row["epoch_seconds"], row["train_images_per_s"])
            nni.report_intermediate_result(last["top1"])
        if env.world > 1:
            dist.barrier()
    if best is None:
        raise UsageError("no epoch to run: --epochs is not above the resumed checkpoint's epoch")
    result = {"default": best["top1"], "top1": best["top1"], "top5": best["top5"], "madds": madds,
              "params": params, "epoch": best["epoch"], "last_top1": last.get("top1", best["top1"])}
    if env.main:
        with open(output / "results.json", "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
        logger.info("best top-1 %.2f top-5 %.2f (epoch %d); results in %s", best["top1"], best["top5"],
                    best["epoch"], output)
        nni.report_final_result(result)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except UsageError as exc:
        print(f"nni_asenas.trials.imagenet: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nni_asenas.trials.imagenet: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

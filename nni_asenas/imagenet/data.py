"""ImageNet-style data: the ImageFolder layout check, class-balanced subsets, seeded augmentation and sampling.

Data augmentation of an image is seeded by (seed, epoch, image index), so it does not depend on the number of
data-loader workers and a resumed run sees exactly the images and crops of an uninterrupted one.
"""

from __future__ import annotations

import argparse
import math
import os
import random
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from nni_asenas.errors import UsageError

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "IMAGE_EXTENSIONS", "ImageSubset", "TrainSampler", "build_datasets",
    "build_loaders", "build_transforms", "check_dataset", "epoch_seed", "parse_randaugment", "stratified_subset",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def parse_randaugment(text: str) -> tuple[int, int]:
    try:
        ops, magnitude = (int(part) for part in text.split(","))
    except ValueError:
        raise UsageError(f"--randaugment expects N,M (two integers, e.g. 2,9), got {text!r}") from None
    if ops < 1 or not 0 <= magnitude <= 30:
        raise UsageError(f"--randaugment {text}: N must be >= 1 and M in [0, 30]")
    return ops, magnitude


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


def epoch_seed(seed: int, epoch: int, salt: int) -> int:
    return ((seed * 1_000_003 + epoch) * 1_000_033 + salt) % (2 ** 63)


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


class ImageSubset(Dataset):
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
            torch.default_generator.manual_seed(epoch_seed(self.seed, epoch, self.indices[position]))
            return self.transform(image), target


class TrainSampler(Sampler):
    """A seeded permutation per epoch, sharded over ranks (equal shares, the tail dropped); yields (position, epoch)."""

    def __init__(self, size: int, *, world: int, rank: int, seed: int) -> None:
        self.size, self.world, self.rank, self.seed = size, world, rank, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size // self.world

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch, 0))
        order = torch.randperm(self.size, generator=generator).tolist()
        for position in order[self.rank:len(self) * self.world:self.world]:
            yield position, self.epoch


def build_transforms(args: argparse.Namespace) -> tuple[Any, Any]:
    from torchvision import transforms as T

    interpolation = T.InterpolationMode.BICUBIC if args.interpolation == "bicubic" else T.InterpolationMode.BILINEAR
    train = [T.RandomResizedCrop(args.img_size, interpolation=interpolation), T.RandomHorizontalFlip()]
    if args.randaugment:
        ops, magnitude = parse_randaugment(args.randaugment)
        train.append(T.RandAugment(ops, magnitude, interpolation=interpolation))
    tail = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    resize = int(math.floor(args.img_size / args.crop_pct))
    evaluation = [T.Resize(resize, interpolation=interpolation), T.CenterCrop(args.img_size)]
    return T.Compose(train + tail), T.Compose(evaluation + tail)


def build_datasets(args: argparse.Namespace, classes: list[str]) -> tuple[ImageSubset, ImageSubset, str]:
    from torchvision.datasets import ImageFolder

    train_transform, eval_transform = build_transforms(args)
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
        assert val_folder is not None
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
    return (ImageSubset(train_folder, train_indices, train_transform, args.seed),
            ImageSubset(eval_folder, eval_indices, eval_transform, args.seed), eval_name)


def build_loaders(train_set: ImageSubset, eval_set: ImageSubset, *, batch_size: int, world: int, rank: int,
                  seed: int, workers: int, prefetch_factor: int, pin_memory: bool) -> tuple[TrainSampler, DataLoader, DataLoader]:
    """The seeded training sampler and loader of this rank, and its shard of the evaluation set."""
    options: dict[str, Any] = {"num_workers": workers, "pin_memory": pin_memory}
    if workers:
        options.update(persistent_workers=True, prefetch_factor=prefetch_factor)
    sampler = TrainSampler(len(train_set), world=world, rank=rank, seed=seed)
    train_loader = DataLoader(train_set, batch_size=batch_size, sampler=sampler, drop_last=True, **options)
    eval_loader = DataLoader(torch.utils.data.Subset(eval_set, range(rank, len(eval_set), world)),
                             batch_size=batch_size, **options)
    return sampler, train_loader, eval_loader

"""ImageNet-style data: the ImageFolder layout check, class-balanced subsets, seeded augmentation and sampling.

Data augmentation of an image is seeded by (seed, epoch, image index), so it does not depend on the number of
data-loader workers and a resumed run sees exactly the images and crops of an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import os
import random
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from nni_asenas.errors import DataError, UsageError
from nni_asenas.imagenet.settings import MAX_BAD_IMAGES_FRACTION, RunSettings, parse_randaugment

__all__ = [
    "IMAGENET_MEAN", "IMAGENET_STD", "IMAGE_EXTENSIONS", "MAX_BAD_IMAGES_FRACTION", "BadImage", "BadImages",
    "ImageSubset", "TrainSampler", "build_datasets", "build_loaders", "build_transforms", "check_dataset",
    "collate_readable", "epoch_seed", "parse_randaugment", "stratified_subset",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


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
        raise UsageError(f"data {root}: no such directory ({layout})")
    splits = ("train", "val") if need_val else ("train",)
    classes: dict[str, list[str]] = {}
    for split in splits:
        folder = base / split
        if not folder.is_dir():
            raise UsageError(f"data {root}: {folder} is missing ({layout})")
        names = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
        if not names:
            raise UsageError(f"data {root}: {folder} has no class folders ({layout})")
        for name in names:
            if not any(entry.is_file() and entry.name.lower().endswith(IMAGE_EXTENSIONS)
                       for entry in os.scandir(folder / name)):
                raise UsageError(f"data {root}: class folder {folder / name} holds no images")
        classes[split] = names
    if need_val and classes["val"] != classes["train"]:
        only_val = sorted(set(classes["val"]) - set(classes["train"]))
        only_train = sorted(set(classes["train"]) - set(classes["val"]))
        culprit = f"{only_val[0]!r} is only in val" if only_val else f"{only_train[0]!r} is only in train"
        raise UsageError(f"data {root}: train and val must have the same class folders; {culprit}")
    return classes["train"]


#: A training image that cannot be read is replaced by the next readable one of the set; this many unreadable ones
#: in a row stop the run (the data is broken, not an image here and there). Raised in the main process, which a
#: worker's exception would reach as a multi-line traceback.
MAX_BAD_IN_A_ROW = 64

#: An unreadable image met by a data-loader worker: (path, one-line reason).
BadImage = tuple[str, str]


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ImageSubset(Dataset):
    """Images ``indices`` of an ImageFolder with a transform; the augmentation of an image is seeded by
    (seed, epoch, image index) when the sampler yields ``(position, epoch)`` keys.

    An item is ``(image, target, bad)``: ``bad`` lists the unreadable images (:data:`BadImage`) met while reading
    it. An unreadable image is replaced by the next readable one of the set when ``substitute`` (training: batches
    keep their size, every process of a DDP run steps together) and is ``None`` otherwise (evaluation:
    :func:`collate_readable` leaves it out, so it counts in no metric).
    """

    def __init__(self, folder: Any, indices: Sequence[int], transform: Any, seed: int, *,
                 substitute: bool = False) -> None:
        self.samples = [folder.samples[i] for i in indices]
        self.indices = list(indices)
        self.loader = folder.loader
        self.transform = transform
        self.seed = seed
        self.substitute = substitute

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor | None, int, list[BadImage]]:
        position, epoch = key if isinstance(key, tuple) else (key, 0)
        bad: list[BadImage] = []
        for _ in range(min(len(self.samples), MAX_BAD_IN_A_ROW)):
            path, target = self.samples[position]
            try:
                image = self.loader(path)  # opens and decodes the whole file: truncation shows here
            except Exception as exc:  # noqa: BLE001  (PIL raises OSError, ValueError, SyntaxError, DecompressionBombError...)
                bad.append((path, _reason(exc)))
                if not self.substitute:
                    return None, target, bad
                position = (position + 1) % len(self.samples)
                continue
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(epoch_seed(self.seed, epoch, self.indices[position]))
                return self.transform(image), target, bad
        return None, target, bad  # MAX_BAD_IN_A_ROW unreadable in a row: the training loop stops (DataError)


def collate_readable(batch: Sequence[tuple[torch.Tensor | None, int, list[BadImage]]]
                     ) -> tuple[torch.Tensor, torch.Tensor, list[BadImage]]:
    """A batch of the readable items and the list of unreadable images met while reading it (possibly an empty
    batch, when none of an evaluation batch's images could be read)."""
    from torch.utils.data import default_collate

    bad = [item for _, _, met in batch for item in met]
    kept = [(image, target) for image, target, _ in batch if image is not None]
    if not kept:
        return torch.empty(0), torch.empty(0, dtype=torch.long), bad
    images, targets = default_collate(kept)
    return images, targets, bad


class BadImages:
    """The unreadable images of one set (``what``: "training" or "evaluation"): each is logged once by path, the
    ones met in the current pass are counted, and :meth:`check` stops the run with a :class:`DataError` when a pass
    meets more than ``max_fraction`` of the set's ``total`` images."""

    def __init__(self, what: str, total: int, max_fraction: float, logger: logging.Logger) -> None:
        self.what = what
        self.total = total
        self.max_fraction = max_fraction
        self.allowed = math.floor(max_fraction * total)
        self.logger = logger
        self.known: dict[str, str] = {}  # path -> reason, every unreadable image met so far
        self.this_pass: set[str] = set()

    def start_pass(self) -> None:
        self.this_pass = set()

    def add(self, bad: Sequence[BadImage]) -> None:
        for path, reason in bad:
            if path not in self.known:
                self.known[path] = reason
                self.logger.warning("skipped unreadable %s image %s (%s)", self.what, path, reason)
            self.this_pass.add(path)

    def check(self, count: int | None = None) -> None:
        """Raise :class:`DataError` if ``count`` (default: this process's count of this pass) is over the limit."""
        count = len(self.this_pass) if count is None else count
        if count > self.allowed:
            example = min(self.this_pass or self.known, default=None)
            detail = f"; e.g. {example} ({self.known[example]})" if example is not None else ""
            raise DataError(f"{count} of the {self.total} {self.what} images cannot be read, more than "
                            f"max_bad_images_fraction {self.max_fraction:g} allows ({self.allowed}){detail}")


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


def build_transforms(settings: RunSettings) -> tuple[Any, Any]:
    """The training (random crop, flip, optional RandAugment) and evaluation (resize, centre crop) transforms."""
    from torchvision import transforms as T

    interpolation = T.InterpolationMode.BICUBIC if settings.interpolation == "bicubic" else T.InterpolationMode.BILINEAR
    train = [T.RandomResizedCrop(settings.img_size, interpolation=interpolation), T.RandomHorizontalFlip()]
    if settings.randaugment:
        ops, magnitude = parse_randaugment(settings.randaugment)
        train.append(T.RandAugment(ops, magnitude, interpolation=interpolation))
    tail = [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    resize = int(math.floor(settings.img_size / settings.crop_pct))
    evaluation = [T.Resize(resize, interpolation=interpolation), T.CenterCrop(settings.img_size)]
    return T.Compose(train + tail), T.Compose(evaluation + tail)


def build_datasets(settings: RunSettings, classes: list[str]) -> tuple[ImageSubset, ImageSubset, str]:
    """The training and evaluation sets of a run (subsets and the hold-out split as ``settings`` say) and the
    evaluation set's name for the log."""
    from torchvision.datasets import ImageFolder

    train_transform, eval_transform = build_transforms(settings)
    root = settings.data
    try:
        train_folder = ImageFolder(os.path.join(root, "train"))
        val_folder = None if settings.holdout else ImageFolder(os.path.join(root, "val"))
    except (FileNotFoundError, RuntimeError) as exc:
        raise UsageError(f"data {root}: {exc}") from None
    if train_folder.classes != classes:
        raise UsageError(f"data {root}: the class folders changed while reading them")
    train_indices = list(range(len(train_folder)))
    if settings.holdout:
        eval_folder = train_folder
        eval_indices = stratified_subset(train_folder.targets, settings.holdout, settings.data_seed, what="holdout")
        held = set(eval_indices)
        train_indices = [i for i in train_indices if i not in held]
        eval_name = f"{len(eval_indices)} images held out of train"
    else:
        assert val_folder is not None
        eval_folder = val_folder
        eval_indices = list(range(len(val_folder)))
        eval_name = "val"
    if settings.train_subset < 1:
        chosen = stratified_subset([train_folder.targets[i] for i in train_indices], settings.train_subset,
                                   settings.data_seed + 1, what="train_subset")
        train_indices = [train_indices[i] for i in chosen]
    if settings.val_subset != 1:
        chosen = stratified_subset([eval_folder.targets[i] for i in eval_indices], settings.val_subset,
                                   settings.data_seed + 2, what="val_subset")
        eval_indices = [eval_indices[i] for i in chosen]
        eval_name += f" (subset of {len(eval_indices)})"
    return (ImageSubset(train_folder, train_indices, train_transform, settings.seed, substitute=True),
            ImageSubset(eval_folder, eval_indices, eval_transform, settings.seed), eval_name)


def build_loaders(train_set: ImageSubset, eval_set: ImageSubset, *, batch_size: int, world: int, rank: int,
                  seed: int, workers: int, prefetch_factor: int, pin_memory: bool) -> tuple[TrainSampler, DataLoader, DataLoader]:
    """The seeded training sampler and loader of this rank, and its shard of the evaluation set."""
    options: dict[str, Any] = {"num_workers": workers, "pin_memory": pin_memory, "collate_fn": collate_readable}
    if workers:
        options.update(persistent_workers=True, prefetch_factor=prefetch_factor)
    sampler = TrainSampler(len(train_set), world=world, rank=rank, seed=seed)
    train_loader = DataLoader(train_set, batch_size=batch_size, sampler=sampler, drop_last=True, **options)
    eval_loader = DataLoader(torch.utils.data.Subset(eval_set, range(rank, len(eval_set), world)),
                             batch_size=batch_size, **options)
    return sampler, train_loader, eval_loader

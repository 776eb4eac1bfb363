"""Score a sub-net of a trained supernet in seconds: build it, recalibrate BatchNorm, measure held-out top-1.

:class:`SubnetEvaluator` is generic over how a sub-net is built: it takes an ``extract`` callable
(architecture -> ``torch.nn.Module``), for example :meth:`MobileNetSupernet.extract
<nni_asenas.imagenet.supernet.MobileNetSupernet.extract>` or a loader of OFA checkpoints. A query

1. builds the network with ``extract(arch)`` (weights inherited from the supernet),
2. recalibrates its BatchNorm statistics: every BN's running statistics are reset and re-estimated as the plain
   average over a fixed set of training batches (``momentum=None``), in train mode without gradients, as OFA does
   before scoring a sub-net (a shared supernet's running statistics belong to no single sub-net),
3. evaluates top-1 (percent) on the held-out batches in eval mode.

The batches are fixed once (``calibration``, ``evaluation``), so a query is a pure function of the architecture
and the supernet weights; scores are cached by architecture (``key``). :func:`image_folder_batches` builds both
batch lists from an ImageFolder exactly as the supernet trainer split it (``--holdout``, ``--data-seed``), as
uint8 tensors normalised on the device (4x less memory than float32 for the cached images).
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, Callable, Hashable, Iterable, Mapping, Sequence

import torch
from torch import nn

from nni_asenas.errors import DataError, UsageError

__all__ = ["SubnetEvaluator", "image_folder_batches", "normalize_uint8", "recalibrate_batchnorm", "top1_percent"]

Batch = tuple[torch.Tensor, torch.Tensor]


def _default_key(arch: Mapping[str, Any]) -> Hashable:
    return json.dumps(sorted((str(label), value) for label, value in arch.items()))


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor], *,
                          prepare: Callable[[torch.Tensor], torch.Tensor] = lambda x: x) -> nn.Module:
    """Re-estimate every BatchNorm's running mean and variance as the average over ``batches`` (train mode, no
    gradients); the model is left in eval mode with its other state untouched."""
    norms = [module for module in model.modules() if isinstance(module, nn.modules.batchnorm._BatchNorm)]
    momenta = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the calibration batches
    model.train()
    try:
        for images in batches:
            model(prepare(images))
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        model.eval()
    return model


@torch.no_grad()
def top1_percent(model: nn.Module, batches: Iterable[Batch], *,
                 prepare: Callable[[torch.Tensor], torch.Tensor] = lambda x: x) -> float:
    """Top-1 accuracy (percent) of ``model`` in eval mode over ``batches`` of (images, targets)."""
    model.eval()
    correct = total = 0
    for images, targets in batches:
        logits = model(prepare(images))
        correct += int((logits.float().argmax(dim=1) == targets.to(logits.device)).sum())
        total += int(targets.numel())
    if total == 0:
        raise UsageError("the evaluation set is empty")
    return 100.0 * correct / total


def normalize_uint8(mean: Sequence[float], std: Sequence[float], *, device: torch.device | str = "cpu",
                    channels_last: bool = False) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 NCHW images -> normalised float32 images on ``device`` (the evaluator's ``prepare``)."""
    target = torch.device(device)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=target).view(1, -1, 1, 1) * 255.0
    std_t = torch.tensor(std, dtype=torch.float32, device=target).view(1, -1, 1, 1) * 255.0
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def prepare(images: torch.Tensor) -> torch.Tensor:
        images = images.to(target, non_blocking=True).float()
        return ((images - mean_t) / std_t).contiguous(memory_format=memory_format)

    return prepare


class SubnetEvaluator:
    """``evaluator(arch) -> top-1 percent`` of ``extract(arch)`` after BN recalibration, cached by architecture.

    ``calibration`` is a sequence of image batches (or (images, targets) pairs, targets ignored), ``evaluation`` a
    sequence of (images, targets); ``prepare`` turns a stored batch into the model's input (device, dtype,
    normalisation, memory format). ``amp`` (a dtype) runs the forward passes under autocast on ``device``.
    ``key`` maps an architecture to its cache key (default: the sorted items, so equal mappings share a score;
    pass a canonicaliser when distinct mappings build the same network). Only successful queries are cached.
    """

    def __init__(self, extract: Callable[[Mapping[str, Any]], nn.Module], *,
                 calibration: Sequence[torch.Tensor | Batch], evaluation: Sequence[Batch],
                 prepare: Callable[[torch.Tensor], torch.Tensor] | None = None, device: torch.device | str = "cpu",
                 amp: torch.dtype | None = None, key: Callable[[Mapping[str, Any]], Hashable] | None = None,
                 cache: bool = True) -> None:
        if not callable(extract):
            raise UsageError(f"extract must be callable (architecture -> torch.nn.Module), got {type(extract).__name__}")
        if len(calibration) == 0:
            raise UsageError("the calibration set is empty: BatchNorm statistics need at least one batch")
        if len(evaluation) == 0:
            raise UsageError("the evaluation set is empty")
        self.extract = extract
        self.calibration = [batch[0] if isinstance(batch, (tuple, list)) else batch for batch in calibration]
        self.evaluation = list(evaluation)
        self.device = torch.device(device)
        self.prepare = prepare if prepare is not None else (lambda x: x.to(self.device))
        self.amp = amp
        self.key = key or _default_key
        self.cache_enabled = cache
        self._cache: dict[Hashable, float] = {}
        self.n_queries = 0  # calls, cached or not
        self.n_evaluated = 0  # networks actually built and scored
        self.seconds = 0.0  # spent building and scoring

    @property
    def calibration_images(self) -> int:
        return sum(int(batch.shape[0]) for batch in self.calibration)

    @property
    def evaluation_images(self) -> int:
        return sum(int(targets.numel()) for _, targets in self.evaluation)

    def _autocast(self) -> Any:
        if self.amp is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.amp)

    def score(self, model: nn.Module) -> float:
        """Recalibrate ``model``'s BatchNorm on the calibration batches and return its held-out top-1."""
        model.to(self.device)
        with self._autocast():
            recalibrate_batchnorm(model, self.calibration, prepare=self.prepare)
            return top1_percent(model, self.evaluation, prepare=self.prepare)

    def __call__(self, arch: Mapping[str, Any]) -> float:
        self.n_queries += 1
        key = self.key(arch)
        if self.cache_enabled and key in self._cache:
            return self._cache[key]
        start = time.perf_counter()
        model = self.extract(arch)
        if not isinstance(model, nn.Module):
            raise TypeError(f"extract returned {type(model).__name__}, not a torch.nn.Module")
        value = self.score(model)
        if not math.isfinite(value):
            raise RuntimeError(f"the score of {arch} is not finite: {value}")
        self.seconds += time.perf_counter() - start
        self.n_evaluated += 1
        if self.cache_enabled:
            self._cache[key] = value
        return value

    def seconds_per_query(self) -> float:
        """Mean wall-clock seconds of the queries that built and scored a network."""
        return self.seconds / self.n_evaluated if self.n_evaluated else math.nan

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(calibration_images={self.calibration_images}, "
                f"evaluation_images={self.evaluation_images}, device={self.device}, amp={self.amp}, "
                f"cached={len(self._cache)})")


def _read_image(path: str) -> Any:
    """An RGB image, or a one-line :class:`DataError` naming the file (the evaluator's images are fixed: it cannot
    skip one and stay comparable across queries)."""
    from torchvision.datasets.folder import default_loader

    try:
        return default_loader(path)
    except Exception as exc:  # noqa: BLE001  (PIL raises OSError, ValueError, SyntaxError, ...)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path} cannot be read ({reason})") from None


def image_folder_batches(root: str, *, holdout: float, data_seed: int = 0, calib_images: int = 2000,
                         img_size: int = 224, crop_pct: float = 0.875, interpolation: str = "bilinear",
                         batch_size: int = 200, workers: int = 0, val_subset: float = 1.0,
                         classes: Sequence[str] | None = None) -> tuple[list[torch.Tensor], list[Batch], list[str]]:
    """The evaluator's fixed batches: calibration images from ``ROOT/train`` and the images to score on.

    With ``holdout`` the scored images are exactly those the supernet trainer kept out of training with the same
    ``holdout`` and ``data_seed``; without, ``ROOT/val`` (``val_subset``: a class-balanced part of either, seed
    ``data_seed + 2`` as in the trainer). The ``calib_images`` calibration images are a class-balanced subset of the
    other training images (seed ``data_seed + 3``). All get the evaluation transform (resize, centre crop) and
    come as uint8 batches (see :func:`normalize_uint8`), with the class names.
    """
    from torchvision import transforms as T
    from torchvision.datasets import ImageFolder

    from nni_asenas.imagenet.data import check_dataset, stratified_subset

    found = check_dataset(root, need_val=not holdout)
    if classes is not None and list(classes) != found:
        raise UsageError(f"data {root}: its classes differ from the supernet's ({len(found)} vs {len(classes)} "
                         "class folders, or other names)")
    if calib_images < 1 or batch_size < 1:
        raise UsageError(f"calibration images and batch size must be >= 1, got {calib_images} and {batch_size}")
    mode = T.InterpolationMode.BICUBIC if interpolation == "bicubic" else T.InterpolationMode.BILINEAR
    transform = T.Compose([T.Resize(int(math.floor(img_size / crop_pct)), interpolation=mode),
                           T.CenterCrop(img_size), T.PILToTensor()])
    folder = ImageFolder(f"{root}/train", transform=transform, loader=_read_image)
    held = stratified_subset(folder.targets, holdout, data_seed, what="holdout") if holdout else []
    held_set = set(held)
    rest = [index for index in range(len(folder)) if index not in held_set]
    chosen = stratified_subset([folder.targets[i] for i in rest], min(calib_images, len(rest)), data_seed + 3,
                               what="calibration images")
    calibration = [rest[i] for i in chosen]
    scored_folder = folder if holdout else ImageFolder(f"{root}/val", transform=transform, loader=_read_image)
    scored = held if holdout else list(range(len(scored_folder)))
    if val_subset != 1:
        picked = stratified_subset([scored_folder.targets[i] for i in scored], val_subset, data_seed + 2,
                                   what="val_subset")
        scored = [scored[i] for i in picked]

    def batches(dataset: Any, indices: list[int]) -> list[Batch]:
        loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, indices), batch_size=batch_size,
                                             num_workers=workers)
        return [(images.contiguous(), targets) for images, targets in loader]

    calibration_batches = [images for images, _ in batches(folder, calibration)]
    if len(calibration_batches) > 1 and calibration_batches[-1].shape[0] == 1:  # BN cannot train on one image
        calibration_batches[-2:] = [torch.cat(calibration_batches[-2:])]
    return calibration_batches, batches(scored_folder, scored), list(found)

"""ASE-NAS over the MobileNet-like space, scoring each proposal on a trained supernet in seconds.

:func:`run_supernet_search` is the MobileNet-like route (:func:`~nni_asenas.imagenet.space_search.run_mobilenet_search`)
with a sub-net scorer (normally a :class:`~nni_asenas.imagenet.evaluator.SubnetEvaluator`) under a MAdds limit; it
returns the ``result.json`` document of ``nni-asenas search --space mobilenet`` (``evaluator.kind`` ``supernet``).
:func:`build_search_evaluator` makes the scorer from a supernet checkpoint and the dataset it was trained on;
:func:`as_nni_evaluator` wraps it as an NNI evaluator, so that :class:`~nni_asenas.adapters.strategy.AseNas` (or any
NNI strategy) searches :class:`~nni_asenas.imagenet.nni_space.MobileNetLikeSpace` with supernet scores.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from nni_asenas.config import AseNasConfig
from nni_asenas.errors import UsageError
from nni_asenas.imagenet import space as mobilenet
from nni_asenas.imagenet.space_search import run_mobilenet_search

__all__ = ["as_nni_evaluator", "build_search_evaluator", "run_supernet_search"]


def run_supernet_search(
    evaluate: Callable[[Mapping[str, Any]], float],
    *,
    max_queries: int,
    seed: int = 0,
    max_madds: float | None = mobilenet.MAX_MADDS,
    madds_resolution: int = mobilenet.RESOLUTION,
    width_mult: float = mobilenet.WIDTH_MULT,
    num_classes: int = mobilenet.NUM_CLASSES,
    initial_architectures: Iterable[Any] = (),
    config: AseNasConfig | str | None = None,
    on_query: Callable[[dict[str, Any]], None] | None = None,
    evaluator: Mapping[str, Any] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Search ``max_queries`` architectures; ``evaluate(arch)`` returns top-1 in percent (higher is better).

    A query whose evaluation raises is recorded as failed (score ``None``) and the search goes on. ``on_query`` gets
    each trajectory entry. ``evaluator`` adds facts about the scorer (supernet path, images, ...) to the result's
    ``evaluator`` object.
    """
    return run_mobilenet_search(
        evaluate, max_queries=max_queries, evaluator={"kind": "supernet", **dict(evaluator or {})}, seed=seed,
        max_madds=max_madds, madds_resolution=madds_resolution, width_mult=width_mult, num_classes=num_classes,
        initial_architectures=initial_architectures, config=config, on_query=on_query, **settings)


def build_search_evaluator(checkpoint: str, data: str, *, calib_images: int = 2000, batch_size: int = 200,
                           workers: int = 0, device: str = "auto", amp: str = "auto",
                           channels_last: bool | None = None, holdout: float | None = None) -> tuple[Any, Any, dict]:
    """The supernet of ``checkpoint`` and a :class:`SubnetEvaluator` of its sub-nets on ``data``.

    The evaluator scores on the images the trainer held out (the checkpoint's ``--holdout`` and ``--data-seed``,
    at its image size), recalibrating BatchNorm on ``calib_images`` other training images. Returns
    (supernet, evaluator, checkpoint metadata).
    """
    import torch

    from nni_asenas.imagenet.data import IMAGENET_MEAN, IMAGENET_STD
    from nni_asenas.imagenet.engine import amp_dtype
    from nni_asenas.imagenet.evaluator import SubnetEvaluator, image_folder_batches, normalize_uint8
    from nni_asenas.imagenet.supernet_train import load_supernet

    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("device cuda: CUDA is not available here; use device cpu")
    target = torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    supernet, meta = load_supernet(checkpoint, map_location="cpu")
    held = meta["holdout"] if holdout is None else holdout
    if not held:
        raise UsageError(f"checkpoint {checkpoint} was trained without a held-out split: give holdout N to score "
                         "sub-nets on images of ROOT/train (never on ROOT/val, which must stay unseen by the search)")
    calibration, evaluation, _ = image_folder_batches(
        data, holdout=held, data_seed=meta["data_seed"], calib_images=calib_images, img_size=meta["img_size"],
        crop_pct=meta["crop_pct"], interpolation=meta["interpolation"], batch_size=batch_size, workers=workers,
        classes=meta["classes"])
    last = channels_last if channels_last is not None else target.type == "cuda"
    supernet.to(target, memory_format=torch.channels_last if last else torch.contiguous_format)
    supernet.eval()
    evaluator = SubnetEvaluator(supernet.extract, calibration=calibration, evaluation=evaluation,
                                prepare=normalize_uint8(IMAGENET_MEAN, IMAGENET_STD, device=target, channels_last=last),
                                device=target, amp=amp_dtype(amp, target), key=mobilenet.canonical_key)
    return supernet, evaluator, meta


def _report_subnet_score(model: Any, evaluate: Callable[[Mapping[str, Any]], float]) -> float:
    """An NNI trial of a frozen :class:`MobileNetLikeSpace`: score its architecture, report it as the final result."""
    import nni

    arch = getattr(getattr(model, "net", model), "arch", None)
    if not isinstance(arch, Mapping):
        raise TypeError(f"cannot read an architecture from {type(model).__name__}: expected a frozen "
                        "MobileNetLikeSpace (or a MobileNetLike network)")
    value = float(evaluate(arch))
    nni.report_final_result(value)
    return value


def as_nni_evaluator(evaluate: Callable[[Mapping[str, Any]], float]) -> Any:
    """An NNI ``FunctionalEvaluator`` that scores each frozen :class:`MobileNetLikeSpace` with ``evaluate`` (top-1
    percent, reported as the trial's final result). It runs in the strategy's process: use NNI's sequential
    execution engine (the supernet and the cached images are not sent to trial processes)."""
    from nni.nas.evaluator import FunctionalEvaluator

    return FunctionalEvaluator(_report_subnet_score, evaluate=evaluate)

"""ASE-NAS over the MobileNet-like space, scoring each proposal on a trained supernet in seconds.

:func:`run_supernet_search` drives :class:`~nni_asenas.core.searcher.AseNasSearcher` (ask/tell) with a sub-net
scorer (normally a :class:`~nni_asenas.imagenet.evaluator.SubnetEvaluator`) under a MAdds limit: the limit is the
searcher's ``constraint``, so an over-limit architecture is never proposed, let alone scored. It returns the
``result.json`` document of ``nni-asenas search --space mobilenet`` (same shape as the NAS-Bench-201 search's:
strategy, seed, queries, best, candidates, settings, trajectory, plus the MAdds and parameters of the winner).
:func:`build_search_evaluator` makes the scorer from a supernet checkpoint and the dataset it was trained on;
:func:`as_nni_evaluator` wraps it as an NNI evaluator, so that :class:`~nni_asenas.adapters.strategy.AseNas` (or any
NNI strategy) searches :class:`~nni_asenas.imagenet.nni_space.MobileNetLikeSpace` with supernet scores.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable, Mapping, Sequence

from nni_asenas.config import AseNasConfig, resolve_config
from nni_asenas.errors import UsageError
from nni_asenas.imagenet import space as mobilenet

__all__ = ["as_nni_evaluator", "build_search_evaluator", "mobilenet_key", "run_supernet_search"]

logger = logging.getLogger(__name__)


def run_supernet_search(
    evaluate: Callable[[Mapping[str, Any]], float],
    *,
    max_queries: int,
    seed: int = 0,
    max_madds: float | None = mobilenet.MAX_MADDS,
    madds_resolution: int = mobilenet.RESOLUTION,
    width_mult: float = mobilenet.WIDTH_MULT,
    num_classes: int = mobilenet.NUM_CLASSES,
    initial_architectures: Sequence[Mapping[str, Any]] = (),
    config: AseNasConfig | str | None = None,
    on_query: Callable[[dict[str, Any]], None] | None = None,
    extra: Mapping[str, Any] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Search ``max_queries`` architectures; ``evaluate(arch)`` returns top-1 in percent (higher is better).

    A query whose evaluation raises is recorded as failed (score ``None``) and the search goes on. ``on_query`` gets
    each trajectory entry. ``extra`` is merged into the returned document (supernet path, evaluator facts, ...).
    """
    from nni_asenas.core.searcher import AseNasSearcher

    if max_queries < 1:
        raise UsageError(f"--max-queries must be >= 1, got {max_queries}")
    if max_madds is not None and not (max_madds > 0 and math.isfinite(max_madds)):
        raise UsageError(f"--max-madds must be a positive number, got {max_madds!r}")
    def madds(arch: Mapping[str, Any]) -> int:
        return mobilenet.count_madds(arch, width_mult=width_mult, num_classes=num_classes, resolution=madds_resolution)

    smallest = {label: options[0] for label, options in mobilenet.decisions().items()}
    if max_madds is not None and madds(smallest) > max_madds:
        raise UsageError(f"--max-madds {max_madds / 1e6:.1f} M is below the smallest network of the space "
                         f"({madds(smallest) / 1e6:.1f} M MAdds at {madds_resolution} px)")
    initial = [mobilenet.canonical_arch(arch) for arch in initial_architectures]
    for arch in initial:
        if max_madds is not None and madds(arch) > max_madds:
            raise UsageError(f"initial architecture over the MAdds limit: {madds(arch) / 1e6:.1f} M > "
                             f"{max_madds / 1e6:.1f} M")
    config = resolve_config(config, **settings)
    constraint = None if max_madds is None else (lambda arch: madds(arch) <= max_madds)
    searcher = AseNasSearcher(mobilenet.decisions(), config, initial_architectures=initial, constraint=constraint,
                              seed=seed)
    started = time.perf_counter()
    trajectory: list[dict[str, Any]] = []
    best: tuple[float, dict[str, int]] | None = None
    decision_seconds = evaluation_seconds = 0.0
    while len(trajectory) < max_queries:
        tick = time.perf_counter()
        proposal = searcher.ask()
        decision_seconds += time.perf_counter() - tick
        if proposal is None:  # the whole (constrained) space has been evaluated
            break
        arch = mobilenet.canonical_arch(proposal.arch)
        tick = time.perf_counter()
        value: float | None
        try:
            value = float(evaluate(arch))
            if not math.isfinite(value):
                raise ValueError(f"non-finite score {value}")
        except (RuntimeError, ValueError) as exc:  # a failed query never ends the search
            logger.warning("query %d failed: %s", len(trajectory) + 1, exc)
            value = None
        evaluation_seconds += time.perf_counter() - tick
        tick = time.perf_counter()
        searcher.tell(proposal.id, None if value is None else value / 100.0)
        decision_seconds += time.perf_counter() - tick
        if value is not None and (best is None or value > best[0]):
            best = (value, arch)
        entry = {"query": len(trajectory) + 1, "arch": arch, "top1": value, "madds": madds(arch),
                 "kind": proposal.kind, "best_top1": None if best is None else best[0],
                 "seconds": time.perf_counter() - started}
        trajectory.append(entry)
        if on_query is not None:
            on_query(entry)
    best_doc = None
    if best is not None:
        best_doc = {"arch": best[1], "top1": best[0], "madds": madds(best[1]),
                    "params": mobilenet.count_params(best[1], width_mult=width_mult, num_classes=num_classes)}
    queries = len(trajectory)
    return {
        "strategy": "asenas+" if initial else "asenas",
        "space": "mobilenet",
        "seed": seed,
        "queries": queries,
        "failed_queries": sum(entry["top1"] is None for entry in trajectory),
        "max_queries": max_queries,
        "max_madds": max_madds,
        "madds_resolution": madds_resolution,
        "best": best_doc,
        **dict(extra or {}),
        "settings": {**config.to_dict(), "initial_architectures": initial},
        "candidates": [obs.arch for obs in searcher.candidates],
        "decision_ms_per_query": 1000.0 * decision_seconds / max(queries, 1),
        "evaluation_seconds_per_query": evaluation_seconds / max(queries, 1),
        "wall_seconds": time.perf_counter() - started,
        "trajectory": trajectory,
    }


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
        raise UsageError("--device cuda: CUDA is not available here; use --device cpu")
    target = torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    supernet, meta = load_supernet(checkpoint, map_location="cpu")
    held = meta["holdout"] if holdout is None else holdout
    if not held:
        raise UsageError(f"--supernet {checkpoint} was trained without --holdout: pass --holdout N to score sub-nets "
                         "on images of ROOT/train (never on ROOT/val, which must stay unseen by the search)")
    calibration, evaluation, _ = image_folder_batches(
        data, holdout=held, data_seed=meta["data_seed"], calib_images=calib_images, img_size=meta["img_size"],
        crop_pct=meta["crop_pct"], interpolation=meta["interpolation"], batch_size=batch_size, workers=workers,
        classes=meta["classes"])
    last = channels_last if channels_last is not None else target.type == "cuda"
    supernet.to(target, memory_format=torch.channels_last if last else torch.contiguous_format)
    supernet.eval()
    evaluator = SubnetEvaluator(supernet.extract, calibration=calibration, evaluation=evaluation,
                                prepare=normalize_uint8(IMAGENET_MEAN, IMAGENET_STD, device=target, channels_last=last),
                                device=target, amp=amp_dtype(amp, target), key=mobilenet_key)
    return supernet, evaluator, meta


def mobilenet_key(arch: Mapping[str, Any]) -> str:
    """Cache key of a MobileNet-like architecture: its canonical form (decisions of absent blocks ignored)."""
    import json

    return json.dumps(sorted(mobilenet.canonical_arch(arch).items()))


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

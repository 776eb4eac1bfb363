"""The sub-net evaluator: BN recalibration + held-out top-1, equal to doing it by hand, cached, deterministic."""

from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any, Mapping

import pytest
import torch
from torch import nn

from nni_asenas.errors import UsageError
from nni_asenas.imagenet import space as mobilenet
from nni_asenas.imagenet.data import IMAGENET_MEAN, IMAGENET_STD, stratified_subset
from nni_asenas.imagenet.evaluator import SubnetEvaluator, image_folder_batches, normalize_uint8
from nni_asenas.imagenet.supernet import MobileNetSupernet, largest_arch, smallest_arch

warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module.*")


@pytest.fixture(scope="module")
def supernet() -> MobileNetSupernet:
    torch.manual_seed(0)
    return MobileNetSupernet(width_mult=0.25, num_classes=3)


@pytest.fixture(scope="module")
def batches(image_folder: Path) -> tuple[list[torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]:
    calibration, evaluation, classes = image_folder_batches(str(image_folder), holdout=6, data_seed=1,
                                                            calib_images=9, img_size=32, batch_size=4)
    assert classes == ["ant", "bee", "cat"]
    return calibration, evaluation


def _evaluator(supernet: MobileNetSupernet, batches: Any, **kwargs: Any) -> SubnetEvaluator:
    calibration, evaluation = batches
    return SubnetEvaluator(supernet.extract, calibration=calibration, evaluation=evaluation,
                           prepare=normalize_uint8(IMAGENET_MEAN, IMAGENET_STD), **kwargs)


def test_batches_are_the_held_out_split_and_other_training_images(image_folder: Path, batches: Any) -> None:
    from torchvision.datasets import ImageFolder

    calibration, evaluation = batches
    assert [b.shape[0] for b in calibration] == [4, 5]  # a last batch of one image joins the one before and sum(t.numel() for _, t in evaluation) == 6
    assert calibration[0].dtype == torch.uint8 and calibration[0].shape[1:] == (3, 32, 32)
    targets = ImageFolder(str(image_folder / "train")).targets
    held = stratified_subset(targets, 6, 1, what="--holdout")  # what the trainer keeps out with --holdout 6
    assert torch.cat([t for _, t in evaluation]).tolist() == [targets[i] for i in held]


def test_score_equals_recalibrating_and_evaluating_by_hand(supernet: MobileNetSupernet, batches: Any) -> None:
    calibration, evaluation = batches
    arch = {label: random.Random(3).choice(options) for label, options in mobilenet.decisions().items()}
    score = _evaluator(supernet, batches)(arch)

    net = supernet.extract(arch)  # by hand: cumulative BN statistics over the calibration images, then top-1
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    sums = {id(m): [torch.zeros(m.num_features), torch.zeros(m.num_features)] for m in norms}

    def record(module: nn.Module, inputs: tuple[torch.Tensor, ...], _: Any) -> None:
        x = inputs[0]
        sums[id(module)][0] += x.mean((0, 2, 3))
        sums[id(module)][1] += x.var((0, 2, 3), unbiased=True)

    hooks = [m.register_forward_hook(record) for m in norms]
    net.train()
    with torch.no_grad():
        for images in calibration:
            net((images.float() / 255 - mean) / std)
    for hook in hooks:
        hook.remove()
    for m in norms:
        m.running_mean.copy_(sums[id(m)][0] / len(calibration))
        m.running_var.copy_(sums[id(m)][1] / len(calibration))
    net.eval()
    correct = total = 0
    with torch.no_grad():
        for images, targets in evaluation:
            correct += int((net((images.float() / 255 - mean) / std).argmax(1) == targets).sum())
            total += targets.numel()
    assert score == pytest.approx(100.0 * correct / total)
    assert score in {100.0 * k / total for k in range(total + 1)}


def test_queries_are_deterministic_cached_and_leave_the_supernet_alone(supernet: MobileNetSupernet,
                                                                       batches: Any) -> None:
    before = {key: value.clone() for key, value in supernet.state_dict().items()}
    calls: list[Mapping[str, Any]] = []

    def extract(arch: Mapping[str, Any]) -> nn.Module:
        calls.append(arch)
        return supernet.extract(arch)

    evaluator = SubnetEvaluator(extract, calibration=batches[0], evaluation=batches[1],
                                prepare=normalize_uint8(IMAGENET_MEAN, IMAGENET_STD))
    first = [evaluator(largest_arch()), evaluator(smallest_arch())]
    assert [evaluator(largest_arch()), evaluator(smallest_arch())] == first
    assert len(calls) == 2 and evaluator.n_queries == 4 and evaluator.n_evaluated == 2
    assert evaluator.seconds_per_query() > 0
    assert _evaluator(supernet, batches, cache=False)(largest_arch()) == first[0]  # a fresh evaluator agrees
    assert all(torch.equal(value, before[key]) for key, value in supernet.state_dict().items())
    assert "calibration_images=9" in repr(evaluator) and "evaluation_images=6" in repr(evaluator)


def test_any_extract_callable_works(batches: Any) -> None:
    """The evaluator is generic: here ``extract`` builds an independent network per architecture."""
    def extract(arch: Mapping[str, Any]) -> nn.Module:
        torch.manual_seed(0)
        return mobilenet.MobileNetLike(arch, width_mult=0.25, num_classes=3)

    evaluator = SubnetEvaluator(extract, calibration=batches[0], evaluation=batches[1],
                                prepare=normalize_uint8(IMAGENET_MEAN, IMAGENET_STD))
    assert 0.0 <= evaluator(smallest_arch()) <= 100.0


def test_bad_inputs_are_named(supernet: MobileNetSupernet, batches: Any, image_folder: Path) -> None:
    with pytest.raises(UsageError, match="calibration set is empty"):
        SubnetEvaluator(supernet.extract, calibration=[], evaluation=batches[1])
    with pytest.raises(UsageError, match="extract must be callable"):
        SubnetEvaluator("x", calibration=batches[0], evaluation=batches[1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a torch.nn.Module"):
        SubnetEvaluator(lambda arch: 3, calibration=batches[0], evaluation=batches[1])(smallest_arch())  # type: ignore[arg-type,return-value]
    with pytest.raises(UsageError, match="classes differ"):
        image_folder_batches(str(image_folder), holdout=6, classes=["ant", "bee"], img_size=32)

"""Fixes for NNI 3.0 on today's stack that live in this package and act in memory: nothing here changes NNI's
installed files. (The one fix on disk, of NNI's trial listing, is :mod:`nni_asenas.nni_tools.nni_patch`; it runs
only when a user calls ``nni-asenas nni-patch apply``.)

NNI 3.0 is the last release; see ``docs/nni3-notes.md`` for the facts behind each fix.

* :class:`CheckpointSerializer` / :func:`install_checkpoint_serializer`: torch >= 2.6 loads with
  ``weights_only=True`` by default, which cannot unpickle the NNI objects in a ``NasExperiment`` checkpoint, so every
  resume failed (and the failed resume then overwrote the checkpoint).
* :class:`FreezableMixedConv2d` (and ``...Linear``, ``...BatchNorm2d``): NNI's one-shot mixed operations, whose
  weight-keeping ``freeze`` crashed on bias-free convolutions and on batch norms.
* :class:`SeededRandomOneShot`: NNI's ``RandomOneShot`` sampled sub-nets from an unseeded random state, so a
  supernet training was not reproducible and DDP ranks trained different sub-nets.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Mapping, cast

import numpy as np
import torch
from nni.mutable import Constraint, Mutable, Sample
from nni.nas.oneshot.pytorch.sampling import RandomSamplingLightningModule
from nni.nas.oneshot.pytorch.supermodule.base import BaseSuperNetModule
from nni.nas.oneshot.pytorch.supermodule.operation import MixedBatchNorm2d, MixedConv2d, MixedLinear, MixedOperation
from nni.nas.oneshot.pytorch.supermodule.sampling import MixedOpPathSamplingPolicy, PathSamplingRepeat
from nni.nas.strategy import RandomOneShot
from nni.nas.utils.serializer import TorchSerializer, get_default_serializer, set_default_serializer
from torch import nn

from nni_asenas.config import check_seed

__all__ = ["CheckpointSerializer", "FREEZABLE_MIXED_OPERATIONS", "FreezableMixedBatchNorm2d", "FreezableMixedConv2d",
           "FreezableMixedLinear", "SeededRandomOneShot", "SeededRandomSamplingModule", "activate_sample",
           "freezable_mixed_operation_hooks", "install_checkpoint_serializer", "sample_space"]

_logger = logging.getLogger(__name__)


class CheckpointSerializer(TorchSerializer):
    """NNI's :class:`~nni.nas.utils.serializer.TorchSerializer`, loading with ``weights_only=False``.

    A checkpoint is the experiment's own file, written by ``torch.save`` of NNI state (strategy state, samples,
    numpy random states), so the full unpickler is what NNI 3.0 was written for; files and suffix stay NNI's.
    """

    def load(self, path: Path) -> Any:
        import torch

        path = Path(path)
        if not path.exists():
            path = path.with_name(path.name + self.suffix)
        if not path.exists():
            raise FileNotFoundError(f"no checkpoint {path}")  # NasExperiment.load_checkpoint expects this type
        return torch.load(str(path), map_location=self._map_location, weights_only=False)


def install_checkpoint_serializer() -> None:
    """Make NNI's default checkpoint serializer a :class:`CheckpointSerializer`.

    Only NNI's own default (a plain ``TorchSerializer``) is replaced; a serializer the user chose is kept.
    Idempotent and cheap: strategies call it when they are attached to an engine.
    """
    current = get_default_serializer()
    if type(current) is TorchSerializer:
        set_default_serializer(CheckpointSerializer(map_location=current._map_location))
        _logger.debug("Installed %s as NNI's checkpoint serializer.", CheckpointSerializer.__name__)


# ---------------------------------------------------------------------------------------- one-shot (weight sharing)
#
# NNI 3.0's path-sampling supernet (``RandomOneShot``) has two defects that matter for a weight-sharing search:
#
# * ``MixedOperation.freeze`` loads every entry of ``freeze_weight`` into the frozen module, including
#   ``{'bias': None}`` of a bias-free convolution ("Unexpected key(s) in state_dict: bias") and without the
#   ``num_batches_tracked`` buffer of a batch norm ("Missing key(s)"), so a weight-keeping ``space.freeze(sample)``
#   crashes on every MobileNet-style space. :class:`FreezableMixedConv2d` and its siblings load only what exists.
# * sampling calls ``Categorical.random()`` without a random state, which builds an unseeded ``RandomState()``:
#   runs are not reproducible and every DDP rank trains a different sub-net. :class:`SeededRandomOneShot` draws each
#   step's whole sample from one generator seeded by (seed, step), the same on every rank and after a resume.


class _FreezeKeepsExisting:
    """``freeze`` of a mixed operation that loads only the tensors the frozen module has."""

    def freeze(self, sample: Mapping[str, Any]) -> nn.Module:
        op = cast(MixedOperation, self)
        arguments = dict(op.init_arguments)
        for name, mutable in op.mutable_arguments.items():
            arguments[name] = mutable.freeze(dict(sample))
        frozen = op.bound_type(**arguments)
        state = {key: value for key, value in op.freeze_weight(**arguments).items() if value is not None}
        if "num_batches_tracked" in frozen.state_dict() and "num_batches_tracked" not in state:
            state["num_batches_tracked"] = cast(torch.Tensor, op.num_batches_tracked)
        frozen.load_state_dict({key: value.detach().clone() for key, value in state.items()})
        return frozen


class FreezableMixedConv2d(_FreezeKeepsExisting, MixedConv2d):
    """NNI's ``MixedConv2d`` whose ``freeze`` works on bias-free convolutions."""


class FreezableMixedLinear(_FreezeKeepsExisting, MixedLinear):
    """NNI's ``MixedLinear`` whose ``freeze`` works without a bias."""


class FreezableMixedBatchNorm2d(_FreezeKeepsExisting, MixedBatchNorm2d):
    """NNI's ``MixedBatchNorm2d`` whose ``freeze`` keeps ``num_batches_tracked``."""


FREEZABLE_MIXED_OPERATIONS: tuple[type[MixedOperation], ...] = (
    FreezableMixedConv2d, FreezableMixedLinear, FreezableMixedBatchNorm2d)


def freezable_mixed_operation_hooks() -> list[Callable[..., Any]]:
    """One-shot mutation hooks that build the freezable mixed operations (give them to any one-shot strategy as
    ``mutation_hooks``, or return them from a model space's ``extra_oneshot_hooks``)."""
    return [operation.mutate for operation in FREEZABLE_MIXED_OPERATIONS]


def sample_space(space: Mapping[str, Mutable], random_state: np.random.RandomState) -> dict[str, Any]:
    """One value per leaf mutable of ``space.simplify()``, drawn from ``random_state`` (constraints are skipped)."""
    sample: dict[str, Any] = {}
    for mutable in space.values():
        if isinstance(mutable, Constraint):
            continue
        mutable.random(sample, random_state)
    return sample


def activate_sample(model: nn.Module, sample: Mapping[str, Any]) -> None:
    """Make every one-shot supernet module of ``model`` follow ``sample`` (the same sub-net everywhere).

    ``sample`` must hold every label of the model's mutables. Path-sampling mixed operations and repeats are set
    directly from their (cached) mutable expressions, which is what their ``resample(memo=sample)`` computes
    without re-simplifying the space on every call (that took most of a small sub-net's training step); other
    one-shot modules get ``resample(memo=sample)``.
    """
    memo = dict(sample)
    for module in model.modules():
        if isinstance(module, MixedOperation) and isinstance(module.sampling_policy, MixedOpPathSamplingPolicy):
            module.sampling_policy._sampled = {name: expression.freeze(memo)
                                               for name, expression in module.mutable_arguments.items()}
        elif isinstance(module, PathSamplingRepeat) and isinstance(module.depth_choice, Mutable):
            module._sampled = module.depth_choice.freeze(memo)
        elif isinstance(module, BaseSuperNetModule):
            module.resample(memo=memo)


class SeededRandomSamplingModule(RandomSamplingLightningModule):
    """NNI's uniform path-sampling Lightning module, sampling from a generator seeded by (seed, step)."""

    def __init__(self, training_module: Any, filter: Callable[[Sample], bool] | None = None,  # noqa: A002
                 *, seed: int = 0) -> None:
        super().__init__(training_module, filter)
        self.seed = seed
        self._draws = 0

    def resample(self) -> Sample:
        def draw() -> Sample:
            state = np.random.RandomState(np.random.SeedSequence([self.seed, self._draws]).generate_state(1))
            self._draws += 1
            return sample_space(self.model.simplify(), state)

        sample = self._repeat_until_valid(draw)
        activate_sample(self.model, sample)
        return sample

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["nni_asenas_sampling"] = {"seed": self.seed, "draws": self._draws}
        self.training_module.on_save_checkpoint(checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("nni_asenas_sampling")
        if state is not None:
            self.seed, self._draws = int(state["seed"]), int(state["draws"])
        self.training_module.on_load_checkpoint(checkpoint)


class SeededRandomOneShot(RandomOneShot):
    """NNI's ``RandomOneShot`` (uniform path sampling, SPOS) with reproducible sampling and freezable mixed ops.

    Every training step's sub-net is drawn from a generator seeded by (``seed``, draw number), so a run is
    reproducible and all DDP ranks train the same sub-net; ``space.freeze(sample)`` on the trained supernet keeps
    the weights (see :class:`FreezableMixedConv2d`).
    """

    def __init__(self, *, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seed = check_seed(seed)

    def default_mutation_hooks(self) -> list[Callable[..., Any]]:
        return freezable_mixed_operation_hooks() + super().default_mutation_hooks()

    def configure_oneshot_module(self, training_module: Any) -> SeededRandomSamplingModule:
        return SeededRandomSamplingModule(training_module, self.filter, seed=self.seed)

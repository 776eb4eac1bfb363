"""Fixes for NNI 3.0 on today's stack that live in this package (NNI itself is never patched on disk).

NNI 3.0 is the last release; see ``docs/nni3-notes.md`` for the facts behind each fix.

* :class:`CheckpointSerializer` / :func:`install_checkpoint_serializer`: torch >= 2.6 loads with
  ``weights_only=True`` by default, which cannot unpickle the NNI objects in a ``NasExperiment`` checkpoint, so every
  resume failed (and the failed resume then overwrote the checkpoint).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from nni.nas.utils.serializer import TorchSerializer, get_default_serializer, set_default_serializer

__all__ = ["CheckpointSerializer", "install_checkpoint_serializer"]

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

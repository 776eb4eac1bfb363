"""OFA's released accuracy predictor (``acc_predictor.pth``) as an evaluator of the MobileNet-like space.

Once-for-all's tutorial searches ``ofa_mbv3_d234_e346_k357_w1.2`` against an MLP that MIT's Han lab trained on
sub-nets of that supernet: ``Linear(128, 400), ReLU, Linear(400, 400), ReLU, Linear(400, 400), ReLU,
Linear(400, 1)`` (state-dict keys ``0.weight`` ... ``6.bias``), predicting top-1 as a fraction, measured on the
supernet's sub-nets without fine-tuning. :class:`OfaAccuracyPredictor` reads that file from a path the user gives
(nothing is downloaded) and evaluates it with numpy.

Its input (:func:`ofa_features`, OFA's ``spec2feats``), 128 numbers:

* 60: per block slot (5 stages x 4 blocks) a one-hot of the kernel over (3, 5, 7);
* 60: per block slot a one-hot of the expand ratio over (3, 4, 6);
* 8: a one-hot of ``(resolution - 112) // 16``.

A slot beyond its stage's depth has all-zero codes. The resolution is fixed (224 px by default) or, with
``resolution=None``, one more decision of the architecture (:func:`~nni_asenas.imagenet.ofa_space.decisions_with_resolution`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..errors import UsageError
from ..threads import one_thread
from .ofa import OFA_NET_ID, read_tensor_file
from .ofa_space import RESOLUTIONS, split_resolution
from .predictor import N_SLOTS, _choice_indices
from .space import EXPAND_RATIOS, KERNELS, RESOLUTION

__all__ = ["N_OFA_FEATURES", "OfaAccuracyPredictor", "ofa_features", "ofa_predictor_layout"]

N_RESOLUTION_BINS = 8
_RESOLUTION_BASE, _RESOLUTION_STEP = 112, 16
N_OFA_FEATURES = 2 * N_SLOTS * len(KERNELS) + N_RESOLUTION_BINS
_HIDDEN = 400
_LINEAR_INDICES = (0, 2, 4, 6)


def ofa_predictor_layout() -> dict[str, tuple[int, ...]]:
    """Key -> shape of the state dict of OFA's predictor (``acc_predictor.pth``)."""
    sizes = (N_OFA_FEATURES, _HIDDEN, _HIDDEN, _HIDDEN, 1)
    layout: dict[str, tuple[int, ...]] = {}
    for index, n_in, n_out in zip(_LINEAR_INDICES, sizes, sizes[1:]):
        layout[f"{index}.weight"] = (n_out, n_in)
        layout[f"{index}.bias"] = (n_out,)
    return layout


def _resolution_bin(resolution: int) -> int:
    return (resolution - _RESOLUTION_BASE) // _RESOLUTION_STEP


def _active_features(arch: Mapping[str, Any], resolution: int | None) -> list[int]:
    """The indices of the ones in :func:`ofa_features` (two per existing block, one for the resolution)."""
    blocks, size = split_resolution(arch, resolution)
    active = []
    n_expand = len(EXPAND_RATIOS)
    for slot, choice in enumerate(_choice_indices(blocks)):  # 0: absent, else 1 + 3 * kernel index + expand index
        if choice:
            kernel_index, expand_index = divmod(choice - 1, n_expand)
            active.append(len(KERNELS) * slot + kernel_index)
            active.append(N_SLOTS * len(KERNELS) + n_expand * slot + expand_index)
    active.append(2 * N_SLOTS * len(KERNELS) + _resolution_bin(size))
    return active


def ofa_features(archs: Sequence[Mapping[str, Any]], resolution: int | None = RESOLUTION) -> np.ndarray:
    """OFA's 128-number encoding of each architecture, an ``(n, 128)`` float32 array (module docstring).

    ``resolution`` is the fixed resolution, or None when each architecture carries its ``"resolution"``.
    """
    if resolution is not None and resolution not in RESOLUTIONS:
        raise UsageError(f"resolution {resolution!r} is not one of OFA's {list(RESOLUTIONS)}")
    features = np.zeros((len(archs), N_OFA_FEATURES), dtype=np.float32)
    for row, arch in enumerate(archs):
        features[row, _active_features(arch, resolution)] = 1.0
    return features


def _shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(size) for size in shape) + ")"


class OfaAccuracyPredictor:
    """OFA's accuracy predictor over the MobileNet-like space; ``predictor(arch)`` is predicted top-1 (fraction).

    ``state_dict`` is the predictor's (keys and shapes of :func:`ofa_predictor_layout`); :meth:`from_file` reads
    ``acc_predictor.pth``. ``resolution``: the fixed input resolution (one of
    :data:`~nni_asenas.imagenet.ofa_space.RESOLUTIONS`, 224 by default), or None to make it a decision that every
    architecture carries as ``"resolution"``. The weights are kept in float64, so a prediction does not depend
    on the batch it is computed in beyond rounding (about 1e-16).
    """

    def __init__(self, state_dict: Mapping[str, Any], *, resolution: int | None = RESOLUTION,
                 source: str = "OFA predictor state dict") -> None:
        if resolution is not None and resolution not in RESOLUTIONS:
            raise UsageError(f"resolution {resolution!r} is not one of OFA's {list(RESOLUTIONS)}")
        self.resolution = resolution
        self.source = source
        if not isinstance(state_dict, Mapping):
            raise UsageError(f"{source}: expected the state dict of OFA's accuracy predictor, got "
                             f"{type(state_dict).__name__}")
        hint = f"not OFA's accuracy predictor for {OFA_NET_ID} (acc_predictor.pth)"
        layout = ofa_predictor_layout()
        for key, shape in layout.items():
            value = state_dict.get(key)
            if value is None:
                raise UsageError(f"{source}: missing key {key!r}; {hint}")
            if not isinstance(value, torch.Tensor):
                raise UsageError(f"{source}: {key!r} is not a tensor; {hint}")
            if tuple(value.shape) != shape:
                raise UsageError(f"{source}: {key!r} has shape {_shape(value.shape)}, expected {_shape(shape)}; "
                                 f"{hint}")
        for key in state_dict:
            if key not in layout:
                raise UsageError(f"{source}: unexpected key {key!r}; {hint}")
        arrays = {key: state_dict[key].detach().to(torch.float64).numpy().copy() for key in layout}
        if not all(np.isfinite(array).all() for array in arrays.values()):
            raise UsageError(f"{source}: holds NaN or infinite weights")
        # (in, out) matrices: a batch is rows
        self._weights = [np.ascontiguousarray(arrays[f"{index}.weight"].T) for index in _LINEAR_INDICES]
        self._biases = [arrays[f"{index}.bias"] for index in _LINEAR_INDICES]

    @classmethod
    def from_file(cls, path: str | Path, *, resolution: int | None = RESOLUTION) -> OfaAccuracyPredictor:
        """Read ``acc_predictor.pth`` (a ``torch.save``\\ d state dict) from ``path``; never downloads."""
        return cls(read_tensor_file(path, "OFA predictor"), resolution=resolution, source=str(Path(path)))

    def __repr__(self) -> str:
        resolution = "decision" if self.resolution is None else self.resolution
        return f"{type(self).__name__}(source={self.source!r}, resolution={resolution!r})"

    def _forward(self, hidden: np.ndarray) -> np.ndarray:
        for weight, bias in zip(self._weights[1:], self._biases[1:]):
            np.maximum(hidden, 0.0, out=hidden)
            hidden = hidden @ weight + bias
        return hidden[:, 0]

    def predict(self, archs: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Predicted top-1 (fraction) of each architecture, float64 of shape ``(n,)``."""
        if not archs:
            return np.zeros(0)
        with one_thread():
            features = ofa_features(archs, self.resolution).astype(np.float64)
            return self._forward(features @ self._weights[0] + self._biases[0])

    def predict_one(self, arch: Mapping[str, Any]) -> float:
        """Predicted top-1 (fraction) of one architecture: an ``arch -> float`` evaluator for the searcher."""
        # the first layer of a one-hot input is a sum of weight rows; cheaper than building the 128 features
        hidden = self._weights[0][_active_features(arch, self.resolution)].sum(axis=0) + self._biases[0]
        return float(self._forward(hidden[None, :])[0])

    __call__ = predict_one

"""The NNI 3.0 fixes of nni_asenas.nni_tools.compat."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from nni.nas.utils.serializer import JsonSerializer, TorchSerializer, get_default_serializer, set_default_serializer

from nni_asenas.nni_tools.compat import CheckpointSerializer, install_checkpoint_serializer


@pytest.fixture
def restore_default_serializer():
    previous = get_default_serializer()
    yield
    set_default_serializer(previous)


def _checkpoint():
    # What NasExperiment checkpoints hold besides tensors: numpy random states, plain Python objects.
    return {"version": 1, "strategy": {"random_state": np.random.RandomState(0).get_state(), "ids": {1, 2}}}


def test_nnis_default_serializer_cannot_load_its_own_checkpoint(tmp_path):
    TorchSerializer().save(_checkpoint(), tmp_path / "state.ckpt")
    with pytest.raises(pickle.UnpicklingError):  # torch >= 2.6: weights_only=True by default
        TorchSerializer().load(tmp_path / "state.ckpt")


def test_checkpoint_serializer_loads_it(tmp_path):
    TorchSerializer().save(_checkpoint(), tmp_path / "state.ckpt")
    assert (tmp_path / "state.ckpt.torch").exists()  # NNI's file name is kept
    loaded = CheckpointSerializer().load(tmp_path / "state.ckpt")
    expected = _checkpoint()
    assert loaded["strategy"]["ids"] == expected["strategy"]["ids"]
    assert np.array_equal(loaded["strategy"]["random_state"][1], expected["strategy"]["random_state"][1])
    torch.save([1], tmp_path / "exact")
    assert CheckpointSerializer().load(tmp_path / "exact") == [1]  # an existing path is read as is
    with pytest.raises(FileNotFoundError):  # NasExperiment.load_checkpoint skips loading on this type
        CheckpointSerializer().load(tmp_path / "missing.ckpt")


def test_install_replaces_only_nnis_default(restore_default_serializer):
    set_default_serializer(TorchSerializer(map_location="cpu"))
    install_checkpoint_serializer()
    installed = get_default_serializer()
    assert type(installed) is CheckpointSerializer and installed._map_location == "cpu"
    install_checkpoint_serializer()
    assert get_default_serializer() is installed

    chosen = JsonSerializer()
    set_default_serializer(chosen)
    install_checkpoint_serializer()
    assert get_default_serializer() is chosen

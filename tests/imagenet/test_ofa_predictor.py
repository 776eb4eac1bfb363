"""OFA's released accuracy predictor: the package's encoding and prediction against OFA's own tutorial code.

The tests that read ``acc_predictor.pth`` or the specialised networks need ``$NNI_ASENAS_OFA_FILES`` (see
``tests/ofa_files.py``); the rest run anywhere.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from ofa_files import ofa_spec, ofa_tutorial_module

from nni_asenas.errors import UsageError
from nni_asenas.imagenet.ofa_predictor import N_OFA_FEATURES, OfaAccuracyPredictor, ofa_features, ofa_predictor_layout
from nni_asenas.imagenet.ofa_space import (
    RESOLUTIONS,
    arch_from_net_config,
    canonical_arch_with_resolution,
    decisions_with_resolution,
    read_specialized,
    smallest_arch,
    split_resolution,
)
from nni_asenas.imagenet.space import canonical_arch, count_madds, decisions

SPACE = decisions_with_resolution()


def random_archs(n: int, seed: int) -> list[dict[str, int]]:
    """Architectures of OFA's space (resolution included), every decision uniform; absent blocks keep their draws."""
    rng = random.Random(seed)
    return [{label: rng.choice(options) for label, options in SPACE.items()} for _ in range(n)]


def largest_arch(resolution: int) -> dict[str, int]:
    return {**{label: max(options) for label, options in decisions().items()}, "resolution": resolution}


def random_state(seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {key: torch.randn(shape, generator=generator) * 0.1 for key, shape in ofa_predictor_layout().items()}


@pytest.fixture(scope="module")
def accuracy_module():
    return ofa_tutorial_module("accuracy_predictor")


def ofa_reference(accuracy_module, state: dict[str, torch.Tensor]):
    reference = accuracy_module.AccuracyPredictor(pretrained=False, device="cpu")
    reference.model.load_state_dict(state)
    return reference


def ofa_predictions(reference, archs: list[dict[str, int]]) -> np.ndarray:
    specs = [ofa_spec(arch, arch["resolution"]) for arch in archs]
    return reference.predict_accuracy(specs).numpy()[:, 0].astype(np.float64)


# --------------------------------------------------------------------------------- the space with resolution

def test_resolution_is_one_more_decision():
    assert list(SPACE) == [*decisions(), "resolution"] and SPACE["resolution"] == [160, 176, 192, 208, 224]
    arch = random_archs(1, seed=3)[0]
    blocks, resolution = split_resolution(arch, None)
    assert resolution == arch["resolution"] and "resolution" not in blocks and len(blocks) == len(decisions())
    assert canonical_arch_with_resolution(arch) == {**canonical_arch(blocks), "resolution": resolution}
    assert split_resolution(blocks, 224) == (blocks, 224)
    assert split_resolution(dict(blocks, resolution=224), 224)[1] == 224
    assert smallest_arch(None) == {**smallest_arch(224), "resolution": 160}
    with pytest.raises(UsageError, match="missing decision 'resolution'"):
        split_resolution(blocks, None)
    with pytest.raises(UsageError, match="resolution=200"):
        split_resolution(dict(blocks, resolution=200), None)
    with pytest.raises(UsageError, match="fixed at 224"):
        split_resolution(dict(blocks, resolution=160), 224)


# --------------------------------------------------------------------------------- the encoding (no files)

def test_features_are_ofa_spec2feats(accuracy_module):
    archs = random_archs(200, seed=1) + [smallest_arch(None), largest_arch(224)]
    ours = ofa_features(archs, None)
    assert ours.shape == (len(archs), N_OFA_FEATURES) == (len(archs), 128) and ours.dtype == np.float32
    for arch, row in zip(archs, ours):
        spec = ofa_spec(arch, arch["resolution"])
        theirs = accuracy_module.AccuracyPredictor.spec2feats(spec["ks"], spec["e"], spec["d"], spec["r"][0])
        assert np.array_equal(row, theirs.numpy()), arch
    # a fixed resolution: archs without the label, the same codes
    fixed = [{label: value for label, value in arch.items() if label != "resolution"} for arch in archs]
    assert np.array_equal(ofa_features(fixed, 176)[:, -8:].argmax(axis=1), np.full(len(archs), (176 - 112) // 16))
    assert np.array_equal(ofa_features(fixed, 224)[:, :120], ours[:, :120])


def test_features_ignore_absent_blocks_and_reject_bad_architectures():
    arch = smallest_arch(None)
    assert np.array_equal(ofa_features([dict(arch, s1_b3_kernel=7, s2_b2_expand=6)], None), ofa_features([arch], None))
    with pytest.raises(UsageError, match="s1_b0_kernel=4"):
        ofa_features([dict(arch, s1_b0_kernel=4)], None)
    with pytest.raises(UsageError, match="unknown decision 'bogus'"):
        ofa_features([dict(arch, bogus=1)], None)
    with pytest.raises(UsageError, match="is not one of OFA's"):
        ofa_features([smallest_arch(224)], 200)


# --------------------------------------------------------------------------------- prediction (random weights)

def test_prediction_equals_ofa_on_random_weights(accuracy_module):
    """OFA's encoding and network, in float64 (OFA's own float32 run differs from float64 by ~1e-6 relative here,
    with outputs near 3: the released file's test below compares with the float32 run)."""
    state = random_state(seed=4)
    predictor = OfaAccuracyPredictor(state, resolution=None)
    archs = random_archs(50, seed=2)
    model = ofa_reference(accuracy_module, state).model.double()
    features = []
    for arch in archs:
        spec = ofa_spec(arch, arch["resolution"])
        features.append(accuracy_module.AccuracyPredictor.spec2feats(spec["ks"], spec["e"], spec["d"], spec["r"][0]))
    with torch.no_grad():
        expected = model(torch.stack(features).double())[:, 0].numpy()
    assert np.abs(predictor.predict(archs) - expected).max() < 1e-12
    assert np.abs(np.array([predictor(arch) for arch in archs]) - expected).max() < 1e-12


def test_batched_and_single_predictions_agree_and_fixed_resolution_matches():
    state = random_state(seed=5)
    archs = random_archs(64, seed=6)
    decision = OfaAccuracyPredictor(state, resolution=None)
    batched = decision.predict(archs)
    assert batched.shape == (64,) and batched.dtype == np.float64
    assert np.abs(batched - np.array([decision(arch) for arch in archs])).max() < 1e-12
    assert np.abs(decision.predict(archs[:7]) - batched[:7]).max() < 1e-12
    assert decision.predict([]).shape == (0,)
    fixed = OfaAccuracyPredictor(state)  # 224 px
    at_224 = [dict(arch, resolution=224) for arch in archs]
    blocks_only = [{label: value for label, value in arch.items() if label != "resolution"} for arch in archs]
    assert np.abs(fixed.predict(blocks_only) - decision.predict(at_224)).max() < 1e-12
    with pytest.raises(UsageError, match="missing decision 'resolution'"):
        decision(blocks_only[0])


def test_predictor_state_of_another_shape_is_one_line(tmp_path: Path):
    state = random_state()
    wider = dict(state, **{"0.weight": torch.zeros(400, 200)})
    with pytest.raises(UsageError, match=r"'0.weight' has shape \(400, 200\), expected \(400, 128\)") as info:
        OfaAccuracyPredictor(wider)
    assert "\n" not in str(info.value)
    missing = {key: value for key, value in state.items() if key != "6.bias"}
    with pytest.raises(UsageError, match="missing key '6.bias'"):
        OfaAccuracyPredictor(missing)
    with pytest.raises(UsageError, match="unexpected key '8.weight'"):
        OfaAccuracyPredictor(dict(state, **{"8.weight": torch.zeros(1)}))
    path = tmp_path / "other.pth"
    torch.save(wider, path)
    with pytest.raises(UsageError, match=f"{path}: '0.weight' has shape") as info:
        OfaAccuracyPredictor.from_file(path)
    assert "\n" not in str(info.value)
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(UsageError, match="cannot be read as tensors"):
        OfaAccuracyPredictor.from_file(tmp_path / "text.pth")
    with pytest.raises(UsageError, match="does not exist"):
        OfaAccuracyPredictor.from_file(tmp_path / "absent.pth")
    with pytest.raises(UsageError, match="resolution 200 is not one of"):
        OfaAccuracyPredictor(state, resolution=200)


def test_a_thousand_single_predictions_take_well_under_a_second():
    predictor = OfaAccuracyPredictor(random_state())
    archs = [{label: value for label, value in arch.items() if label != "resolution"}
             for arch in random_archs(1000, seed=7)]
    start = time.process_time()
    for arch in archs:
        predictor(arch)
    single = time.process_time() - start
    start = time.process_time()
    predictor.predict(archs)
    batched = time.process_time() - start
    assert single < 0.5 and batched < 0.5, (single, batched)


# --------------------------------------------------------------------------------- OFA's released files

@pytest.fixture(scope="module")
def released(ofa_files: Path, accuracy_module):
    path = ofa_files / "acc_predictor.pth"
    state = torch.load(path, map_location="cpu", weights_only=True)
    return OfaAccuracyPredictor.from_file(path, resolution=None), ofa_reference(accuracy_module, state)


@pytest.fixture(scope="module")
def specialized(ofa_files: Path) -> dict[str, tuple[dict[str, int], int]]:
    """OFA's specialised networks that are networks of the w1.2 space, name -> (arch, OFA's image size)."""
    found = {}
    folders = sorted(path for path in (ofa_files / "specialized").iterdir() if path.is_dir())
    assert len(folders) == 50
    for folder in folders:
        try:
            found[folder.name] = read_specialized(folder)
        except UsageError as exc:
            assert "\n" not in str(exc) and "not a network of ofa_mbv3_d234_e346_k357_w1.2" in str(exc), exc
    return found


def test_released_predictor_equals_ofa_on_random_architectures(released):
    predictor, reference = released
    archs = random_archs(100, seed=0)
    expected = ofa_predictions(reference, archs)
    assert np.abs(predictor.predict(archs) - expected).max() < 1e-6
    assert np.abs(np.array([predictor(arch) for arch in archs]) - expected).max() < 1e-6


def test_released_predictor_equals_ofa_on_specialised_networks(released, specialized):
    predictor, reference = released
    # the w1.2 nets: OFA's three FLOPs-targeted ones, four Note10 ones (30-64 ms), three Pixel 1 ones (79-143 ms)
    assert len(specialized) == 10
    assert {name.split("_")[0] for name in specialized} == {"flops-389M", "flops-482M", "flops-595M", "note10",
                                                              "pixel1"}
    archs = [dict(arch, resolution=size) for arch, _ in specialized.values() for size in RESOLUTIONS]
    predicted = predictor.predict(archs)
    assert np.abs(predicted - ofa_predictions(reference, archs)).max() < 1e-6
    at_224 = dict(zip(specialized, predicted.reshape(len(specialized), len(RESOLUTIONS))[:, -1]))
    # the reading: OFA's 389 M / 482 M / 595 M FLOPs nets encoded at 224 px
    assert [round(float(at_224[name]), 3) for name in sorted(at_224) if name.startswith("flops")] == \
        [0.826, 0.832, 0.832]


def test_released_predictor_reads_the_largest_and_smallest_networks(released):
    predictor, _ = released
    assert round(predictor(largest_arch(224)), 3) == 0.836
    assert round(predictor(smallest_arch(None)), 3) == 0.753


def test_specialised_flops_networks_have_the_madds_in_their_names(specialized):
    for name, (arch, size) in specialized.items():
        if name.startswith("flops-"):
            assert round(count_madds(arch, resolution=size) / 1e6) == int(name.split("-")[1].split("M")[0]), name


def test_net_config_of_another_space_is_one_line(ofa_files: Path):
    import json

    folder = next((ofa_files / "specialized").glob("note10_lat-8ms*"))
    config = json.loads((folder / "net.config").read_text())
    with pytest.raises(UsageError, match="first_conv has out_channels=16, the space has 24"):
        arch_from_net_config(config)
    w12 = json.loads(next((ofa_files / "specialized").glob("flops-482M*")).joinpath("net.config").read_text())
    w12["blocks"][3]["mobile_inverted_conv"]["kernel_size"] = 9
    with pytest.raises(UsageError, match="s1_b2_kernel=9 is not one of"):
        arch_from_net_config(w12)

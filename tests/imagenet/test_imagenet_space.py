"""The MobileNet-like space: decisions, generated JSON, exact MAdds/params, the MAdds constraint, NNI spaces."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nni_asenas.errors import UsageError
from nni_asenas.imagenet import space as mobilenet
from nni_asenas.imagenet.nni_space import MobileNetLikeSpace
from nni_asenas.imagenet.space import (
    MobileNetLike,
    canonical_arch,
    count_madds,
    count_params,
    decisions,
    search_space_json,
    validate_arch,
    within_madds,
)

REPO = Path(__file__).resolve().parents[2]


def uniform(index: int) -> dict[str, int]:
    return {label: options[index] for label, options in decisions().items()}


def random_arch(rng: random.Random) -> dict[str, int]:
    return {label: rng.choice(options) for label, options in decisions().items()}


def hooked_madds_and_params(model: nn.Module, resolution: int) -> tuple[int, int]:
    """Count conv/linear MAdds by running the network: an independent check of the shape table."""
    total = 0

    def hook(module: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        else:
            per_output = module.in_features
        total += output[0].numel() * per_output

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, resolution, resolution))
    for handle in handles:
        handle.remove()
    return total, sum(p.numel() for p in model.parameters())


def test_decisions_are_the_papers_space():
    space = decisions()
    assert len(space) == 5 + 5 * 4 * 2
    for stage in range(1, 6):
        assert space[f"s{stage}_depth"] == [2, 3, 4]
        for block in range(4):
            assert space[f"s{stage}_b{block}_kernel"] == [3, 5, 7]
            assert space[f"s{stage}_b{block}_expand"] == [3, 4, 6]
    assert not any("/" in label for label in space)


def test_committed_search_space_json_is_the_generated_one(tmp_path):
    committed = (REPO / "search_spaces" / "mobilenet.json").read_text(encoding="utf-8")
    assert json.loads(committed) == search_space_json()
    assert mobilenet.main([str(tmp_path / "regenerated.json")]) == 0
    assert committed == (tmp_path / "regenerated.json").read_text(encoding="utf-8")
    assert search_space_json()["s3_depth"] == {"_type": "choice", "_value": [2, 3, 4]}


def test_madds_of_the_smallest_architecture_by_hand():
    # width 1.2: stem/first block 24, stages 32, 48, 96, 136, 192, head 1152, feature 1536; 224 px input
    # feature maps: 112 (stem, block 0), 56, 28, 14, 14, 7. SE squeeze widths: hidden/4 rounded to 8.
    stem = 112 * 112 * 24 * 3 * 9
    block0 = 112 * 112 * 24 * 9 + 112 * 112 * 24 * 24
    stage1 = (112 * 112 * 24 * 72 + 56 * 56 * 72 * 9 + 56 * 56 * 72 * 32
              + 56 * 56 * 32 * 96 + 56 * 56 * 96 * 9 + 56 * 56 * 96 * 32)
    stage2 = (56 * 56 * 32 * 96 + 28 * 28 * 96 * 9 + 2 * 96 * 24 + 28 * 28 * 96 * 48
              + 28 * 28 * 48 * 144 + 28 * 28 * 144 * 9 + 2 * 144 * 40 + 28 * 28 * 144 * 48)
    stage3 = (28 * 28 * 48 * 144 + 14 * 14 * 144 * 9 + 14 * 14 * 144 * 96
              + 14 * 14 * 96 * 288 + 14 * 14 * 288 * 9 + 14 * 14 * 288 * 96)
    stage4 = (14 * 14 * 96 * 288 + 14 * 14 * 288 * 9 + 2 * 288 * 72 + 14 * 14 * 288 * 136
              + 14 * 14 * 136 * 408 + 14 * 14 * 408 * 9 + 2 * 408 * 104 + 14 * 14 * 408 * 136)
    stage5 = (14 * 14 * 136 * 408 + 7 * 7 * 408 * 9 + 2 * 408 * 104 + 7 * 7 * 408 * 192
              + 7 * 7 * 192 * 576 + 7 * 7 * 576 * 9 + 2 * 576 * 144 + 7 * 7 * 576 * 192)
    head = 7 * 7 * 192 * 1152 + 1152 * 1536 + 1536 * 1000
    expected = stem + block0 + stage1 + stage2 + stage3 + stage4 + stage5 + head
    assert count_madds(uniform(0)) == expected


def test_madds_of_a_mixed_architecture_by_hand():
    # Only stage 4 (stride 1, squeeze-excite, 96 -> 136 at 14 px) differs from the smallest architecture:
    # depth 3 with (k7, e6), (k5, e4), (k3, e3) instead of depth 2 with (k3, e3) twice.
    arch = uniform(0)
    arch.update(s4_depth=3, s4_b0_kernel=7, s4_b0_expand=6, s4_b1_kernel=5, s4_b1_expand=4)
    smallest_stage4 = (14 * 14 * 96 * 288 + 14 * 14 * 288 * 9 + 2 * 288 * 72 + 14 * 14 * 288 * 136
                       + 14 * 14 * 136 * 408 + 14 * 14 * 408 * 9 + 2 * 408 * 104 + 14 * 14 * 408 * 136)
    stage4 = (14 * 14 * 96 * 576 + 14 * 14 * 576 * 49 + 2 * 576 * 144 + 14 * 14 * 576 * 136
              + 14 * 14 * 136 * 544 + 14 * 14 * 544 * 25 + 2 * 544 * 136 + 14 * 14 * 544 * 136
              + 14 * 14 * 136 * 408 + 14 * 14 * 408 * 9 + 2 * 408 * 104 + 14 * 14 * 408 * 136)
    assert count_madds(arch) - count_madds(uniform(0)) == stage4 - smallest_stage4


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_counters_match_the_built_network(seed):
    rng = random.Random(seed)
    arch = random_arch(rng)
    width, classes, resolution = rng.choice([(1.2, 1000, 224), (0.5, 10, 96), (0.25, 7, 57)])
    model = MobileNetLike(arch, width_mult=width, num_classes=classes)
    madds, params = hooked_madds_and_params(model, resolution)
    assert count_madds(arch, width_mult=width, num_classes=classes, resolution=resolution) == madds
    assert count_params(arch, width_mult=width, num_classes=classes) == params


def test_decisions_of_missing_blocks_are_ignored():
    arch = uniform(0)
    other = dict(arch, s2_b3_kernel=7, s2_b3_expand=6, s5_b2_kernel=5)  # blocks that do not exist at depth 2
    assert count_madds(other) == count_madds(arch)
    assert count_params(other) == count_params(arch)
    assert canonical_arch(other) == arch
    deeper = dict(other, s2_depth=4)
    with pytest.raises(UsageError, match="missing decision 's2_b2_kernel'"):
        validate_arch({k: v for k, v in deeper.items() if k != "s2_b2_kernel"})
    assert count_madds(deeper) > count_madds(dict(arch, s2_depth=4))


def test_validate_arch_names_the_culprit():
    arch = uniform(1)
    assert validate_arch(arch) == arch
    assert validate_arch({k: float(v) for k, v in arch.items()}) == arch  # JSON round trips may give floats
    with pytest.raises(UsageError, match="unknown decision 'stage1_depth'"):
        validate_arch(dict(arch, stage1_depth=3))
    with pytest.raises(UsageError, match=r"s3_b1_expand=5 is not one of \[3, 4, 6\]"):
        validate_arch(dict(arch, s3_b1_expand=5))
    with pytest.raises(UsageError, match="s1_depth=True"):
        validate_arch(dict(arch, s1_depth=True))
    with pytest.raises(UsageError, match="missing decision 's4_depth'"):
        validate_arch({k: v for k, v in arch.items() if k != "s4_depth"})
    with pytest.raises(UsageError, match="must be a mapping"):
        validate_arch([("s1_depth", 2)])
    shortest = {k: v for k, v in uniform(0).items() if "depth" in k or "_b0_" in k or "_b1_" in k}
    assert validate_arch(shortest) == uniform(0)


def test_within_madds_is_the_budget():
    smallest, largest = uniform(0), uniform(2)
    assert within_madds(smallest)
    assert not within_madds(largest)
    assert count_madds(largest) > 600e6 > count_madds(smallest)
    exact = count_madds(largest)
    assert within_madds(largest, max_madds=exact)
    assert not within_madds(largest, max_madds=exact - 1)
    assert within_madds(largest, max_madds=600e6, resolution=160)  # MAdds grow with the input area
    with pytest.raises(UsageError, match="resolution"):
        within_madds(smallest, resolution=0)


def test_network_runs_and_has_the_paper_shape():
    model = MobileNetLike(uniform(0), width_mult=0.25, num_classes=5)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 5)
    assert len(model.blocks) == 1 + 5 * 2
    assert "depths=(2, 2, 2, 2, 2)" in repr(model)
    with pytest.raises(UsageError, match="width_mult"):
        MobileNetLike(uniform(0), width_mult=0)
    with pytest.raises(UsageError, match="num_classes"):
        MobileNetLike(uniform(0), num_classes=0)


# ------------------------------------------------------------------------------------------------ NNI model spaces

@pytest.fixture(scope="module")
def nni_mutable():
    return pytest.importorskip("nni.mutable")


def test_model_space_has_the_same_decisions_and_the_constraint(nni_mutable):
    space = MobileNetLikeSpace()
    simplified = space.simplify()
    constraint = simplified.pop("max_madds")
    assert isinstance(constraint, nni_mutable.Constraint)
    assert all(isinstance(m, nni_mutable.Categorical) for m in simplified.values())
    assert {label: list(m.values) for label, m in simplified.items()} == decisions()


def test_freeze_rejects_over_budget_samples(nni_mutable):
    space = MobileNetLikeSpace(width_mult=0.25, num_classes=3)
    budget = count_madds(uniform(1), width_mult=0.25, num_classes=3)
    tight = MobileNetLikeSpace(width_mult=0.25, num_classes=3, max_madds=budget)
    frozen = tight.freeze(uniform(1))
    assert frozen.net.arch == canonical_arch(uniform(1))  # block 3 of each stage does not exist at depth 3
    assert frozen.eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 3)
    with pytest.raises(nni_mutable.ConstraintViolation, match="MAdds"):
        tight.freeze(uniform(2))
    with pytest.raises(nni_mutable.ConstraintViolation):
        MobileNetLikeSpace().freeze(uniform(2))
    assert space.freeze(uniform(2)).net.arch == uniform(2)  # width 0.25 is far below 600 M
    assert MobileNetLikeSpace(max_madds=None).freeze(uniform(2)).net.arch == uniform(2)
    with pytest.raises(nni_mutable.SampleValidationError):
        space.freeze(dict(uniform(0), s1_depth=5))


def test_random_samples_respect_the_constraint(nni_mutable):
    space = MobileNetLikeSpace(max_madds=400e6)
    state = np.random.RandomState(0)
    accepted = rejected = 0
    for _ in range(40):
        sample: dict = {}
        try:
            model = space.random(sample, random_state=state)
        except nni_mutable.ConstraintViolation:
            rejected += 1
            assert count_madds(sample) > 400e6
            continue
        accepted += 1
        assert count_madds(sample) <= 400e6
        assert model.net.arch == canonical_arch(sample)
    assert accepted and rejected


@pytest.fixture(scope="module", params=["MobileNetV3Space", "ProxylessNAS"])
def hub_space(request, nni_mutable):
    hub = pytest.importorskip("nni.nas.hub.pytorch")
    return getattr(hub, request.param)()


def test_nni_hub_spaces_have_only_encodable_decisions(hub_space, nni_mutable):
    # ASE-NAS encodes one categorical option per decision; NNI's hub spaces must reduce to exactly that.
    simplified = hub_space.simplify()
    assert simplified
    for label, mutable in simplified.items():
        assert "/" not in label
        assert isinstance(mutable, nni_mutable.Categorical), (label, mutable)
        assert len(mutable.values) >= 1 and len(set(map(repr, mutable.values))) == len(mutable.values)


# --------------------------------------------------------------------------------------- searched by AseNas (NNI)

def search_with_asenas(space, score, max_models: int, **options) -> list:
    """Run AseNas with an evaluator that scores each built network by ``score(network)`` (no training)."""
    import nni
    from nni.nas.evaluator import FunctionalEvaluator
    from nni.nas.execution import SequentialExecutionEngine
    from nni.nas.space import RawFormatModelSpace

    from nni_asenas import AseNas

    def evaluate(network):
        nni.report_final_result(float(score(network)))

    engine = SequentialExecutionEngine(max_model_count=max_models)
    AseNas(seed=0, k=2, **options)(RawFormatModelSpace.from_model(space, FunctionalEvaluator(evaluate)), engine)
    return list(engine.list_models())


def test_asenas_pushed_towards_more_madds_never_submits_an_over_budget_network(nni_mutable):
    budget = 400e6  # 38 % of random architectures fit: the score pushes proposals against the budget
    space = MobileNetLikeSpace(max_madds=budget)
    models = search_with_asenas(space, lambda network: count_madds(network.net.arch), max_models=12)
    madds = [count_madds(model.sample) for model in models]
    assert len(madds) == 12 and max(madds) <= budget
    assert all(model.metrics.final == pytest.approx(m) for model, m in zip(models, madds))


@pytest.mark.parametrize("n_models", [60, pytest.param(1000, marks=pytest.mark.slow)])
def test_with_canonical_asenas_submits_each_network_once(nni_mutable, n_models):
    from nni_asenas.imagenet.space import canonical_arch

    models = search_with_asenas(MobileNetLikeSpace(max_madds=None, width_mult=0.25, num_classes=3),
                                lambda network: count_madds(network.net.arch), max_models=n_models,
                                canonical=canonical_arch)
    networks = [json.dumps(canonical_arch(model.sample), sort_keys=True) for model in models]
    assert len(networks) == n_models and len(set(networks)) == n_models
    assert all(canonical_arch(model.sample) == dict(model.sample) for model in models)


def test_asenas_searches_the_nni_hub_spaces(hub_space):
    models = search_with_asenas(hub_space, lambda net: sum(p.numel() for p in net.parameters()), max_models=3)
    assert len(models) == 3 and len({json.dumps(m.sample, sort_keys=True, default=str) for m in models}) == 3
    assert all(model.metrics.final > 0 for model in models)

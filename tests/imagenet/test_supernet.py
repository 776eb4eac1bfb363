"""The weight-sharing MobileNet-like supernet: NNI's mutable modules, exact extraction, seeded sampling."""

from __future__ import annotations

import random
import warnings

import pytest
import torch
from torch import nn

from nni_asenas.errors import UsageError
from nni_asenas.imagenet import space as mobilenet
from nni_asenas.imagenet.supernet import (
    MobileNetSupernet,
    MobileNetSupernetSpace,
    SubnetSampler,
    largest_arch,
    smallest_arch,
)

WIDTH = 0.25  # channels 8..48 instead of 16..192: the same code paths, a fraction of the arithmetic
CLASSES = 5

warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module.*")


def _random_archs(count: int, seed: int) -> list[dict[str, int]]:
    rng = random.Random(seed)
    return [{label: rng.choice(options) for label, options in mobilenet.decisions().items()} for _ in range(count)]


@pytest.fixture(scope="module")
def supernet() -> MobileNetSupernet:
    torch.manual_seed(0)
    net = MobileNetSupernet(width_mult=WIDTH, num_classes=CLASSES)
    with torch.no_grad():  # non-trivial BN affine and statistics, so that slicing mistakes show
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.normal_(1.0, 0.2)
                module.bias.normal_(0.0, 0.2)
                module.running_mean.normal_(0.0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return net


def test_space_has_the_decisions_of_the_mobilenet_like_space() -> None:
    simplified = MobileNetSupernetSpace(width_mult=WIDTH, num_classes=CLASSES).simplify()
    assert {label: list(choice.values) for label, choice in simplified.items()} == mobilenet.decisions()


def test_one_shot_mutation_replaces_the_mutable_layers(supernet: MobileNetSupernet) -> None:
    from nni.nas.oneshot.pytorch.supermodule.base import BaseSuperNetModule

    kinds = [type(module).__name__ for module in supernet.modules() if isinstance(module, BaseSuperNetModule)]
    assert kinds.count("PathSamplingRepeat") == len(mobilenet.STAGES)
    assert {"FreezableMixedConv2d", "FreezableMixedBatchNorm2d"} <= set(kinds)
    widest = mobilenet.MobileNetLike(largest_arch(), width_mult=WIDTH, num_classes=CLASSES)
    assert sum(p.numel() for p in supernet.parameters()) == sum(p.numel() for p in widest.parameters())


@pytest.mark.parametrize("which", ["smallest", "largest", "random0", "random1", "random2"])
def test_extracted_subnet_equals_the_supernet(supernet: MobileNetSupernet, which: str) -> None:
    arch = {"smallest": smallest_arch(), "largest": largest_arch()}.get(which) or _random_archs(3, 1)[int(which[-1])]
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    supernet.eval()
    net = supernet.extract(arch).eval()
    assert isinstance(net, mobilenet.MobileNetLike) and net.arch == mobilenet.canonical_arch(arch)
    assert sum(p.numel() for p in net.parameters()) == mobilenet.count_params(arch, width_mult=WIDTH,
                                                                             num_classes=CLASSES)
    with torch.no_grad():
        supernet.activate(arch)
        expected = supernet(x)
        assert torch.equal(net(x), expected)
        supernet.train()
        net.train()
        torch.manual_seed(5)  # the same dropout mask
        trained = net(x)
        torch.manual_seed(5)
        assert torch.allclose(trained, supernet(x), atol=1e-6)  # batch statistics: the same sub-net in train mode
    supernet.eval()


def test_extraction_copies_rather_than_shares(supernet: MobileNetSupernet) -> None:
    net = supernet.extract(smallest_arch())
    with torch.no_grad():
        next(net.parameters()).add_(1.0)
    assert not torch.equal(next(net.parameters()), next(supernet.parameters()))


def test_frozen_space_keeps_the_weights(supernet: MobileNetSupernet) -> None:
    """The compat fix: NNI's weight-keeping ``freeze`` of the trained space works and matches ``extract``."""
    arch = _random_archs(1, 7)[0]
    supernet.eval()
    frozen = supernet.space.freeze(arch).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(frozen(x), supernet.extract(arch).eval()(x))


def test_state_dict_round_trip(supernet: MobileNetSupernet) -> None:
    other = MobileNetSupernet.from_config(supernet.config())
    other.load_state_dict(supernet.state_dict())
    arch = _random_archs(1, 3)[0]
    supernet.eval()
    other.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        supernet.activate(arch)
        other.activate(arch)
        assert torch.equal(other(x), supernet(x))
    assert "width_mult=0.25" in repr(other)


def test_invalid_architecture_is_a_usage_error(supernet: MobileNetSupernet) -> None:
    with pytest.raises(UsageError, match="s1_b0_kernel"):
        supernet.activate({**largest_arch(), "s1_b0_kernel": 4})


def test_sampler_is_a_pure_function_of_seed_step_and_index() -> None:
    sampler = SubnetSampler(seed=3, width_mult=WIDTH, num_classes=CLASSES)
    again = SubnetSampler(seed=3, width_mult=WIDTH, num_classes=CLASSES)
    assert [sampler.sample(step, i) for step in range(4) for i in range(2)] == \
        [again.sample(step, i) for step in range(4) for i in range(2)]
    draws = [mobilenet.canonical_arch(sampler.sample(step)) for step in range(20)]
    assert len({tuple(sorted(arch.items())) for arch in draws}) == 20
    assert SubnetSampler(seed=4).sample(0) != sampler.sample(0)


def test_sampler_respects_the_madds_limit() -> None:
    limit = 330e6
    sampler = SubnetSampler(seed=0, max_madds=limit)
    archs = [sampler.sample(step) for step in range(40)]
    assert all(mobilenet.count_madds(arch) <= limit for arch in archs)
    assert max(mobilenet.count_madds(arch) for arch in archs) > 0.8 * limit
    with pytest.raises(UsageError, match="below the smallest network"):
        SubnetSampler(max_madds=50e6)
    with pytest.raises(UsageError, match="seed"):
        SubnetSampler(seed=-1)

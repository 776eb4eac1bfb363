"""OFA's w1.2 MobileNetV3 supernet checkpoints -> the package's MobileNetLike sub-nets.

The equivalence tests build OFA's own supernet (the ``ofa`` package, a test dependency) with random weights and
compare the logits of every extracted sub-net with OFA's ``get_active_subnet(preserve_weight=True)``.
"""

from __future__ import annotations

import random

import pytest
import torch

from nni_asenas.errors import UsageError
from nni_asenas.imagenet.ofa import OfaSupernetWeights, arch_from_ofa, arch_to_ofa, is_ofa_checkpoint, ofa_layout
from nni_asenas.imagenet.space import canonical_arch, count_madds, decisions

SPACE = decisions()


def _arch(kernel: int | None = None, expand: int | None = None, depth: int | None = None, seed: int | None = None):
    rng = random.Random(seed)
    arch = {}
    for label, options in SPACE.items():
        fixed = depth if label.endswith("depth") else kernel if label.endswith("kernel") else expand
        arch[label] = fixed if fixed is not None else rng.choice(options)
    return canonical_arch(arch)


ARCHS = {
    "smallest": _arch(3, 3, 2),
    "largest": _arch(7, 6, 4),
    "k5-e4-d3": _arch(5, 4, 3),
    "k3-e6-d4": _arch(3, 6, 4),
    "mixed-1": _arch(seed=1),
    "mixed-2": _arch(seed=2),
    "mixed-3": _arch(seed=3),
}


def random_layout_state(num_classes: int = 1000, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict in OFA's w1.2 layout with random values (no ``ofa`` needed)."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in ofa_layout(num_classes).items():
        value = torch.randn(shape, generator=generator) * 0.1
        if key.endswith("running_var"):
            value = value.abs() + 0.5
        state[key] = value
    return state


# ------------------------------------------------------------------------------------ against OFA's own code

@pytest.fixture(scope="module")
def ofa_supernet():
    networks = pytest.importorskip("ofa.imagenet_classification.elastic_nn.networks",
                                   reason="the OFA equivalence tests need the test extra (pip install ofa)")
    torch.manual_seed(0)
    supernet = networks.OFAMobileNetV3(width_mult=1.2, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6],
                                       depth_list=[2, 3, 4])
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # everything that OFA's fresh init leaves trivial gets random values
        for name, tensor in supernet.state_dict().items():
            if name.endswith("_matrix"):  # the 7->5 and 5->3 kernel transforms start as identities
                tensor.add_(0.2 * torch.randn(tensor.shape, generator=generator))
            elif name.endswith("running_var"):
                tensor.uniform_(0.5, 2.0, generator=generator)
            elif name.endswith(("running_mean", ".bias")):
                tensor.normal_(0.0, 0.2, generator=generator)
            elif ".bn." in name and name.endswith("weight"):
                tensor.uniform_(0.5, 1.5, generator=generator)
        supernet.classifier.linear.weight.mul_(10.0)  # logits of a few units, so that 1e-4 is a strict bound
    return supernet.eval()


def test_layout_is_ofas(ofa_supernet):
    from nni_asenas.imagenet.ofa import _normalise_key

    theirs = {_normalise_key(key): tuple(value.shape) for key, value in ofa_supernet.state_dict().items()
              if not key.endswith("num_batches_tracked")}
    assert theirs == ofa_layout(1000)


@pytest.mark.parametrize("name", list(ARCHS))
def test_subnet_logits_equal_ofas(ofa_supernet, name):
    arch = ARCHS[name]
    weights = OfaSupernetWeights(ofa_supernet.state_dict())
    setting = arch_to_ofa(arch)
    ofa_supernet.set_active_subnet(ks=setting["ks"], e=setting["e"], d=setting["d"])
    reference = ofa_supernet.get_active_subnet(preserve_weight=True).eval()
    ours = weights.extract(arch).eval()
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, got = reference(images), ours(images)
    assert expected.abs().max() > 0.5  # the bound below is not met by tiny logits alone
    assert (expected - got).abs().max().item() <= 1e-4
    ofa_params = sum(p.numel() for p in reference.parameters())
    assert sum(p.numel() for p in ours.parameters()) == ofa_params + 1536  # the zero bias of classifier.0


def test_architectures_differ_in_logits(ofa_supernet):
    """The sub-nets really differ (an extraction that ignored the architecture could not pass the tests above)."""
    weights = OfaSupernetWeights(ofa_supernet.state_dict())
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        outputs = [weights.extract(ARCHS[name]).eval()(images) for name in ("k5-e4-d3", "mixed-1")]
    assert (outputs[0] - outputs[1]).abs().max() > 1e-2


# ------------------------------------------------------------------------------------ without OFA

def test_checkpoint_spellings_and_wrappers_load_the_same(tmp_path):
    state = random_layout_state(num_classes=10)
    old = {}
    for key, value in state.items():  # OFA's older release: mobile_inverted_conv, no dynamic wrappers
        key = key.replace("blocks.1.conv.", "blocks.1.mobile_inverted_conv.")
        old["module." + key] = value
    old["first_conv.bn.num_batches_tracked"] = torch.tensor(7)
    path = tmp_path / "ofa.pth"
    torch.save({"state_dict": old, "epoch": 3}, path)
    loaded = OfaSupernetWeights.from_checkpoint(path)
    reference = OfaSupernetWeights(state)
    assert loaded.num_classes == 10
    arch = ARCHS["mixed-2"]
    a, b = loaded.subnet_state_dict(arch), reference.subnet_state_dict(arch)
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def test_new_spelling_with_wrappers_is_accepted():
    state = {}
    for key, value in random_layout_state().items():
        if key.startswith("blocks.1.") and key.endswith(".conv.weight"):
            key = key.replace(".conv.weight", ".conv.conv.weight")
        state[key] = value
    OfaSupernetWeights(state)


def test_extracted_net_owns_its_weights():
    weights = OfaSupernetWeights(random_layout_state())
    net = weights.extract(ARCHS["largest"])
    before = weights.subnet_state_dict(ARCHS["largest"])["stem.0.weight"].clone()
    with torch.no_grad():
        net.stem[0].weight.add_(1.0)
    assert torch.equal(weights.subnet_state_dict(ARCHS["largest"])["stem.0.weight"], before)


@pytest.mark.parametrize("change, needle", [
    (lambda s: s.update({"first_conv.conv.weight": torch.zeros(16, 3, 3, 3)}),
     "'first_conv.conv.weight' has shape (16, 3, 3, 3), expected (24, 3, 3, 3)"),
    (lambda s: s.pop("blocks.7.conv.depth_conv.conv.7to5_matrix"), "missing key 'blocks.7.conv.depth_conv.conv.7to5_matrix'"),
    (lambda s: s.update({"blocks.21.conv.depth_conv.conv.weight": torch.zeros(1)}), "unexpected key 'blocks.21."),
    (lambda s: s.update({"classifier.linear.bias": "x"}), "'classifier.linear.bias' is not a tensor"),
])
def test_other_layouts_are_one_line_errors(change, needle):
    state = random_layout_state()
    change(state)
    with pytest.raises(UsageError) as error:
        OfaSupernetWeights(state)
    assert needle in str(error.value) and "\n" not in str(error.value)


def test_ofa_checkpoints_are_recognised(tmp_path):
    torch.save({"state_dict": random_layout_state(num_classes=3)}, tmp_path / "ofa.pth")
    torch.save({"model": {"stem.0.weight": torch.zeros(1)}, "epoch": 3}, tmp_path / "other.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    assert is_ofa_checkpoint(tmp_path / "ofa.pth")
    assert not is_ofa_checkpoint(tmp_path / "other.pth") and not is_ofa_checkpoint(tmp_path / "junk.pth")


def test_unreadable_checkpoints(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        OfaSupernetWeights.from_checkpoint(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UsageError, match="cannot be read"):
        OfaSupernetWeights.from_checkpoint(tmp_path / "junk.pth")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(UsageError, match="expected a state dict"):
        OfaSupernetWeights.from_checkpoint(tmp_path / "list.pth")


def test_ofa_architecture_round_trip_and_the_authors_network():
    for arch in ARCHS.values():
        setting = arch_to_ofa(arch)
        assert len(setting["ks"]) == 20 == len(setting["e"]) and len(setting["d"]) == 5
        assert arch_from_ofa(setting["ks"], setting["e"], setting["d"]) == arch
    # the authors' published ASE-NAS network (their OFA encoding: depths, then 20 kernels and 20 ratios, 0 = absent)
    depths = [3, 3, 3, 4, 4]
    ks = [5, 5, 7, 0, 5, 5, 7, 0, 5, 7, 5, 0, 5, 5, 5, 7, 5, 7, 7, 7]
    ratios = [6, 6, 3, 0, 6, 4, 6, 0, 6, 6, 6, 0, 6, 6, 6, 4, 6, 6, 4, 4]
    arch = arch_from_ofa(ks, ratios, depths)
    assert round(count_madds(arch) / 1e6, 1) == 587.9
    with pytest.raises(UsageError, match="20 kernel sizes"):
        arch_from_ofa(ks[:5], ratios, depths)

"""Note10 latency from OFA's lookup tables, against OFA's own ``LatencyEstimator`` (needs ``$NNI_ASENAS_OFA_FILES``
for the real tables; the key format is checked anywhere)."""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import pytest
import yaml
from ofa_files import ofa_spec, ofa_tutorial_module

from nni_asenas.errors import UsageError
from nni_asenas.imagenet.ofa_latency import OfaLatencyTable, expanded_conv_key, layer_key, table_file
from nni_asenas.imagenet.ofa_space import RESOLUTIONS, decisions_with_resolution, placed_blocks, smallest_arch
from nni_asenas.imagenet.space import canonical_arch, decisions

SPACE = decisions_with_resolution()


def random_archs(n: int, seed: int, resolution: int) -> list[dict[str, int]]:
    rng = random.Random(seed)
    return [{**{label: rng.choice(options) for label, options in decisions().items()}, "resolution": resolution}
            for _ in range(n)]


def test_keys_have_ofa_format():
    arch = canonical_arch({label: 4 if label.endswith("depth") else 5 if label.endswith("kernel") else 3
                           for label in decisions()})
    blocks = placed_blocks(arch, 224)
    # stage 2 (width 48, squeeze-excite, ReLU), second block: the README's example key
    assert expanded_conv_key(blocks[1 + 4 + 1]) == \
        "expanded_conv-input:28x28x48-output:28x28x48-expand:144-kernel:5-stride:1-idskip:1-se:1-hs:0"
    assert expanded_conv_key(blocks[0]) == \
        "expanded_conv-input:112x112x24-output:112x112x24-expand:24-kernel:3-stride:1-idskip:1-se:0-hs:0"
    # stage 4 starts at stride 1 with a new width: no shortcut; hard-swish from stage 3 on
    assert expanded_conv_key(blocks[1 + 12]) == \
        "expanded_conv-input:14x14x96-output:14x14x136-expand:288-kernel:5-stride:1-idskip:0-se:1-hs:1"
    assert layer_key("Logits", (1, 1, 1536), (1000,)) == "Logits-input:1x1x1536-output:1000"
    assert table_file("tables", 176) == Path("tables/176_lookup_table.yaml")


@pytest.fixture(scope="module")
def note10(ofa_files: Path) -> Path:
    return ofa_files / "note10"


@pytest.fixture(scope="module")
def ofa_estimators(note10: Path):
    module = ofa_tutorial_module("latency_table")
    return {size: module.LatencyEstimator(url=str(table_file(note10, size))) for size in RESOLUTIONS}


def test_latency_equals_ofa_estimator_at_each_resolution(note10: Path, ofa_estimators):
    table = OfaLatencyTable(note10, resolution=None)
    for size in RESOLUTIONS:
        fixed = OfaLatencyTable(note10, resolution=size)
        archs = random_archs(20, seed=size, resolution=size)
        if size in (160, 224):
            archs += [smallest_arch(None) | {"resolution": size},
                      {**{label: max(options) for label, options in decisions().items()}, "resolution": size}]
        for arch in archs:
            expected = ofa_estimators[size].predict_network_latency_given_spec(ofa_spec(arch, size))
            # the same terms added in OFA's order: equal to the last bit
            assert table(arch) == expected, (size, arch)
            blocks = {label: value for label, value in arch.items() if label != "resolution"}
            assert fixed(blocks) == expected
    assert table(smallest_arch(None)) < table({**smallest_arch(None), "resolution": 224})


def test_a_latency_costs_microseconds(note10: Path):
    table = OfaLatencyTable(note10)
    archs = [{label: value for label, value in arch.items() if label != "resolution"}
             for arch in random_archs(1000, seed=1, resolution=224)]
    start = time.process_time()
    for arch in archs:
        table(arch)
    assert time.process_time() - start < 0.25


def test_a_table_missing_a_layer_key_is_one_line(note10: Path, tmp_path: Path):
    shutil.copy(table_file(note10, 224), tmp_path)
    path = table_file(tmp_path, 224)
    entries = yaml.safe_load(path.read_text())
    key = "expanded_conv-input:28x28x48-output:28x28x48-expand:144-kernel:5-stride:1-idskip:1-se:1-hs:0"
    del entries[key]
    path.write_text(yaml.safe_dump(entries))
    with pytest.raises(UsageError) as info:
        OfaLatencyTable(tmp_path)
    assert str(info.value) == f"latency table {path} has no entry {key!r}"
    entries[key] = {"count": 3}
    path.write_text(yaml.safe_dump(entries))
    with pytest.raises(UsageError, match=f"entry '{key}' has no finite non-negative 'mean'"):
        OfaLatencyTable(tmp_path)


def test_missing_or_unreadable_tables_are_one_line(note10: Path, tmp_path: Path):
    shutil.copy(table_file(note10, 224), tmp_path)
    assert OfaLatencyTable(tmp_path).resolutions == (224,)  # a fixed resolution reads only its table
    with pytest.raises(UsageError, match=f"latency table {tmp_path / '160_lookup_table.yaml'} does not exist"):
        OfaLatencyTable(tmp_path, resolution=None)
    table_file(tmp_path, 224).write_text("key: [unclosed")
    with pytest.raises(UsageError, match="not readable YAML") as info:
        OfaLatencyTable(tmp_path)
    assert "\n" not in str(info.value)
    with pytest.raises(UsageError, match="is not a folder"):
        OfaLatencyTable(tmp_path / "absent")
    with pytest.raises(UsageError, match="resolution 200 is not one of"):
        OfaLatencyTable(note10, resolution=200)
    with pytest.raises(UsageError, match="fixed at 224"):
        OfaLatencyTable(note10)(smallest_arch(None))

"""The NAS-Bench-201 model space and the search-space JSON generated from it."""

from __future__ import annotations

import json
from pathlib import Path

import nni
import pytest
from nni.mutable import SampleValidationError

from nni_asenas.nasbench.nb201 import EDGES, OPS, load_table
from nni_asenas.nasbench.nb201_space import NasBench201Space, main, search_space
from nni_asenas.nni_tools.search_space_json import search_space_json

COMMITTED = Path(__file__).resolve().parents[2] / "search_spaces" / "nasbench201.json"


def test_committed_json_is_the_generated_one() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == json.dumps(search_space(), indent=2) + "\n"


def test_json_has_six_edges_in_arch_string_order_with_table_op_names() -> None:
    space = json.loads(COMMITTED.read_text())
    assert list(space) == list(EDGES) == ["0_1", "0_2", "1_2", "0_3", "1_3", "2_3"]
    assert all(spec == {"_type": "choice", "_value": list(OPS)} for spec in space.values())


def test_main_writes_the_file(tmp_path: Path) -> None:
    assert main(["--output", str(tmp_path / "s.json")]) == 0
    assert (tmp_path / "s.json").read_text() == COMMITTED.read_text()


def test_frozen_model_carries_a_table_architecture() -> None:
    table = load_table()
    arch = table.arch_dict(6111)
    model = NasBench201Space().freeze(arch)
    assert model.arch == arch and table.index(model.arch) == 6111
    with pytest.raises(SampleValidationError):
        NasBench201Space().freeze({**arch, "1_3": "conv_7x7"})


def test_only_plain_choices_convert_to_json() -> None:
    from nni.nas.nn.pytorch import ModelSpace

    class Mixed(ModelSpace):
        def __init__(self) -> None:
            super().__init__()
            self.op = self.add_mutable(nni.choice("op", ["a", "b"]))
            self.lr = self.add_mutable(nni.uniform("lr", 0.1, 1.0))

    with pytest.raises(ValueError, match="'lr'"):
        search_space_json(Mixed())

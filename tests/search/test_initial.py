"""The one reader of initial architectures: mappings, texts, architecture files and result files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nni_asenas.errors import UsageError
from nni_asenas.search.initial import names_a_file, read_initial_architectures


def parse(arch: Any) -> dict[str, int]:
    if isinstance(arch, str):  # a text form: "a3b1"
        if len(arch) != 4 or arch[0] != "a" or arch[2] != "b":
            raise ValueError("expected aNbM")
        arch = {"a": int(arch[1]), "b": int(arch[3])}
    if not isinstance(arch, dict) or set(arch) != {"a", "b"}:
        raise ValueError("expected labels a and b")
    return dict(arch)


def test_items_of_every_kind_in_order_without_duplicates(tmp_path: Path) -> None:
    result = tmp_path / "result.json"
    result.write_text(json.dumps({"strategy": "asenas", "candidates": [{"a": 1, "b": 1}, "a2b2"]}))
    listed = tmp_path / "archs.json"
    listed.write_text(json.dumps([{"a": 3, "b": 3}, {"a": 1, "b": 1}]))
    single = tmp_path / "arch.json"
    single.write_text(json.dumps({"b": 4, "a": 4}))
    items = ["a0b0", {"a": 9, "b": 9}, str(result), listed, str(single), "a0b0"]
    assert read_initial_architectures(items, parse) == [
        {"a": 0, "b": 0}, {"a": 9, "b": 9}, {"a": 1, "b": 1}, {"a": 2, "b": 2}, {"a": 3, "b": 3}, {"b": 4, "a": 4}]
    assert read_initial_architectures(str(result)) == [{"a": 1, "b": 1}, "a2b2"]  # one item; no parse: as read
    assert read_initial_architectures([]) == []


def test_errors_name_the_file_or_the_architecture(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"best": 1}')
    (tmp_path / "empty.json").write_text("{}")
    cases = [
        (str(tmp_path / "broken.json"), "cannot read initial architectures from .*broken.json: not JSON"),
        (str(tmp_path / "other.json"), "other.json: no 'candidates' list"),
        (str(tmp_path / "empty.json"), "empty.json: no 'candidates' list"),
        ("missing/result.json", "cannot read initial architectures from missing/result.json: No such file"),
        ("nonsense", "initial architecture 'nonsense': expected aNbM"),
        ({"a": 1}, "initial architecture {'a': 1}: expected labels a and b"),
    ]
    for item, message in cases:
        with pytest.raises(UsageError, match=message):
            read_initial_architectures([item], parse)


def test_what_names_a_file(tmp_path: Path) -> None:
    (tmp_path / "here").write_text("[]")
    assert names_a_file("x.json") and names_a_file("runs/x") and names_a_file(tmp_path / "here")
    assert not names_a_file("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    assert not names_a_file("6111") and not names_a_file({"a": 1}) and not names_a_file("x" * 5000)

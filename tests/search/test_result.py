"""The one result writer and the reader of a result's candidates."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nni_asenas.errors import UsageError
from nni_asenas.search.result import read_candidates, write_result


def test_a_result_is_written_whole_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "result.json"
    write_result(path, {"candidates": ["a", "b"], "queries": 2})
    assert path.read_text().endswith("\n") and json.loads(path.read_text())["queries"] == 2
    assert read_candidates(path) == ["a", "b"]
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no partial file left behind


def test_an_unwritable_result_goes_to_the_temporary_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    with pytest.raises(UsageError, match=f"cannot write {blocker / 'result.json'} .*; the result is saved in "):
        write_result(blocker / "result.json", {"queries": 1})
    (rescued,) = (tmp_path / "tmp").iterdir()
    assert json.loads(rescued.read_text()) == {"queries": 1} and os.fspath(rescued).endswith(".json")


def test_candidates_errors_name_no_file(tmp_path: Path) -> None:
    for text, message in (("[1]", "no 'candidates' list"), ('{"candidates": []}', "no 'candidates' list"),
                          ("nope", "not JSON")):
        (tmp_path / "r.json").write_text(text)
        with pytest.raises(UsageError, match=message):
            read_candidates(tmp_path / "r.json")
    with pytest.raises(UsageError, match="No such file"):
        read_candidates(tmp_path / "missing.json")
